//! Senders who wait until they are read (`messenger send --wait`, msg.exe's /W): a message
//! delivered on this computer is reported read once its recipient marks it read, and not
//! read when the wait runs out.

use std::time::Duration;

use messenger_ipc::{Receipt, Reply, Request, SendResult, SendTarget};

use crate::control::{as_nobody, skip_unless_root};
use crate::harness::*;

fn waiting_send(name: &str, text: &str, wait_secs: u64) -> Request {
    Request::Send {
        target: SendTarget::Name { name: name.into() },
        from: None,
        text: text.into(),
        allow_long: false,
        wait_secs: Some(wait_secs),
        expire_secs: None,
    }
}

fn results(reply: Reply) -> Vec<SendResult> {
    match reply {
        Reply::Sent { results } => results,
        other => panic!("expected a send result, got {other:?}"),
    }
}

/// Marks the message with `text` read as this process's user once it is in the inbox.
pub(crate) async fn read_when_stored(svc: &TestService, text: &str) {
    let id = svc.wait_for_message(text).await.id;
    let reply = control_call(&svc.control(), Request::InboxMarkRead { ids: vec![id] }).await;
    assert!(matches!(reply, Reply::MarkedRead { .. }), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_sender_learns_when_a_message_for_everyone_is_read() {
    let svc = TestService::start(Options::default()).await;
    let socket = svc.control();
    let send = control_call(&socket, waiting_send(COMPUTER, "read me", 30));
    let (reply, ()) = tokio::join!(send, read_when_stored(&svc, "read me"));
    let results = results(reply);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].error, None);
    assert_eq!(results[0].receipt, Some(Receipt::Read));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_nobody_reads_is_reported_unread_when_the_wait_ends() {
    let svc = TestService::start(Options::default()).await;
    let reply = control_call(&svc.control(), waiting_send(COMPUTER, "unread", 1)).await;
    let results = results(reply);
    assert_eq!(results[0].error, None, "it was delivered");
    assert_eq!(results[0].receipt, Some(Receipt::NotReadInTime));
    // Still in the inbox, unread.
    let stored = svc.wait_for_message("unread").await;
    assert!(!stored.read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_does_not_wait_has_no_receipt() {
    let svc = TestService::start(Options::default()).await;
    let request = Request::Send {
        target: SendTarget::Name {
            name: COMPUTER.into(),
        },
        from: None,
        text: "no wait".into(),
        allow_long: false,
        wait_secs: None,
        expire_secs: None,
    };
    let results = results(control_call(&svc.control(), request).await);
    assert_eq!(results[0].receipt, None);
}

/// Only the user a message is for can end the wait by reading it; another user marking its id
/// counts for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_recipient_reading_counts() {
    if skip_unless_root("only_the_recipient_reading_counts") {
        return;
    }
    let svc = TestService::start(Options::default()).await;
    write_utmp(&svc.utmp(), &["nobody"]);
    svc.wait_for_name("NOBODY").await;
    let socket = svc.control();
    let send = control_call(&socket, waiting_send("NOBODY", "for nobody", 30));
    let reads = async {
        let id = svc.wait_for_message("for nobody").await.id;
        // Root is not the recipient: its mark changes nothing.
        let reply = control_call(&socket, Request::InboxMarkRead { ids: vec![id] }).await;
        assert_eq!(reply, Reply::MarkedRead { count: 0 });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let replies = as_nobody(&socket, vec![Request::InboxMarkRead { ids: vec![id] }]).await;
        assert_eq!(replies, vec![Reply::MarkedRead { count: 1 }]);
    };
    let (reply, ()) = tokio::join!(send, reads);
    let results = results(reply);
    assert_eq!(results[0].recipient, "NOBODY");
    assert_eq!(results[0].receipt, Some(Receipt::Read));
}

/// `/USERS` waits for each user's copy: a user who read it is reported read, one who did not
/// is reported unread (each on the line of their login session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_reported_each_on_their_own() {
    if skip_unless_root("users_are_reported_each_on_their_own") {
        return;
    }
    let svc = TestService::start(Options::default()).await;
    write_utmp(&svc.utmp(), &["nobody", "daemon"]);
    svc.wait_for_name("NOBODY").await;
    svc.wait_for_name("DAEMON").await;
    let socket = svc.control();
    let request = Request::Send {
        target: SendTarget::Users,
        from: None,
        text: "to every user".into(),
        allow_long: false,
        wait_secs: Some(3),
        expire_secs: None,
    };
    let send = control_call(&socket, request);
    let reads = async {
        let id = svc.wait_for_message("to every user").await.id;
        as_nobody(&socket, vec![Request::InboxMarkRead { ids: vec![id] }]).await;
    };
    let (reply, ()) = tokio::join!(send, reads);
    let mut receipts: Vec<_> = results(reply)
        .into_iter()
        .map(|r| (r.recipient, r.receipt))
        .collect();
    receipts.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        receipts,
        vec![
            (
                "daemon on a session without a terminal".to_owned(),
                Some(Receipt::NotReadInTime)
            ),
            (
                "nobody on a session without a terminal".to_owned(),
                Some(Receipt::Read)
            ),
        ]
    );
}
