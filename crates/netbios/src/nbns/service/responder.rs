//! Answers to other nodes: positive and negative name query responses, node status responses,
//! and the defence of our unique names against registrations (RFC 1002 5.1.1.2, 5.1.1.4,
//! [MS-NBTE] 3.1.5.1, 4.1).
//!
//! The responder holds no state: it reads the name table and sends through the shared
//! [`Node`].

use std::net::SocketAddrV4;

use super::local_name::is_local_only;
use super::{NameState, NameTable, Node};
use crate::name::SUFFIX_MESSENGER;
use crate::nbns::packet::{
    NameFlags, NodeName, NodeStatus, Packet, Rcode, Statistics, MAX_NODE_STATUS_NAMES,
};

/// Answers a name query for a name we hold, and a unicast one for a name we lack.
pub(super) fn answer_name_query(
    names: &NameTable,
    node: &mut Node,
    from: SocketAddrV4,
    packet: &Packet,
) {
    let Some(question) = packet.question() else {
        return;
    };
    if question.name.scope != node.config.scope {
        return;
    }
    let transaction_id = packet.header.transaction_id;
    let held = names
        .get(&question.name.name)
        .filter(|entry| entry.state() == NameState::Registered);
    let response = match held {
        Some(entry) => Packet::positive_query_response(
            transaction_id,
            question.name.clone(),
            node.config.nb_ttl_secs,
            vec![node.own_entry(entry.group())],
            false,
        ),
        // End nodes stay silent on broadcast queries for names they lack (RFC 1002
        // 5.1.1.2) but say no to unicast ones ([MS-NBTE] 4.1).
        None if packet.header.broadcast => return,
        None => {
            Packet::negative_query_response(transaction_id, question.name.clone(), Rcode::NAM_ERR)
        }
    };
    node.send(from, &response);
}

/// Answers unicast node status requests for `*` or any name in our table. Broadcast ones
/// are ignored so that a wildcard status broadcast does not start a storm.
pub(super) fn answer_node_status(
    names: &NameTable,
    node: &mut Node,
    from: SocketAddrV4,
    packet: &Packet,
) {
    let Some(question) = packet.question() else {
        return;
    };
    if packet.header.broadcast || question.name.scope != node.config.scope {
        return;
    }
    let asked = question.name.name;
    if !asked.is_star() && !names.contains_key(&asked) {
        return;
    }
    let node_type = node.config.node_type;
    let mut names = names
        .iter()
        .filter_map(|(name, entry)| {
            let flags = NameFlags::active(entry.group(), node_type);
            let flags = match entry.state() {
                NameState::Registering => return None,
                NameState::Registered => flags,
                NameState::Conflict => flags.with_conflict(),
                NameState::Releasing => flags.with_deregistering(),
            };
            Some(NodeName { name: *name, flags })
        })
        .collect::<Vec<_>>();
    // NUM_NAMES is one byte: when there are more names than fit, list every name but the
    // unique `<03>` messaging names first (group names, the workstation and server names),
    // then as many messaging names as fit; the sort is stable, so each part stays in name
    // order.
    if names.len() > MAX_NODE_STATUS_NAMES {
        names.sort_by_key(|n| !n.flags.is_group() && n.name.suffix() == SUFFIX_MESSENGER);
        names.truncate(MAX_NODE_STATUS_NAMES);
    }
    let status = NodeStatus {
        names,
        statistics: Statistics::with_unit_id(node.config.unit_id),
    };
    let response =
        Packet::node_status_response(packet.header.transaction_id, question.name.clone(), status);
    node.send(from, &response);
}

/// Another node claims a name: object if it is one of our registered unique names
/// (RFC 1002 5.1.1.4, [MS-NBTE] 3.1.5.1).
pub(super) fn defend(names: &NameTable, node: &mut Node, from: SocketAddrV4, packet: &Packet) {
    let Some(question) = packet.question() else {
        return;
    };
    if question.name.scope != node.config.scope {
        return;
    }
    let name = question.name.name;
    let Some(entry) = names.get(&name) else {
        return;
    };
    if entry.group() || entry.state() != NameState::Registered || is_local_only(&name) {
        return;
    }
    let response = Packet::negative_registration_response(
        packet.header.transaction_id,
        question.name.clone(),
        0,
        node.own_entry(false),
        Rcode::ACT_ERR,
    );
    node.send(from, &response);
}
