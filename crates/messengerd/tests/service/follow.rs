//! The follow stream (`messenger inbox --follow`, the desktop agent): a resumed follow replays
//! the inbox after its id, messages come once and in id order, and a follower that falls
//! behind is told where the gap starts, so that with a listing it misses nothing.

use std::collections::BTreeSet;

use messenger_core::message::{NewMessage, TransportKind};
use messenger_ipc::{decode_line, encode_line, Audience, MessageView, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use crate::harness::*;

fn me() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .map(|u| u.name)
        .unwrap_or_else(|| nix::unistd::geteuid().to_string())
}

fn message(i: usize, recipients: Vec<String>, text_len: usize) -> NewMessage {
    NewMessage {
        received_at: 1_700_000_000_000_000 + i as i64,
        from: "SENDER".into(),
        to: COMPUTER.into(),
        recipients,
        source: None,
        transport: TransportKind::Local,
        text: format!("#{i} {}", "x".repeat(text_len)),
        raw: Vec::new(),
    }
}

/// Stores `count` messages for everyone concurrently, `text_len` characters each; their ids.
async fn store_concurrently(svc: &TestService, count: usize, text_len: usize) -> Vec<i64> {
    /// Stores in flight at once: below the committer's queue.
    const IN_FLIGHT: usize = 128;
    let mut ids = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(IN_FLIGHT) {
        let stores: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let inbox = svc.service.inbox().clone();
                tokio::spawn(async move { inbox.store(message(i, Vec::new(), text_len)).await })
            })
            .collect();
        for s in stores {
            ids.push(s.await.unwrap().unwrap());
        }
    }
    ids
}

/// A follow stream after its `Following`, and the connection's writing half (kept open).
async fn follow(
    svc: &TestService,
    after_id: Option<i64>,
) -> (BufReader<OwnedReadHalf>, OwnedWriteHalf) {
    let stream = UnixStream::connect(svc.control()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let request = Request::InboxFollow {
        all_users: false,
        after_id,
    };
    write.write_all(&encode_line(&request)).await.unwrap();
    let mut reader = BufReader::new(read);
    assert_eq!(next(&mut reader).await, Reply::Following);
    (reader, write)
}

async fn next(reader: &mut BufReader<OwnedReadHalf>) -> Reply {
    let mut line = Vec::new();
    tokio::time::timeout(WAIT, reader.read_until(b'\n', &mut line))
        .await
        .expect("a reply in time")
        .unwrap();
    decode_line(&line).unwrap()
}

async fn next_message(reader: &mut BufReader<OwnedReadHalf>) -> MessageView {
    match next(reader).await {
        Reply::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_follow_replays_the_inbox_after_its_id_then_streams_in_order() {
    let svc = TestService::start(Options::default()).await;
    let inbox = svc.service.inbox();
    let mut stored = Vec::new();
    for (i, recipients) in [
        vec![],
        vec![me()],
        vec![me(), "someone-else".to_owned()],
        vec!["someone-else".to_owned()],
        vec![],
    ]
    .into_iter()
    .enumerate()
    {
        stored.push(inbox.store(message(i, recipients, 10)).await.unwrap());
    }
    let (mut reader, _write) = follow(&svc, Some(stored[0])).await;
    // The replay: everything after the first that is ours (not the fourth), read or not,
    // with who it was for.
    let replayed: Vec<(i64, Audience)> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let m = next_message(&mut reader).await;
            v.push((m.id, m.audience));
        }
        v
    };
    assert_eq!(
        replayed,
        [
            (stored[1], Audience::User),
            (stored[2], Audience::Users),
            (stored[4], Audience::Everyone)
        ]
    );
    // Then new messages, stored concurrently, each once and in id order.
    let ids = store_concurrently(&svc, 300, 10).await;
    let mut streamed = Vec::new();
    for _ in 0..ids.len() {
        streamed.push(next_message(&mut reader).await.id);
    }
    assert!(streamed.windows(2).all(|w| w[0] < w[1]), "{streamed:?}");
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(streamed, sorted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_falls_behind_is_told_where_and_misses_nothing() {
    /// More messages than the service keeps for a follower, each large enough that the
    /// socket's buffer fills long before.
    const MESSAGES: usize = 3000;
    const TEXT_LEN: usize = 1000;
    let svc = TestService::start(Options::default()).await;
    let (mut reader, _write) = follow(&svc, None).await;
    let ids: BTreeSet<i64> = store_concurrently(&svc, MESSAGES, TEXT_LEN)
        .await
        .into_iter()
        .collect();
    let mut seen = BTreeSet::new();
    let mut gap = None;
    // Read until the newest message came on the stream.
    let newest = *ids.last().unwrap();
    while !seen.contains(&newest) {
        match next(&mut reader).await {
            Reply::Message(m) => {
                if let Some(last) = seen.last() {
                    assert!(m.id > *last, "in order");
                }
                seen.insert(m.id);
            }
            Reply::Lagged { missed, after_id } => {
                assert!(missed > 0);
                assert_eq!(
                    after_id,
                    seen.last().copied(),
                    "the gap starts after the last sent"
                );
                gap.get_or_insert(after_id);
            }
            other => panic!("{other:?}"),
        }
    }
    let gap = gap.expect("the follower was told that it fell behind");
    assert!(seen.len() < ids.len());
    // What the stream skipped is in the inbox after the id it named.
    let mut after = gap;
    loop {
        let reply = control_call(
            &svc.control(),
            Request::InboxList {
                unread_only: false,
                all_users: false,
                after_id: after,
                limit: None,
                last: None,
            },
        )
        .await;
        let Reply::Messages { messages, more, .. } = reply else {
            panic!("{reply:?}")
        };
        after = messages.last().map(|m| m.id);
        seen.extend(messages.iter().map(|m| m.id));
        if !more {
            break;
        }
    }
    assert_eq!(seen, ids);
}

/// Messages that arrive over the organisation's network (stored once by their origin id) and
/// messages that expire are stored in transactions of their own, beside the group commits of
/// the rest; followers must still get every one of them once and in id order, or the agent's
/// `after_id` would skip a message when it resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_stored_every_way_reach_followers_once_and_in_id_order() {
    /// Rounds of one store of each kind at once; enough that a message handed to followers
    /// late would be overtaken by another kind's in some round.
    const ROUNDS: usize = 200;
    let svc = TestService::start(Options::default()).await;
    let inbox = svc.service.inbox().clone();
    let mut followed = inbox.subscribe().await.unwrap();
    let far_future = 4_000_000_000_000_000;
    let mut ids = Vec::new();
    for round in 0..ROUNDS {
        let (a, b, c) = (inbox.clone(), inbox.clone(), inbox.clone());
        let once = tokio::spawn(async move {
            a.store_once(
                format!("origin-{round}"),
                message(3 * round, vec![], 5),
                None,
            )
            .await
        });
        let grouped = tokio::spawn(async move { b.store(message(3 * round + 1, vec![], 5)).await });
        let expiring = tokio::spawn(async move {
            c.store_expiring(message(3 * round + 2, vec![], 5), far_future)
                .await
        });
        ids.push(
            once.await
                .unwrap()
                .unwrap()
                .expect("a new origin id is stored"),
        );
        ids.push(grouped.await.unwrap().unwrap());
        ids.push(expiring.await.unwrap().unwrap());
    }
    // A redelivery is stored no more and reaches no follower.
    assert_eq!(
        inbox
            .store_once("origin-0".into(), message(0, vec![], 5), None)
            .await
            .unwrap(),
        None
    );
    let mut streamed = Vec::new();
    while let Ok(m) = followed.try_recv() {
        streamed.push(m.id);
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(streamed, sorted, "each once, in id order");
}
