//! The inbox as the service keeps it: listings paged on reading connections (each page fits
//! a reply line, none shows another user's messages), pruning to the retention limits, and
//! new messages refused with ERRnoroom when the disk is nearly full.

use messenger_core::config::Retention;
use messenger_core::message::{InboxQuery, NewMessage, TransportKind};
use messenger_ipc::{Reply, Request, MAX_PAGE_MESSAGES};
use netbios::smb::header::dos;
use netbios::smb::SmbStatus;

use crate::harness::*;

fn message(i: usize, recipients: &[&str], text_len: usize) -> NewMessage {
    NewMessage {
        received_at: 1_700_000_000_000_000 + i as i64,
        from: "FILLER".into(),
        to: COMPUTER.into(),
        recipients: recipients.iter().map(|s| s.to_string()).collect(),
        source: None,
        transport: TransportKind::Local,
        text: format!("#{i} {}", "\u{1}".repeat(text_len)),
        raw: Vec::new(),
    }
}

async fn fill(svc: &TestService, batch: Vec<NewMessage>) -> Vec<i64> {
    svc.service
        .inbox()
        .with_store(move |s| s.insert_batch(&batch))
        .await
        .unwrap()
}

fn page_request(after_id: Option<i64>, limit: Option<usize>, last: Option<u64>) -> Request {
    Request::InboxList {
        unread_only: false,
        all_users: false,
        after_id,
        limit,
        last,
    }
}

/// One page over the control socket: ids, more, older.
async fn page(svc: &TestService, request: Request) -> (Vec<i64>, bool, u64) {
    match control_call(&svc.control(), request).await {
        Reply::Messages {
            messages,
            more,
            older,
        } => (messages.iter().map(|m| m.id).collect(), more, older),
        other => panic!("expected a page, got {other:?}"),
    }
}

/// Pages through the caller's inbox with `limit` until the daemon says there is no more.
async fn page_through(svc: &TestService, limit: Option<usize>) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (ids, more, older) = page(svc, page_request(after, limit, None)).await;
        assert_eq!(older, 0);
        assert!(ids.len() <= limit.unwrap_or(MAX_PAGE_MESSAGES).min(MAX_PAGE_MESSAGES));
        seen.extend(&ids);
        after = ids.last().copied().or(after);
        if !more {
            return seen;
        }
        assert!(!ids.is_empty(), "a page said more but held nothing");
    }
}

/// 2,500 messages of about 9.6 KB of JSON each are 24 MB, more than one reply line may hold
/// (16 MiB): a listing that answered in one reply could not be read at all. In pages, every
/// reply fits and together they hold every message once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_larger_than_a_reply_line_comes_in_pages() {
    let svc = TestService::start(Options::default()).await;
    let ids = fill(&svc, (0..2500).map(|i| message(i, &[], 1600)).collect()).await;
    assert_eq!(page_through(&svc, None).await, ids);
}

/// Paging through root's own inbox while other users' messages sit in between: each page
/// continues where the last ended, and none shows a message addressed to someone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_have_no_gaps_or_repeats_and_only_the_callers_messages() {
    let svc = TestService::start(Options::default()).await;
    let batch = (0..300)
        .map(|i| match i % 3 {
            0 => message(i, &["root"], 10),
            1 => message(i, &["alice"], 10),
            _ => message(i, &[], 10),
        })
        .collect();
    let ids = fill(&svc, batch).await;
    let mine: Vec<i64> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 1)
        .map(|(_, id)| *id)
        .collect();
    for limit in [1, 7, 199, 5000] {
        assert_eq!(page_through(&svc, Some(limit)).await, mine, "limit {limit}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_n_start_at_the_right_message_and_count_the_older_ones() {
    let svc = TestService::start(Options::default()).await;
    let ids = fill(&svc, (0..50).map(|i| message(i, &[], 10)).collect()).await;
    let (got, more, older) = page(&svc, page_request(None, Some(4), Some(10))).await;
    assert_eq!((got.as_slice(), more, older), (&ids[40..44], true, 40));
    let (got, more, _) = page(&svc, page_request(got.last().copied(), Some(100), None)).await;
    assert_eq!((got.as_slice(), more), (&ids[44..], false));
    let (got, more, older) = page(&svc, page_request(None, None, Some(500))).await;
    assert_eq!((got, more, older), (ids, false, 0));
}

/// Pruning through the service: planned on a reader, removed in batches on the writer; what
/// is left is the newest within every limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_prunes_to_its_retention_limits() {
    let svc = TestService::start(Options::configured(|c| {
        c.retention.max_messages = 700;
        c.retention.max_messages_per_user = 100;
    }))
    .await;
    let batch = (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                message(i, &["alice"], 10)
            } else {
                message(i, &[], 10)
            }
        })
        .collect();
    let ids = fill(&svc, batch).await;
    let now = 1_700_000_000_000_000 + 1000;
    let removed = svc.service.inbox().prune(now).await.unwrap();
    let left: Vec<i64> = svc.messages().await.iter().map(|m| m.id).collect();
    assert_eq!(removed, 1000 - left.len());
    // Alice's newest 100 are the even ones from index 800 on; for everyone, the odd ones of
    // the newest 700 (index 300 on).
    let expected: Vec<i64> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| if i % 2 == 0 { *i >= 800 } else { *i >= 300 })
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(left, expected);
    assert_eq!(svc.service.inbox().prune(now).await.unwrap(), 0);
    // Age: a day past the newest message plus the limit removes everything.
    let days = svc.service.inbox().retention().max_age_days as i64;
    let later = now + (days + 1) * 86_400 * 1_000_000;
    assert_eq!(
        svc.service.inbox().prune(later).await.unwrap(),
        expected.len()
    );
    assert!(svc.messages().await.is_empty());
}

/// With less free space than `min_free_disk_mib` (here more than any disk has), a sender is
/// answered ERRnoroom and nothing is stored; with the check off the same message is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_disk_refuses_new_messages_with_errnoroom() {
    let svc = TestService::start(Options::configured(|c| {
        c.retention = Retention {
            // 2^40 MiB: an exbibyte.
            min_free_disk_mib: 1 << 40,
            ..Retention::default()
        };
    }))
    .await;
    let mut s = svc.connect().await;
    let r = s.call(&d0("ALICE", COMPUTER, "no room?")).await;
    assert_eq!(
        r.header.status,
        SmbStatus::errsrv(dos::ERR_NOROOM),
        "ERRSRV/ERRnoroom: {r:?}"
    );
    assert!(svc.messages().await.is_empty());
    let dir = svc.stop().await;

    let svc = TestService::start_in(
        dir,
        Options::configured(|c| c.retention.min_free_disk_mib = 0),
    )
    .await;
    let mut s = svc.connect().await;
    let r = s.call(&d0("ALICE", COMPUTER, "room now")).await;
    assert!(r.header.status.is_success(), "{r:?}");
    svc.wait_for_message("room now").await;
    let listed = svc
        .service
        .inbox()
        .list(InboxQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

/// Listings never queue behind the writer: with the writer held up by a long job, a page is
/// still served (from a reading connection). Were listings run on the writer, this one would
/// wait for the job, and every sender's acknowledgement would wait behind listings alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_is_served_while_the_writer_is_busy() {
    let svc = TestService::start(Options::default()).await;
    let ids = fill(&svc, (0..20).map(|i| message(i, &[], 10)).collect()).await;
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let inbox = svc.service.inbox().clone();
    let busy = tokio::spawn(async move {
        inbox
            .with_store(move |_| {
                let _ = started_tx.send(());
                let _ = held.recv();
                Ok(())
            })
            .await
    });
    started.await.expect("the writer took the job");
    let listed = tokio::time::timeout(WAIT, page(&svc, page_request(None, None, None)))
        .await
        .expect("a page while the writer is busy");
    assert_eq!(listed.0, ids);
    release.send(()).unwrap();
    busy.await.unwrap().unwrap();
}
