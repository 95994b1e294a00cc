//! What one host of the organisation may do on the cluster, as nats-server permissions.
//!
//! A host may publish messages to every host, user and workgroup (that is its job), and
//! receive only its own: it may create, read and acknowledge only its own host and broadcast
//! consumers, and subscribe only to its own reply subjects ([`host_inbox_prefix`]) and to
//! receipts. Any user's queue it may read, because users roam: the host a user logs in on
//! reads their queue. It may write any key of the directory, because it claims the names of
//! whoever logs in there.
//!
//! What these permissions do not prevent, and what an organisation must therefore trust its
//! hosts with: a host can claim, overwrite or delete directory entries of names other hosts
//! hold (so it can draw their messages to itself), read what waits in any user's queue, and
//! send messages in anyone's name, as any NetBIOS host can on a LAN.
//!
//! The subjects are those of JetStream's API on nats-server 2.9 and later, for the requests
//! this crate makes (async-nats): stream information and creation, consumer creation with
//! its filter (`CREATE.<stream>.<name>.<filter>`), consumer information, pulls,
//! acknowledgements, and direct reads of the directory. Stream updates and
//! deletes are left to the cluster's administrator.

use crate::subject::{
    host_inbox_prefix, EncodedName, BROADCAST_STREAM, DIRECTORY_BUCKET, HOST_SUBJECT_PREFIX,
    RECEIPT_SUBJECT_PREFIX, STREAM, USER_STREAM, USER_SUBJECT_PREFIX, WORKGROUP_SUBJECT_PREFIX,
};

/// The subjects one host may publish to and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPermissions {
    /// Subjects it may publish to (JetStream API requests included).
    pub publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
}

/// The consumer API subjects for the consumer `consumer` (a name or `*`) of `stream`, whose
/// filter must be `filter`: the consumer is created with its filter in the request's subject
/// (`CONSUMER.CREATE.<stream>.<name>.<filter>`, nats-server 2.9 and later), so a host cannot
/// create its consumer over another host's subject.
fn consumer_api(stream: &str, consumer: &str, filter: &str) -> Vec<String> {
    vec![
        format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}.{filter}"),
        format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
        format!("$JS.ACK.{stream}.{consumer}.>"),
    ]
}

/// The permissions of the host `host`, in the workgroup `workgroup` (whose broadcasts it
/// receives).
pub fn host_permissions(host: &EncodedName, workgroup: &EncodedName) -> HostPermissions {
    let directory = format!("KV_{DIRECTORY_BUCKET}");
    let mut publish = vec![
        format!("{HOST_SUBJECT_PREFIX}*"),
        format!("{USER_SUBJECT_PREFIX}*"),
        format!("{WORKGROUP_SUBJECT_PREFIX}*"),
        format!("{RECEIPT_SUBJECT_PREFIX}*"),
        format!("$KV.{DIRECTORY_BUCKET}.>"),
        format!("$JS.API.DIRECT.GET.{directory}"),
        format!("$JS.API.DIRECT.GET.{directory}.>"),
        format!("$JS.API.STREAM.MSG.GET.{directory}"),
    ];
    for stream in [STREAM, USER_STREAM, BROADCAST_STREAM, directory.as_str()] {
        publish.push(format!("$JS.API.STREAM.INFO.{stream}"));
        publish.push(format!("$JS.API.STREAM.CREATE.{stream}"));
    }
    publish.extend(consumer_api(
        STREAM,
        &host.host_consumer(),
        &host.host_subject(),
    ));
    publish.extend(consumer_api(
        BROADCAST_STREAM,
        &host.broadcast_consumer(),
        &workgroup.workgroup_subject(),
    ));
    publish.extend(consumer_api(
        USER_STREAM,
        "*",
        &format!("{USER_SUBJECT_PREFIX}*"),
    ));
    HostPermissions {
        publish,
        subscribe: vec![
            format!("{}.>", host_inbox_prefix(host)),
            format!("{RECEIPT_SUBJECT_PREFIX}*"),
        ],
    }
}

impl HostPermissions {
    /// The entry of `authorization { users = [...] }` in a nats-server configuration for
    /// this host, authenticating as `user` with `password`.
    pub fn server_user_entry(&self, user: &str, password: &str) -> String {
        let list = |subjects: &[String]| {
            subjects
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{{ user: \"{user}\", password: \"{password}\", permissions: {{ \
             publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }} }}",
            list(&self.publish),
            list(&self.subscribe)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_may_consume_only_its_own_host_and_broadcast_consumers() {
        let a = EncodedName::new("SITEA").unwrap();
        let b = EncodedName::new("SITEB").unwrap();
        let p = host_permissions(&a, &EncodedName::new("ORG").unwrap());
        let all = p.publish.join(" ");
        assert!(all.contains(&format!("MSG.NEXT.MESSENGER.{}", a.host_consumer())));
        assert!(all.contains(&format!(
            "MSG.NEXT.MESSENGER_BCAST.{}",
            a.broadcast_consumer()
        )));
        assert!(!all.contains(&b.hex().to_string()), "{all}");
        // No wildcard consumer on the host or broadcast streams.
        assert!(!all.contains("MESSENGER.*") && !all.contains("MESSENGER_BCAST.*"));
        assert!(!p.subscribe.iter().any(|s| s.starts_with("messenger.host")));
        assert_eq!(p.subscribe[0], format!("_INBOX_{}.>", a.hex()));
    }
}
