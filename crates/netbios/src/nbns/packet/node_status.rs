//! The RDATA of a node status response: the node's names with their NAME_FLAGS, and the
//! STATISTICS block (RFC 1002 4.2.18).

use bytes::BufMut;

use super::flags::NameFlags;
use crate::codec::{DecodeError, Reader};
use crate::name::{NetbiosName, NAME_LEN};

/// Bytes of one NODE_NAME entry in a node status response: the raw name and NAME_FLAGS
/// (RFC 1002 4.2.18).
pub const NODE_NAME_ENTRY_LEN: usize = NAME_LEN + 2;
/// Bytes of the STATISTICS block ending a node status response (RFC 1002 4.2.18).
pub const STATISTICS_LEN: usize = 46;
/// Most names a node status response lists: NUM_NAMES is one byte (RFC 1002 4.2.18).
pub const MAX_NODE_STATUS_NAMES: usize = u8::MAX as usize;

/// One name of a node status response (RFC 1002 4.2.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeName {
    /// The 16-byte name as the node holds it (not first-level encoded).
    pub name: NetbiosName,
    /// NAME_FLAGS.
    pub flags: NameFlags,
}

/// The STATISTICS block of a node status response (RFC 1002 4.2.18), big-endian like the rest.
/// Windows fills in UNIT_ID with the adapter's MAC address; Samba sends zeros throughout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Statistics {
    /// UNIT_ID: the adapter's MAC address on Windows (`nbtstat -A` shows it).
    pub unit_id: [u8; 6],
    /// JUMPERS.
    pub jumpers: u8,
    /// TEST_RESULT.
    pub test_result: u8,
    /// VERSION_NUMBER.
    pub version_number: u16,
    /// PERIOD_OF_STATISTICS.
    pub period_of_statistics: u16,
    /// NUMBER_OF_CRCs.
    pub number_of_crcs: u16,
    /// NUMBER_ALIGNMENT_ERRORS.
    pub number_alignment_errors: u16,
    /// NUMBER_OF_COLLISIONS.
    pub number_of_collisions: u16,
    /// NUMBER_SEND_ABORTS.
    pub number_send_aborts: u16,
    /// NUMBER_GOOD_SENDS.
    pub number_good_sends: u32,
    /// NUMBER_GOOD_RECEIVES.
    pub number_good_receives: u32,
    /// NUMBER_RETRANSMITS.
    pub number_retransmits: u16,
    /// NUMBER_NO_RESOURCE_CONDITIONS.
    pub number_no_resource_conditions: u16,
    /// NUMBER_FREE_COMMAND_BLOCKS.
    pub number_free_command_blocks: u16,
    /// TOTAL_NUMBER_COMMAND_BLOCKS.
    pub total_number_command_blocks: u16,
    /// MAX_TOTAL_NUMBER_COMMAND_BLOCKS.
    pub max_total_number_command_blocks: u16,
    /// NUMBER_PENDING_SESSIONS.
    pub number_pending_sessions: u16,
    /// MAX_NUMBER_PENDING_SESSIONS.
    pub max_number_pending_sessions: u16,
    /// MAX_TOTAL_SESSIONS_POSSIBLE.
    pub max_total_sessions_possible: u16,
    /// SESSION_DATA_PACKET_SIZE.
    pub session_data_packet_size: u16,
}

impl Statistics {
    /// Zeros except UNIT_ID.
    pub fn with_unit_id(unit_id: [u8; 6]) -> Self {
        Self {
            unit_id,
            ..Self::default()
        }
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            unit_id: r.array()?,
            jumpers: r.u8()?,
            test_result: r.u8()?,
            version_number: r.u16_be()?,
            period_of_statistics: r.u16_be()?,
            number_of_crcs: r.u16_be()?,
            number_alignment_errors: r.u16_be()?,
            number_of_collisions: r.u16_be()?,
            number_send_aborts: r.u16_be()?,
            number_good_sends: r.u32_be()?,
            number_good_receives: r.u32_be()?,
            number_retransmits: r.u16_be()?,
            number_no_resource_conditions: r.u16_be()?,
            number_free_command_blocks: r.u16_be()?,
            total_number_command_blocks: r.u16_be()?,
            max_total_number_command_blocks: r.u16_be()?,
            number_pending_sessions: r.u16_be()?,
            max_number_pending_sessions: r.u16_be()?,
            max_total_sessions_possible: r.u16_be()?,
            session_data_packet_size: r.u16_be()?,
        })
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.put_slice(&self.unit_id);
        out.put_u8(self.jumpers);
        out.put_u8(self.test_result);
        for value in [
            self.version_number,
            self.period_of_statistics,
            self.number_of_crcs,
            self.number_alignment_errors,
            self.number_of_collisions,
            self.number_send_aborts,
        ] {
            out.put_u16(value);
        }
        out.put_u32(self.number_good_sends);
        out.put_u32(self.number_good_receives);
        for value in [
            self.number_retransmits,
            self.number_no_resource_conditions,
            self.number_free_command_blocks,
            self.total_number_command_blocks,
            self.max_total_number_command_blocks,
            self.number_pending_sessions,
            self.max_number_pending_sessions,
            self.max_total_sessions_possible,
            self.session_data_packet_size,
        ] {
            out.put_u16(value);
        }
    }
}

/// The RDATA of a node status response: the node's names and its statistics
/// (RFC 1002 4.2.18).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeStatus {
    /// NODE_NAME entries; at most [`MAX_NODE_STATUS_NAMES`] are encoded.
    pub names: Vec<NodeName>,
    /// STATISTICS.
    pub statistics: Statistics,
}
