//! The session service: session requests, the single- and multi-block forms, SMB errors that
//! leave the connection usable, the inbox's verdict reaching the sender, idle timeouts and
//! the per-source connection cap.

use messenger_core::message::TransportKind;
use messenger_store::Store;
use netbios::nbss::{NegativeCode, SessionPacket};
use netbios::smb::header::dos;
use netbios::smb::SmbStatus;
use netbios::NetbiosName;

use crate::harness::*;

/// How long the acknowledgement test listens for a premature answer while the inbox writer is
/// held. A correct service stays silent however long this is; it only bounds how late a
/// premature acknowledgement would still be caught (one is sent within microseconds of the
/// message being read, so half a second catches it on any machine).
const UNCOMMITTED_PROBE: std::time::Duration = std::time::Duration::from_millis(500);

fn errsrv(code: u16) -> SmbStatus {
    SmbStatus::errsrv(code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_request_is_accepted_only_for_our_messenger_names() {
    let svc = TestService::start(Options {
        session_request_required: true,
        ..Options::default()
    })
    .await;

    let mut ours = svc.connect().await;
    ours.establish(COMPUTER).await;
    // Names compare without regard to case ([MS-MSRP] 2.2.2.1).
    let mut lower = svc.connect().await;
    lower.establish(&COMPUTER.to_lowercase()).await;

    for called in [
        NetbiosName::messenger("STRANGER").unwrap(),
        NetbiosName::new(COMPUTER.as_bytes(), 0x20).unwrap(),
        NetbiosName::new(WORKGROUP.as_bytes(), 0x00).unwrap(),
    ] {
        let mut other = svc.connect().await;
        assert_eq!(
            other.request_session(called).await,
            Some(SessionPacket::NegativeResponse(
                NegativeCode::CalledNameNotPresent
            )),
            "session request for {called}"
        );
        other.expect_closed().await;
    }

    // On port 139 an SMB without a session request is a protocol violation.
    let mut bare = svc.connect().await;
    bare.send(&d0("ALICE", COMPUTER, "no session request"))
        .await;
    bare.expect_closed().await;
    assert!(svc.messages().await.is_empty());

    // The accepted sessions still work.
    let r = ours.call(&d0("ALICE", COMPUTER, "after all that")).await;
    assert!(r.header.status.is_success(), "{r:?}");
    svc.wait_for_message("after all that").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_ports_take_smb_without_a_session_request() {
    let svc = TestService::start(Options {
        session_request_required: true,
        raw_port: true,
        ..Options::default()
    })
    .await;
    let mut raw = RawSession::connect(svc.raw_session.unwrap()).await;
    let r = raw.call(&d0("ALICE", COMPUTER, "straight SMB")).await;
    assert!(r.header.status.is_success(), "{r:?}");
    // A session request first is honoured there too.
    let mut polite = RawSession::connect(svc.raw_session.unwrap()).await;
    polite.establish(COMPUTER).await;
    let r = polite.call(&d0("ALICE", COMPUTER, "polite SMB")).await;
    assert!(r.header.status.is_success(), "{r:?}");
    svc.wait_for_message("straight SMB").await;
    svc.wait_for_message("polite SMB").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_block_message_is_in_the_inbox_before_it_is_acknowledged() {
    let svc = TestService::start(Options {
        session_request_required: true,
        ..Options::default()
    })
    .await;
    let mut s = svc.connect().await;
    s.establish(COMPUTER).await;
    // With the inbox's writer held, nothing can be committed: the sender must get no answer.
    let hold = svc.hold_inbox_writer().await;
    // 0xD0 as the very first SMB, with no NEGOTIATE, as Windows sends it.
    s.send(&d0("alice", COMPUTER, "Hello\x14second line")).await;
    assert!(
        s.silent_for(UNCOMMITTED_PROBE).await,
        "an answer came while the message could not have been committed"
    );
    assert!(svc.messages().await.is_empty(), "nothing is committed yet");
    hold.release().await;
    let r = s.response().await;
    assert!(r.header.status.is_success(), "{r:?}");
    assert!(r.words.is_empty());

    // Another connection to the database, opened only now, sees the message at once.
    let path = svc.inbox_file();
    let seen = tokio::task::spawn_blocking(move || {
        let store = Store::open_read_only(&path).expect("open the inbox read-only");
        store.list(&Default::default()).expect("list")
    })
    .await
    .unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let m = &seen[0].message;
    assert_eq!(m.text, "Hello\nsecond line");
    assert_eq!(m.from, "alice");
    assert_eq!(m.to, COMPUTER);
    assert_eq!(m.transport, TransportKind::Session);
    assert!(m.recipients.is_empty(), "the computer name is everyone's");
    assert_eq!(m.source.map(|a| a.ip()), Some(svc.session.ip()));

    // The connection takes another message.
    let r = s.call(&d0("alice", COMPUTER, "again")).await;
    assert!(r.header.status.is_success(), "{r:?}");
    svc.wait_for_message("again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_block_message_gets_a_real_group_id_and_is_assembled() {
    let svc = TestService::start(Options {
        session_request_required: true,
        ..Options::default()
    })
    .await;
    let mut s = svc.connect().await;
    s.establish(COMPUTER).await;

    let start = s.call(&d5("BOB", COMPUTER)).await;
    assert!(start.header.status.is_success(), "{start:?}");
    assert_eq!(start.words.len(), 1, "0xD5 response has WordCount 1");
    let gid = start.group_id();
    assert_ne!(gid, 0, "a real group id");
    for part in ["one ", "two ", "three"] {
        let r = s.call(&d7(gid, part)).await;
        assert!(r.header.status.is_success(), "{r:?}");
    }
    let end = s.call(&d6(gid)).await;
    assert!(end.header.status.is_success(), "{end:?}");
    let m = svc.wait_for_message("one two three").await;
    assert_eq!(m.message.from, "BOB");

    // A second message on the same connection, with a group id that does not match (Samba's
    // client sends 0 whatever it was given): tolerated.
    let start = s.call(&d5("BOB", COMPUTER)).await;
    assert!(start.header.status.is_success());
    assert_ne!(start.group_id(), 0);
    assert!(s
        .call(&d7(0, "mismatched "))
        .await
        .header
        .status
        .is_success());
    assert!(s.call(&d7(0, "id")).await.header.status.is_success());
    assert!(s.call(&d6(0)).await.header.status.is_success());
    svc.wait_for_message("mismatched id").await;
    assert_eq!(svc.messages().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_for_a_name_that_is_not_ours_is_refused_and_not_stored() {
    let svc = TestService::start(Options {
        session_request_required: true,
        ..Options::default()
    })
    .await;
    let mut s = svc.connect().await;
    s.establish(COMPUTER).await;

    let r = s.call(&d0("SPAMMER", "STRANGER", "buy now")).await;
    assert!(!r.header.status.is_success(), "{r:?}");
    assert_eq!(r.header.status, errsrv(dos::ERR_ERROR));

    // The multi-block form is checked the same way, at its end.
    let gid = s.call(&d5("SPAMMER", "STRANGER")).await.group_id();
    assert!(s
        .call(&d7(gid, "buy more"))
        .await
        .header
        .status
        .is_success());
    let r = s.call(&d6(gid)).await;
    assert_eq!(r.header.status, errsrv(dos::ERR_ERROR));

    // The connection lives on, and only the message for us is stored.
    let r = s.call(&d0("ALICE", COMPUTER, "for us")).await;
    assert!(r.header.status.is_success(), "{r:?}");
    svc.wait_for_message("for us").await;
    assert_eq!(texts(&svc.messages().await), vec!["for us"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_get_smb_errors_and_the_connection_survives() {
    let svc = TestService::start(Options {
        session_request_required: true,
        configure: Box::new(|c| {
            c.max_message_len = Some(64);
            // This test draws every kind of error on one connection; the error budget that
            // ends such a connection has its own test in security.rs.
            c.limits.max_errors_per_connection = 100;
        }),
        ..Options::default()
    })
    .await;
    let mut s = svc.connect().await;
    s.establish(COMPUTER).await;

    // Blocks out of sequence: text and end with no start.
    let r = s.call(&d7(1, "orphan")).await;
    assert_eq!(r.header.status, errsrv(dos::ERR_ERROR), "{r:?}");
    let r = s.call(&d6(1)).await;
    assert_eq!(r.header.status, errsrv(dos::ERR_ERROR), "{r:?}");

    // Oversize, in both forms: "no room to buffer the message".
    let long = "x".repeat(100);
    let r = s.call(&d0("ALICE", COMPUTER, &long)).await;
    assert_eq!(r.header.status, errsrv(dos::ERR_NOROOM), "{r:?}");
    let gid = s.call(&d5("ALICE", COMPUTER)).await.group_id();
    assert!(s
        .call(&d7(gid, &long[..50]))
        .await
        .header
        .status
        .is_success());
    let r = s.call(&d7(gid, &long[..50])).await;
    assert_eq!(r.header.status, errsrv(dos::ERR_NOROOM), "{r:?}");

    // Commands a messenger server does not serve.
    for code in UNSERVED_COMMANDS {
        let r = s.call(&other_command(code)).await;
        assert_eq!(r.header.command, code);
        assert_eq!(
            r.header.status,
            errsrv(dos::ERR_SMBCMD),
            "command {code:#04x}: {r:?}"
        );
    }

    // Still usable; nothing but the good message stored.
    let r = s.call(&d0("ALICE", COMPUTER, "still here")).await;
    assert!(r.header.status.is_success(), "{r:?}");
    svc.wait_for_message("still here").await;
    assert_eq!(texts(&svc.messages().await), vec!["still here"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_gets_errnoroom_when_the_inbox_cannot_take_the_message() {
    let svc = TestService::start(Options::default()).await;
    svc.service
        .inbox()
        .with_store(|s| s.set_read_only(true))
        .await
        .unwrap();
    let mut s = svc.connect().await;
    let r = s.call(&d0("ALICE", COMPUTER, "lost?")).await;
    assert_eq!(
        r.header.status,
        SmbStatus::Dos {
            class: 2,
            reserved: 0,
            code: 0x53
        },
        "ERRSRV/ERRnoroom: {r:?}"
    );
    let gid = s.call(&d5("ALICE", COMPUTER)).await.group_id();
    assert!(s
        .call(&d7(gid, "lost too?"))
        .await
        .header
        .status
        .is_success());
    let r = s.call(&d6(gid)).await;
    assert_eq!(r.header.status, errsrv(dos::ERR_NOROOM), "{r:?}");

    svc.service
        .inbox()
        .with_store(|s| s.set_read_only(false))
        .await
        .unwrap();
    let r = s.call(&d0("ALICE", COMPUTER, "room again")).await;
    assert!(r.header.status.is_success(), "{r:?}");
    svc.wait_for_message("room again").await;
    assert_eq!(texts(&svc.messages().await), vec!["room again"]);

    // A size limit says the same.
    svc.service
        .inbox()
        .with_store(|s| s.set_size_limit(Some(1)))
        .await
        .unwrap();
    // Free space left in the database's pages may take a message or two; then it is full.
    let big = "y".repeat(1500);
    let mut taken = 0;
    loop {
        let r = s.call(&d0("ALICE", COMPUTER, &big)).await;
        if r.header.status == errsrv(dos::ERR_NOROOM) {
            break;
        }
        assert!(r.header.status.is_success(), "{r:?}");
        taken += 1;
        assert!(taken < 5, "the size limit never applied");
    }
    assert_eq!(svc.messages().await.len(), 1 + taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_time_out() {
    let svc = TestService::start(Options {
        session_request_required: true,
        configure: Box::new(|c| {
            c.limits.first_request_timeout_secs = 1;
            c.limits.request_timeout_secs = 2;
        }),
        ..Options::default()
    })
    .await;

    // Silent from the start.
    let began = std::time::Instant::now();
    let mut silent = svc.connect().await;
    silent.expect_closed().await;
    assert!(
        began.elapsed() >= std::time::Duration::from_millis(900),
        "closed before the first request timeout: {:?}",
        began.elapsed()
    );

    // Silent after a message.
    let mut idle = svc.connect().await;
    idle.establish(COMPUTER).await;
    let r = idle.call(&d0("ALICE", COMPUTER, "then silence")).await;
    assert!(r.header.status.is_success());
    let after = std::time::Instant::now();
    idle.expect_closed().await;
    assert!(
        after.elapsed() >= std::time::Duration::from_millis(1900),
        "closed before the request timeout: {:?}",
        after.elapsed()
    );

    // Silent in the middle of a multi-block message: nothing half-received is stored.
    let mut stalled = svc.connect().await;
    stalled.establish(COMPUTER).await;
    let gid = stalled.call(&d5("ALICE", COMPUTER)).await.group_id();
    assert!(stalled
        .call(&d7(gid, "half a message"))
        .await
        .header
        .status
        .is_success());
    stalled.expect_closed().await;
    assert_eq!(texts(&svc.messages().await), vec!["then silence"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_source_are_capped() {
    let svc = TestService::start(Options {
        session_request_required: true,
        configure: Box::new(|c| c.limits.max_connections_per_source = 2),
        ..Options::default()
    })
    .await;
    let mut first = svc.connect().await;
    first.establish(COMPUTER).await;
    let mut second = svc.connect().await;
    second.establish(COMPUTER).await;

    // A third from the same address is refused: closed, with at most a negative response.
    let mut third = svc.connect().await;
    let called = NetbiosName::messenger(COMPUTER).unwrap();
    match third.request_session(called).await {
        None => {}
        Some(SessionPacket::NegativeResponse(_)) => third.expect_closed().await,
        Some(other) => panic!("the third connection was answered {other:?}"),
    }

    // The ones admitted are served.
    let r = first.call(&d0("ALICE", COMPUTER, "within the cap")).await;
    assert!(r.header.status.is_success());

    // When one goes, a new one is admitted (once the service has seen it go).
    drop(second);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut next = svc.connect().await;
        if next.request_session(called).await == Some(SessionPacket::PositiveResponse) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a slot never came free"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
