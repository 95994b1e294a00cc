//! Messages that expire unless read in time (`messenger send --time`): the expiry is stored
//! with the message, settled once when due, and shown in every view.

use messenger_store::{ExpiredMessage, InboxQuery, NewMessage, Store, TransportKind};

const T0: i64 = 1_700_000_000_000_000;
const SECOND: i64 = 1_000_000;

fn msg(text: &str, recipients: &[&str]) -> NewMessage {
    NewMessage {
        received_at: T0,
        from: "ALICE".into(),
        to: "BOB".into(),
        recipients: recipients.iter().map(|s| s.to_string()).collect(),
        source: None,
        transport: TransportKind::Local,
        text: text.into(),
        raw: text.as_bytes().to_vec(),
    }
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("inbox.db")).unwrap();
    (dir, store)
}

fn for_user(user: &str) -> InboxQuery {
    InboxQuery {
        user: Some(user.into()),
        ..InboxQuery::default()
    }
}

#[test]
fn an_unread_message_expires_when_due_and_stays_in_the_inbox() {
    let (_dir, mut store) = temp_store();
    let plain = store.insert_batch(&[msg("no expiry", &["bob"])]).unwrap()[0];
    let soon = store
        .insert_expiring(&msg("soon", &["bob"]), T0 + 5 * SECOND)
        .unwrap();
    let later = store
        .insert_expiring(&msg("later", &["bob"]), T0 + 60 * SECOND)
        .unwrap();
    assert_eq!(store.next_expiry().unwrap(), Some(T0 + 5 * SECOND));

    // Not due yet: nothing changes.
    assert!(store
        .expire_due(T0 + 5 * SECOND - 1, 100)
        .unwrap()
        .is_empty());
    let listed = store.list(&for_user("bob")).unwrap();
    assert!(listed.iter().all(|m| !m.expired));
    assert_eq!(listed[1].expires_at, Some(T0 + 5 * SECOND));
    assert_eq!(listed[0].expires_at, None);

    assert_eq!(
        store.expire_due(T0 + 5 * SECOND, 100).unwrap(),
        vec![ExpiredMessage {
            id: soon,
            recipients: vec!["bob".into()]
        }]
    );
    // Settled once: a second pass finds nothing, and the timer moves on to the next.
    assert!(store.expire_due(T0 + 6 * SECOND, 100).unwrap().is_empty());
    assert_eq!(store.next_expiry().unwrap(), Some(T0 + 60 * SECOND));

    let listed = store.list(&for_user("bob")).unwrap();
    assert_eq!(listed.len(), 3, "an expired message stays in the inbox");
    let expired: Vec<i64> = listed.iter().filter(|m| m.expired).map(|m| m.id).collect();
    assert_eq!(expired, vec![soon]);
    assert!(!listed.iter().find(|m| m.id == soon).unwrap().read);
    // Root's view and the single-message views say so too.
    assert!(store.get(soon).unwrap().unwrap().expired);
    assert!(store.get_for_user("bob", soon).unwrap().unwrap().expired);
    assert!(!store.get(plain).unwrap().unwrap().expired);
    assert!(!store.get(later).unwrap().unwrap().expired);
}

#[test]
fn a_message_read_before_its_expiry_never_expires() {
    let (_dir, mut store) = temp_store();
    let addressed = store
        .insert_expiring(&msg("addressed", &["bob", "carol"]), T0 + SECOND)
        .unwrap();
    let everyone = store
        .insert_expiring(&msg("for everyone", &[]), T0 + SECOND)
        .unwrap();
    let ignored = store
        .insert_expiring(&msg("ignored", &[]), T0 + SECOND)
        .unwrap();
    // One of the addressees read it; somebody read the message for everyone.
    store.mark_read("carol", &[addressed, everyone]).unwrap();
    let expired = store.expire_due(T0 + 2 * SECOND, 100).unwrap();
    assert_eq!(
        expired,
        vec![ExpiredMessage {
            id: ignored,
            recipients: Vec::new()
        }]
    );
    assert_eq!(store.next_expiry().unwrap(), None);
    assert!(!store.get(addressed).unwrap().unwrap().expired);
    assert!(!store.get(everyone).unwrap().unwrap().expired);
    // Reading an expired message later marks it read, and it stays expired.
    store.mark_read("dave", &[ignored]).unwrap();
    let m = store.get_for_user("dave", ignored).unwrap().unwrap();
    assert!(m.read && m.expired);
}

#[test]
fn a_pass_settles_at_most_its_batch_the_earliest_first() {
    let (_dir, mut store) = temp_store();
    let mut ids = Vec::new();
    for i in (0..5).rev() {
        ids.push(
            store
                .insert_expiring(&msg(&format!("m{i}"), &["bob"]), T0 + i * SECOND)
                .unwrap(),
        );
    }
    ids.reverse(); // ids[i] expires at T0 + i s
    let first: Vec<i64> = store
        .expire_due(T0 + 10 * SECOND, 2)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(first, ids[..2]);
    let rest: Vec<i64> = store
        .expire_due(T0 + 10 * SECOND, 100)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(rest, ids[2..]);
}

#[test]
fn the_expiry_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let id = {
        let mut store = Store::open(&path).unwrap();
        store
            .insert_expiring(&msg("kept", &["bob"]), T0 + SECOND)
            .unwrap()
    };
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.next_expiry().unwrap(), Some(T0 + SECOND));
    assert_eq!(store.expire_due(T0 + SECOND, 10).unwrap()[0].id, id);
    drop(store);
    let reader = Store::open_read_only(&path).unwrap();
    assert!(reader.get(id).unwrap().unwrap().expired);
}
