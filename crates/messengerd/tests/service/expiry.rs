//! Messages that expire unless read in time (`messenger send --time`, msg.exe's /TIME): the
//! message stays in the inbox marked expired, followers are told, a waiting sender learns it,
//! the expiry survives a restart, and recipients beyond this computer are told it stays here.
//! The expiries are short real times; no test asserts how long anything took.

use messenger_ipc::{
    decode_line, encode_line, Receipt, Reply, Request, SendResult, SendTarget, MAX_EXPIRE_SECS,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::harness::*;

fn expiring_send(target: SendTarget, text: &str, wait: Option<u64>, expire: u64) -> Request {
    Request::Send {
        target,
        from: None,
        text: text.into(),
        allow_long: false,
        wait_secs: wait,
        expire_secs: Some(expire),
    }
}

fn to_computer() -> SendTarget {
    SendTarget::Name {
        name: COMPUTER.into(),
    }
}

fn results(reply: Reply) -> Vec<SendResult> {
    match reply {
        Reply::Sent { results } => results,
        other => panic!("expected a send result, got {other:?}"),
    }
}

/// Waits until the message with `text` is marked expired.
async fn wait_until_expired(svc: &TestService, text: &str) -> messenger_core::StoredMessage {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = svc.wait_for_message(text).await;
        if m.expired {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{text:?} never expired"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_nobody_reads_expires_and_stays_in_the_inbox() {
    let svc = TestService::start(Options::default()).await;
    let reply = control_call(
        &svc.control(),
        expiring_send(to_computer(), "going down soon", None, 1),
    )
    .await;
    let results = results(reply);
    assert_eq!(results[0].error, None);
    assert_eq!(results[0].notice, None, "this computer keeps the expiry");
    let stored = svc.wait_for_message("going down soon").await;
    assert!(stored
        .expires_at
        .is_some_and(|at| at > stored.message.received_at));
    let expired = wait_until_expired(&svc, "going down soon").await;
    assert!(!expired.read, "expired is not read");
    // A message without an expiry stored meanwhile is untouched.
    let plain = Request::Send {
        target: to_computer(),
        from: None,
        text: "no expiry".into(),
        allow_long: false,
        wait_secs: None,
        expire_secs: None,
    };
    control_call(&svc.control(), plain).await;
    let m = svc.wait_for_message("no expiry").await;
    assert_eq!((m.expires_at, m.expired), (None, false));
    // Listings show the expiry.
    let listed = control_call(
        &svc.control(),
        Request::InboxList {
            unread_only: false,
            all_users: false,
            after_id: None,
            limit: None,
            last: None,
        },
    )
    .await;
    let Reply::Messages { messages, .. } = listed else {
        panic!("{listed:?}")
    };
    let view = messages
        .iter()
        .find(|m| m.text == "going down soon")
        .unwrap();
    assert!(view.expired && view.expires_at.is_some(), "{view:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_sender_learns_the_message_expired_unread() {
    let svc = TestService::start(Options::default()).await;
    let reply = control_call(
        &svc.control(),
        expiring_send(to_computer(), "read me or lose me", Some(60), 1),
    )
    .await;
    let results = results(reply);
    assert_eq!(results[0].error, None);
    assert_eq!(results[0].receipt, Some(Receipt::Expired));
    assert!(svc.wait_for_message("read me or lose me").await.expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_read_in_time_does_not_expire() {
    let svc = TestService::start(Options::default()).await;
    let socket = svc.control();
    let send = control_call(
        &socket,
        expiring_send(to_computer(), "read in time", Some(60), 2),
    );
    let read = crate::receipts::read_when_stored(&svc, "read in time");
    let (reply, ()) = tokio::join!(send, read);
    assert_eq!(results(reply)[0].receipt, Some(Receipt::Read));
    // A later message expires; by then the earlier one was settled as read.
    control_call(&socket, expiring_send(to_computer(), "later", None, 1)).await;
    wait_until_expired(&svc, "later").await;
    assert!(!svc.wait_for_message("read in time").await.expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_that_fell_due_while_the_service_was_down_is_settled_at_start() {
    let svc = TestService::start(Options::default()).await;
    control_call(
        &svc.control(),
        expiring_send(to_computer(), "across a restart", None, 1),
    )
    .await;
    let before = svc.wait_for_message("across a restart").await;
    let expires_at = before.expires_at.expect("an expiry");
    let dir = svc.stop().await;
    // Down until after the expiry.
    while messengerd::util::now_micros() <= expires_at {
        tokio::time::sleep(POLL).await;
    }
    let svc = TestService::start_in(dir, Options::default()).await;
    let after = svc.wait_for_message("across a restart").await;
    assert_eq!(after.id, before.id);
    assert!(after.expired, "settled when the service started");
    // And one still to come after a restart expires on time.
    control_call(
        &svc.control(),
        expiring_send(to_computer(), "after the restart", None, 1),
    )
    .await;
    let dir = svc.stop().await;
    let svc = TestService::start_in(dir, Options::default()).await;
    wait_until_expired(&svc, "after the restart").await;
}

async fn next(reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>) -> Reply {
    let mut line = Vec::new();
    tokio::time::timeout(WAIT, reader.read_until(b'\n', &mut line))
        .await
        .expect("a reply in time")
        .unwrap();
    decode_line(&line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_are_told_when_a_message_expires() {
    let svc = TestService::start(Options::default()).await;
    let stream = UnixStream::connect(svc.control()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let request = Request::InboxFollow {
        all_users: false,
        after_id: None,
    };
    write.write_all(&encode_line(&request)).await.unwrap();
    let mut reader = BufReader::new(read);
    assert_eq!(next(&mut reader).await, Reply::Following);
    control_call(
        &svc.control(),
        expiring_send(to_computer(), "followed", None, 1),
    )
    .await;
    let Reply::Message(m) = next(&mut reader).await else {
        panic!("expected the message")
    };
    assert_eq!(m.text, "followed");
    assert!(m.expires_at.is_some() && !m.expired, "{m:?}");
    assert_eq!(next(&mut reader).await, Reply::Expired { id: m.id });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_expiry_times_are_refused_with_the_reason() {
    let svc = TestService::start(Options::default()).await;
    for (secs, why) in [
        (0, "at least 1 second"),
        (MAX_EXPIRE_SECS + 1, "at most 86400 seconds"),
    ] {
        let reply = control_call(
            &svc.control(),
            expiring_send(to_computer(), "never stored", None, secs),
        )
        .await;
        let Reply::Error(e) = reply else {
            panic!("{secs}: {reply:?}")
        };
        assert_eq!(e.code, 87, "ERROR_INVALID_PARAMETER");
        assert!(e.message.contains(why), "{e:?}");
    }
    assert!(svc.messages().await.is_empty());
}

/// A broadcast reaches this computer's users (stored with the expiry) and the workgroup's
/// other computers over the network, which cannot carry one: the sender is told so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_beyond_this_computer_are_told_the_expiry_stays_here() {
    let svc = TestService::start(Options::default()).await;
    let reply = control_call(
        &svc.control(),
        expiring_send(SendTarget::Workgroup { name: None }, "to all", None, 60),
    )
    .await;
    let results = results(reply);
    let network = results
        .iter()
        .find(|r| r.recipient == WORKGROUP)
        .unwrap_or_else(|| panic!("{results:?}"));
    assert_eq!(network.error, None, "{network:?}");
    let notice = network.notice.as_deref().unwrap_or("");
    assert!(
        notice.contains("The expiry applies only to this computer's service"),
        "{notice:?}"
    );
    let local = svc.wait_for_message("to all").await;
    assert!(local.expires_at.is_some(), "this computer's copy expires");
}
