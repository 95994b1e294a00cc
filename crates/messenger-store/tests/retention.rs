//! Counting and positioning for paged listings, and pruning to the retention limits: by age
//! (with the time passed in, never slept for), per user and in total, in small batches.

use messenger_core::config::Retention;
use messenger_store::{InboxQuery, NewMessage, PrunePlan, Store, TransportKind};

const DAY: i64 = 86_400 * 1_000_000;

fn msg_at(received_at: i64, recipients: &[&str]) -> NewMessage {
    NewMessage {
        received_at,
        from: "HOSTA".into(),
        to: "BOB".into(),
        recipients: recipients.iter().map(|s| s.to_string()).collect(),
        source: None,
        transport: TransportKind::Local,
        text: format!("sent at {received_at}"),
        raw: Vec::new(),
    }
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("inbox.db")).unwrap();
    (dir, store)
}

fn all_ids(store: &Store, query: &InboxQuery) -> Vec<i64> {
    store.list(query).unwrap().iter().map(|m| m.id).collect()
}

fn generous() -> Retention {
    Retention {
        max_age_days: 10_000,
        max_messages_per_user: 1_000_000,
        max_messages: 1_000_000,
        min_free_disk_mib: 0,
    }
}

/// Carries out a plan the way the service does: batches of `batch` until one removes nothing.
fn prune(store: &mut Store, retention: &Retention, now: i64, batch: usize) -> usize {
    let plan = store.plan_prune(retention, now).unwrap();
    let mut removed = 0;
    loop {
        let n = store.prune_batch(&plan, batch).unwrap();
        assert!(n <= batch, "a batch removed {n} > {batch}");
        if n == 0 {
            return removed;
        }
        removed += n;
    }
}

#[test]
fn count_and_nth_agree_with_the_listing_for_every_view() {
    let (_dir, mut store) = temp_store();
    let batch: Vec<NewMessage> = (0..40)
        .map(|i| match i % 4 {
            0 => msg_at(i, &["bob"]),
            1 => msg_at(i, &[]),
            2 => msg_at(i, &["carol"]),
            _ => msg_at(i, &["bob", "carol"]),
        })
        .collect();
    let ids = store.insert_batch(&batch).unwrap();
    // Some read, so that the unread views differ from the full ones.
    store.mark_read("bob", &[ids[0], ids[1], ids[4]]).unwrap();
    store.mark_read("carol", &[ids[2], ids[5]]).unwrap();
    for user in [Some("bob"), Some("carol"), Some("dave"), None] {
        for unread_only in [false, true] {
            for after_id in [None, Some(ids[6]), Some(ids[39])] {
                let q = InboxQuery {
                    user: user.map(str::to_owned),
                    unread_only,
                    after_id,
                    limit: None,
                };
                let listed = all_ids(&store, &q);
                assert_eq!(store.count(&q).unwrap(), listed.len() as u64, "{q:?}");
                for (offset, id) in listed.iter().enumerate() {
                    assert_eq!(store.nth_id(&q, offset as u64).unwrap(), Some(*id), "{q:?}");
                }
                assert_eq!(store.nth_id(&q, listed.len() as u64).unwrap(), None);
                for (offset, id) in listed.iter().rev().enumerate() {
                    assert_eq!(
                        store.nth_newest_id(&q, offset as u64).unwrap(),
                        Some(*id),
                        "{q:?}"
                    );
                }
                assert_eq!(store.nth_newest_id(&q, listed.len() as u64).unwrap(), None);
            }
        }
    }
}

/// Paging through a user's inbox with after_id from a reading connection while the writer
/// keeps adding: every page continues exactly where the last ended (no gaps, no repeats),
/// and no page ever holds another user's message.
#[test]
fn pages_on_a_reader_have_no_gaps_repeats_or_other_users_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let mut writer = Store::open(&path).unwrap();
    let reader = Store::open_read_only(&path).unwrap();
    let batch: Vec<NewMessage> = (0..500)
        .map(|i| match i % 3 {
            0 => msg_at(i, &["bob"]),
            1 => msg_at(i, &["carol"]),
            _ => msg_at(i, &[]),
        })
        .collect();
    writer.insert_batch(&batch).unwrap();
    let mut after = None;
    let mut seen: Vec<i64> = Vec::new();
    let mut round = 0;
    loop {
        let page = reader
            .list(&InboxQuery {
                user: Some("bob".into()),
                after_id: after,
                limit: Some(7),
                ..InboxQuery::default()
            })
            .unwrap();
        if page.is_empty() {
            break;
        }
        for m in &page {
            assert!(
                m.message.recipients.is_empty() || m.message.recipients == ["bob"],
                "bob was shown {:?}",
                m.message.recipients
            );
        }
        seen.extend(page.iter().map(|m| m.id));
        after = page.last().map(|m| m.id);
        round += 1;
        if round < 20 {
            writer
                .insert_batch(&[msg_at(1000 + round, &["carol"]), msg_at(1000, &["bob"])])
                .unwrap();
        }
    }
    let expected = all_ids(
        &writer,
        &InboxQuery {
            user: Some("bob".into()),
            ..InboxQuery::default()
        },
    );
    assert_eq!(seen, expected);
}

#[test]
fn pruning_by_age_removes_what_is_older_and_keeps_the_rest() {
    let (_dir, mut store) = temp_store();
    let now = 1_000 * DAY;
    let ages = [100, 40, 31, 30, 29, 1, 0];
    let batch: Vec<NewMessage> = ages
        .iter()
        .enumerate()
        .map(|(i, age)| msg_at(now - age * DAY - 1, if i % 2 == 0 { &["bob"] } else { &[] }))
        .collect();
    let ids = store.insert_batch(&batch).unwrap();
    let retention = Retention {
        max_age_days: 30,
        ..generous()
    };
    assert_eq!(prune(&mut store, &retention, now, 2), 4);
    assert_eq!(all_ids(&store, &InboxQuery::default()), ids[4..]);
    // A day later one more is past the limit.
    assert_eq!(prune(&mut store, &retention, now + DAY, 2), 1);
    assert_eq!(all_ids(&store, &InboxQuery::default()), ids[5..]);
    assert_eq!(prune(&mut store, &retention, now + DAY, 2), 0);
    // The unread bookkeeping of pruned messages goes with them: bob's last message and the
    // one for everyone are left.
    assert_eq!(store.unread_count("bob").unwrap(), 2);
}

#[test]
fn pruning_by_total_keeps_the_newest() {
    let (_dir, mut store) = temp_store();
    let batch: Vec<NewMessage> = (0..50)
        .map(|i| msg_at(i, if i % 5 == 0 { &[] } else { &["bob"] }))
        .collect();
    let ids = store.insert_batch(&batch).unwrap();
    let retention = Retention {
        max_messages: 12,
        ..generous()
    };
    assert_eq!(prune(&mut store, &retention, 100, 5), 38);
    assert_eq!(all_ids(&store, &InboxQuery::default()), ids[38..]);
    assert_eq!(prune(&mut store, &retention, 100, 5), 0);
    assert!(store.plan_prune(&retention, 100).unwrap().is_empty());
}

#[test]
fn pruning_per_user_touches_only_the_crowded_user_and_keeps_shared_messages() {
    let (_dir, mut store) = temp_store();
    let mut batch = Vec::new();
    for i in 0..30 {
        batch.push(msg_at(i, &["flooded"]));
    }
    batch.push(msg_at(30, &["flooded", "carol"]));
    batch.push(msg_at(31, &[]));
    batch.push(msg_at(32, &["carol"]));
    for i in 33..40 {
        batch.push(msg_at(i, &["flooded"]));
    }
    let ids = store.insert_batch(&batch).unwrap();
    // Carol reads the message for everyone: her read marker is a recipients row that must
    // neither count as one of her messages nor be pruned.
    store.mark_read("carol", &[ids[31]]).unwrap();
    let retention = Retention {
        max_messages_per_user: 5,
        ..generous()
    };
    let plan = store.plan_prune(&retention, 100).unwrap();
    assert_eq!(plan.below_id, 0);
    assert_eq!(plan.users.len(), 1, "{plan:?}");
    assert_eq!(prune(&mut store, &retention, 100, 4), 33);
    let flooded = all_ids(
        &store,
        &InboxQuery {
            user: Some("flooded".into()),
            ..InboxQuery::default()
        },
    );
    // The five newest of their own plus the message for everyone.
    let mut expected = vec![ids[31]];
    expected.extend_from_slice(&ids[35..]);
    assert_eq!(flooded, expected);
    let carol = store
        .list(&InboxQuery {
            user: Some("carol".into()),
            ..InboxQuery::default()
        })
        .unwrap();
    assert_eq!(
        carol.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[30], ids[31], ids[32]]
    );
    assert!(carol[1].read, "carol's read marker survived");
    assert!(store.plan_prune(&retention, 100).unwrap().is_empty());
}

/// The plan is worked out on a read-only connection (off the writer), and an old plan
/// carried out after more messages arrived removes nothing it should keep.
#[test]
fn a_plan_from_a_reader_stays_safe_after_more_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let mut writer = Store::open(&path).unwrap();
    let reader = Store::open_read_only(&path).unwrap();
    let first = writer
        .insert_batch(&(0..10).map(|i| msg_at(i, &[])).collect::<Vec<_>>())
        .unwrap();
    let retention = Retention {
        max_messages: 4,
        ..generous()
    };
    let plan: PrunePlan = reader.plan_prune(&retention, 100).unwrap();
    let later = writer
        .insert_batch(&(0..3).map(|i| msg_at(20 + i, &[])).collect::<Vec<_>>())
        .unwrap();
    while writer.prune_batch(&plan, 3).unwrap() > 0 {}
    let mut expected = first[6..].to_vec();
    expected.extend(later);
    assert_eq!(all_ids(&writer, &InboxQuery::default()), expected);
}

#[test]
fn a_consistent_read_sees_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let mut writer = Store::open(&path).unwrap();
    let reader = Store::open_read_only(&path).unwrap();
    writer.insert_batch(&[msg_at(1, &[])]).unwrap();
    let (before, after) = reader
        .consistent_read(|r| {
            let before = r.count(&InboxQuery::default())?;
            writer.insert_batch(&[msg_at(2, &[])]).unwrap();
            Ok((before, r.count(&InboxQuery::default())?))
        })
        .unwrap();
    assert_eq!((before, after), (1, 1));
    assert_eq!(reader.count(&InboxQuery::default()).unwrap(), 2);
}
