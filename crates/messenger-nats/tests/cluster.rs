//! Organisation-wide delivery against a real 3-node JetStream cluster on loopback.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::ConsumerInfoErrorKind;
use bytes::Bytes;
use common::{eventually, host, Cluster};
use messenger_core::nerr::{NERR_DUPLICATE_NAME, NERR_NAME_NOT_FOUND, NERR_NETWORK_ERROR};
use messenger_core::transport::{Outgoing, Reach, Recipient, Transport};
use messenger_core::InboxQuery;
use messenger_nats::config::DEFAULT_RETENTION;
use messenger_nats::connection::RECONNECT_GRACE;
use messenger_nats::consumer::{self, Inbox, Received, StoreInbox};
use messenger_nats::subject::EncodedName;
use messenger_nats::wire::{MessageId, WireMessage, MAX_PAYLOAD};
use messenger_nats::{DirectoryError, NatsTransport};
use messenger_store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long a message may take from publish to the receiving inbox in these tests: a message
/// lost on its way with a dead member comes again after the consumer's ack wait, a pull
/// request lost with it is replaced within its expiry, and the rest is for a busy machine.
const ARRIVAL_TIMEOUT: Duration = consumer::ACK_WAIT
    .saturating_add(consumer::PULL_EXPIRES)
    .saturating_add(Duration::from_secs(15));

fn outgoing(to: &str, text: &str) -> Outgoing {
    Outgoing {
        from: "ALICE".into(),
        to: Recipient::Name(to.into()),
        text: text.into(),
        allow_long: false,
    }
}

fn texts(inbox: &StoreInbox) -> Vec<String> {
    let store = inbox.store().lock().unwrap();
    store
        .list(&InboxQuery::default())
        .unwrap()
        .into_iter()
        .map(|m| m.message.text)
        .collect()
}

/// A receiving host: its inbox in a temporary directory and its consumer task.
struct Receiver {
    _dir: tempfile::TempDir,
    inbox: StoreInbox,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn receiver(nats: messenger_nats::Nats, name: &str) -> Receiver {
    let dir = tempfile::tempdir().unwrap();
    let inbox = StoreInbox::new(Store::open(dir.path().join("inbox.db")).unwrap());
    receiver_with(nats, name, dir, inbox)
}

fn receiver_with(
    nats: messenger_nats::Nats,
    name: &str,
    dir: tempfile::TempDir,
    inbox: StoreInbox,
) -> Receiver {
    let stop = CancellationToken::new();
    let task = {
        let (inbox, stop) = (inbox.clone(), stop.clone());
        let host = EncodedName::new(name).unwrap();
        tokio::spawn(async move {
            consumer::run(&nats, &host, &inbox, stop.cancelled_owned()).await;
        })
    };
    Receiver {
        _dir: dir,
        inbox,
        stop,
        task,
    }
}

impl Receiver {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

/// The consumer of `host` as the cluster sees it now, if it exists.
async fn consumer_info(
    nats: &messenger_nats::Nats,
    host: &str,
) -> Option<async_nats::jetstream::consumer::Info> {
    durable_info(nats, &EncodedName::new(host).unwrap().host_consumer()).await
}

/// The durable consumer `name` (of the host stream, or of the user stream for `user-` names)
/// as the cluster sees it now, if it exists.
async fn durable_info(
    nats: &messenger_nats::Nats,
    name: &str,
) -> Option<async_nats::jetstream::consumer::Info> {
    // A request may time out on a loaded machine while the consumer's group elects a leader.
    let started = Instant::now();
    loop {
        let stream = if name.starts_with("user-") {
            nats.user_stream().await.unwrap()
        } else {
            nats.stream().await.unwrap()
        };
        match stream.consumer_info(name).await {
            Ok(info) => return Some(info),
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => return None,
            Err(e) if started.elapsed() > ARRIVAL_TIMEOUT => panic!("consumer info: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// An inbox that waits for `release` before it commits, then commits and never returns: the
/// service dying between its commit and its acknowledgement.
struct DyingInbox {
    inner: StoreInbox,
    release: Arc<Notify>,
    committed: Arc<Notify>,
}

impl Inbox for DyingInbox {
    async fn commit(&self, received: Received) -> Result<bool, String> {
        self.release.notified().await;
        let stored = self.inner.commit(received).await?;
        assert!(stored, "the first delivery is stored");
        self.committed.notify_one();
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_name_held_by_one_host_is_a_duplicate_for_another() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let (_a, dir_a) = host(cluster.settings(), "HOSTA").await;
    let (_b, dir_b) = host(cluster.settings(), "HOSTB").await;

    let held = dir_a.claim("bob").await.unwrap();
    let err = dir_b.claim("BOB").await.unwrap_err();
    assert_eq!(err, DirectoryError::Duplicate { name: "BOB".into() });
    assert_eq!(err.nerr(), NERR_DUPLICATE_NAME);
    // The holder takes its own name back (a restart), and everyone sees who holds it.
    let again = dir_a.claim("BOB").await.unwrap();
    assert!(again.revision > held.revision);
    assert_eq!(
        dir_b.holder("bob").await.unwrap(),
        Some(EncodedName::new("HOSTA").unwrap())
    );
    assert_eq!(dir_b.holder("CAROL").await.unwrap(), None);
    // A name with a subject separator and a space is one key, not a pattern or a path.
    dir_a.claim("A.B C").await.unwrap();
    assert!(matches!(
        dir_b.claim("a.b c").await,
        Err(DirectoryError::Duplicate { .. })
    ));
    dir_b.claim("A.B").await.unwrap();
    assert_eq!(dir_a.holder("A").await.unwrap(), None);
    assert_eq!(
        dir_a.holder("A.B").await.unwrap(),
        Some(EncodedName::new("HOSTB").unwrap())
    );
    assert_eq!(dir_b.claim("A.*").await, Err(DirectoryError::InvalidName));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_expire_unless_refreshed_and_a_lost_name_is_reported() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let mut settings = cluster.settings();
    settings.directory_max_age = Duration::from_secs(2);
    let (_a, dir_a) = host(settings.clone(), "HOSTA").await;
    let (_b, dir_b) = host(settings.clone(), "HOSTB").await;

    let mut kept = dir_a.claim("KEPT").await.unwrap();
    let mut dropped = dir_a.claim("DROPPED").await.unwrap();
    let mut carol = dir_a.set_user_here("CAROL").await.unwrap();
    // DAVE's login is not refreshed: it expires like a name.
    dir_a.set_user_here("DAVE").await.unwrap();
    let started = Instant::now();
    let mut expired = false;
    while started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(settings.refresh_interval()).await;
        dir_a.refresh(&mut kept).await.unwrap();
        dir_a.refresh(&mut carol).await.unwrap();
        if dir_b.holder("DROPPED").await.unwrap().is_none()
            && dir_b.user_host("DAVE").await.unwrap().is_none()
        {
            expired = true;
            break;
        }
    }
    assert!(
        expired,
        "an entry that is not refreshed expires with max_age"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before its age"
    );
    assert_eq!(
        dir_b.holder("KEPT").await.unwrap(),
        Some(EncodedName::new("HOSTA").unwrap()),
        "a refreshed entry lives on"
    );
    assert_eq!(
        dir_b.user_host("CAROL").await.unwrap(),
        Some(EncodedName::new("HOSTA").unwrap()),
        "a refreshed login lives on"
    );
    // CAROL logs in on HOSTB: the last login wins, and HOSTA's refresh learns it.
    dir_b.set_user_here("CAROL").await.unwrap();
    assert_eq!(
        dir_a.refresh(&mut carol).await,
        Err(DirectoryError::Lost {
            name: "CAROL".into()
        })
    );
    // Another host can take the expired name now, and the old holder learns it lost it.
    dir_b.claim("DROPPED").await.unwrap();
    assert_eq!(
        dir_a.refresh(&mut dropped).await,
        Err(DirectoryError::Lost {
            name: "DROPPED".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directed_message_reaches_the_holders_inbox_exactly_once_across_retries() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let (a, dir_a) = host(cluster.settings(), "HOSTA").await;
    let (b, dir_b) = host(cluster.settings(), "HOSTB").await;
    dir_b.claim("BOB").await.unwrap();
    let rx = receiver(b, "HOSTB").await;
    let transport = NatsTransport::new(a.clone(), dir_a);

    assert_eq!(
        transport.reach(&Recipient::Name("BOB".into())),
        Reach::Network
    );
    let delivery = transport
        .send(&outgoing("bob", "through the organisation"))
        .await
        .unwrap();
    assert_eq!(delivery.recipient, "BOB");

    // A retry with the same Nats-Msg-Id: JetStream drops it.
    let hostb = EncodedName::new("HOSTB").unwrap();
    let retried = WireMessage {
        expires_in_secs: None,
        id: MessageId::random(),
        from: "ALICE".into(),
        from_host: "HOSTA".into(),
        to: "BOB".into(),
        text: "retried".into(),
    };
    assert!(!transport.publish(&hostb, &retried).await.unwrap());
    assert!(
        transport.publish(&hostb, &retried).await.unwrap(),
        "a duplicate"
    );
    // A redelivery JetStream cannot see as one (another Nats-Msg-Id, as after the window):
    // the inbox stores the message id once.
    let ack = a
        .jetstream()
        .publish(hostb.host_subject(), Bytes::from(retried.encode()))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(!ack.duplicate);

    eventually(ARRIVAL_TIMEOUT, "both messages in the inbox", || {
        texts(&rx.inbox).len() == 2
    })
    .await;
    // Give a wrong extra copy time to arrive before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut got = texts(&rx.inbox);
    got.sort();
    assert_eq!(got, ["retried", "through the organisation"]);
    rx.stop().await;

    let unknown = transport
        .send(&outgoing("CAROL", "nobody"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code, NERR_NAME_NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_acknowledges_only_after_the_inbox_commit_and_a_redelivery_is_stored_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let (a, dir_a) = host(cluster.settings(), "HOSTA").await;
    let (b, dir_b) = host(cluster.settings(), "HOSTB").await;
    dir_b.claim("BOB").await.unwrap();
    let transport = NatsTransport::new(a, dir_a);

    let dir = tempfile::tempdir().unwrap();
    let inbox = StoreInbox::new(Store::open(dir.path().join("inbox.db")).unwrap());
    let (release, committed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let dying = DyingInbox {
        inner: inbox.clone(),
        release: Arc::clone(&release),
        committed: Arc::clone(&committed),
    };
    let stop = CancellationToken::new();
    let task = {
        let (nats, stop) = (b.clone(), stop.clone());
        let host = EncodedName::new("HOSTB").unwrap();
        tokio::spawn(async move {
            consumer::run(&nats, &host, &dying, stop.cancelled_owned()).await;
        })
    };
    transport
        .send(&outgoing("BOB", "committed once"))
        .await
        .unwrap();

    // Delivered to the host, not yet in its inbox: JetStream has no acknowledgement.
    let started = Instant::now();
    // (Until the consumer task has created the durable consumer, there is none to ask.)
    while consumer_info(&b, "HOSTB").await.map(|i| i.num_ack_pending) != Some(1) {
        assert!(started.elapsed() < ARRIVAL_TIMEOUT, "never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(texts(&inbox).is_empty());
    // Committed, and the service dies before it acknowledges.
    release.notify_one();
    committed.notified().await;
    assert_eq!(texts(&inbox), ["committed once"]);
    stop.cancel();
    task.await.unwrap();
    let info = consumer_info(&b, "HOSTB").await.unwrap();
    assert_eq!(info.num_ack_pending, 1, "nothing acknowledged the message");

    // The service comes back with the same inbox: JetStream delivers the message again after
    // the ack wait, the inbox already has its id, and this time it is acknowledged.
    let rx = receiver_with(b.clone(), "HOSTB", dir, inbox);
    let started = Instant::now();
    loop {
        let info = consumer_info(&b, "HOSTB").await.unwrap();
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            assert!(info.num_redelivered <= 1);
            assert_eq!(
                info.ack_floor.stream_sequence,
                info.delivered.stream_sequence
            );
            break;
        }
        assert!(
            started.elapsed() < ARRIVAL_TIMEOUT,
            "the redelivery was never acknowledged: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() >= consumer::ACK_WAIT / 2,
        "acknowledged by the redelivery, not before"
    );
    assert_eq!(texts(&rx.inbox), ["committed once"], "stored once");
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_stream_loses_and_doubles_no_acknowledged_message() {
    const MESSAGES: usize = 150;
    const KILL_AFTER: usize = 50;
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let (a, dir_a) = host(cluster.settings(), "HOSTA").await;
    let (b, dir_b) = host(cluster.settings(), "HOSTB").await;
    dir_b.claim("BOB").await.unwrap();
    let rx = receiver(b, "HOSTB").await;
    let transport = NatsTransport::new(a.clone(), dir_a);

    let mut acknowledged = Vec::new();
    // Each failed send: which, when after the first send, and why.
    let mut failed = Vec::new();
    let started = Instant::now();
    for i in 0..MESSAGES {
        if i == KILL_AFTER {
            // The member leading the stream: a leader election under load.
            let info = a.stream().await.unwrap().get_info().await.unwrap();
            let leader = info
                .cluster
                .and_then(|c| c.leader)
                .expect("a stream leader");
            cluster.kill_named(&leader);
        }
        let text = format!("message {i}");
        match transport.send(&outgoing("BOB", &text)).await {
            Ok(_) => acknowledged.push(text),
            Err(e) => failed.push((i, started.elapsed(), e.message)),
        }
    }
    // The sender rides out the fail-over: publishes are retried with the same id, and a
    // lost connection is waited for (RECONNECT_GRACE).
    assert!(
        failed.len() <= MESSAGES / 10,
        "the cluster kept taking messages with one node dead ({} of {MESSAGES} failed; first \
         {:?}, last {:?})",
        failed.len(),
        failed.first(),
        failed.last()
    );
    let started = Instant::now();
    loop {
        let got = texts(&rx.inbox);
        let missing: Vec<&String> = acknowledged.iter().filter(|t| !got.contains(t)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < ARRIVAL_TIMEOUT,
            "{} acknowledged messages never arrived, first {:?}",
            missing.len(),
            missing.first()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in texts(&rx.inbox) {
        *counts.entry(t).or_default() += 1;
    }
    for t in &acknowledged {
        assert_eq!(counts.get(t), Some(&1), "{t} is in the inbox once");
    }
    assert!(counts.values().all(|&n| n == 1), "nothing is doubled");
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_unreachable_a_remote_send_fails_at_once_with_a_clear_error() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let (a, dir_a) = host(cluster.settings(), "HOSTA").await;
    dir_a.claim("HOSTA").await.unwrap();
    let transport = NatsTransport::new(a.clone(), dir_a);
    for i in 0..common::NODES {
        cluster.kill(i);
    }
    eventually(Duration::from_secs(10), "the client to notice", || {
        !a.is_connected()
    })
    .await;

    // Just after the connection is lost, a send waits for a reconnection, but no longer
    // than RECONNECT_GRACE.
    let started = Instant::now();
    let err = transport.send(&outgoing("BOB", "hello")).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited <= RECONNECT_GRACE + Duration::from_millis(500),
        "gave up within the grace, not after {waited:?}"
    );
    assert_eq!(err.code, NERR_NETWORK_ERROR);
    assert!(err.message.contains("unreachable"), "{}", err.message);
    assert!(!err.input);

    // Once the cluster has been unreachable for longer, the router is told at once and a
    // send fails at once.
    tokio::time::sleep(RECONNECT_GRACE).await;
    assert_eq!(
        transport.reach(&Recipient::Name("BOB".into())),
        Reach::Unreachable
    );
    let started = Instant::now();
    let err = transport.send(&outgoing("BOB", "hello")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "failed at once, not after {:?}",
        started.elapsed()
    );
    assert_eq!(err.code, NERR_NETWORK_ERROR);
    assert_eq!(
        err.message,
        "The organisation's message network (NATS) is unreachable; the message was not sent."
    );
}

/// A user logging in on a host: the directory places them there and the host receives their
/// queue into its inbox for their account, until they log out.
struct Login {
    directory: messenger_nats::Directory,
    rx: Receiver,
}

async fn login(
    nats: &messenger_nats::Nats,
    directory: &messenger_nats::Directory,
    user: &str,
    inbox: StoreInbox,
    dir: tempfile::TempDir,
) -> Login {
    directory.set_user_here(user).await.unwrap();
    let stop = CancellationToken::new();
    let task = {
        let (nats, inbox, stop) = (nats.clone(), inbox.clone(), stop.clone());
        let user = EncodedName::new(user).unwrap();
        tokio::spawn(async move {
            consumer::run_user(&nats, &user, "carol", &inbox, stop.cancelled_owned()).await;
        })
    };
    Login {
        directory: directory.clone(),
        rx: Receiver {
            _dir: dir,
            inbox,
            stop,
            task,
        },
    }
}

impl Login {
    async fn logout(self, user: &str) -> (tempfile::TempDir, StoreInbox) {
        self.directory.clear_user_here(user).await.unwrap();
        self.rx.stop.cancel();
        self.rx.task.await.unwrap();
        (self.rx._dir, self.rx.inbox)
    }
}

fn inbox_in(dir: &tempfile::TempDir) -> StoreInbox {
    StoreInbox::new(Store::open(dir.path().join("inbox.db")).unwrap())
}

async fn user_queue_info(
    nats: &messenger_nats::Nats,
    user: &str,
) -> async_nats::jetstream::consumer::Info {
    let name = EncodedName::new(user).unwrap().user_consumer();
    durable_info(nats, &name)
        .await
        .expect("the user's queue exists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_for_a_user_logged_in_nowhere_waits_and_reaches_them_at_their_next_login_elsewhere(
) {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let (a, dir_a) = host(cluster.settings(), "HOSTA").await;
    let (b, dir_b) = host(cluster.settings(), "HOSTB").await;
    let (c, dir_c) = host(cluster.settings(), "HOSTC").await;
    let transport = NatsTransport::new(a.clone(), dir_a);
    // The stream keeps waiting messages for the configured retention (7 days by default).
    let info = a.stream().await.unwrap().get_info().await.unwrap();
    assert_eq!(info.config.max_age, cluster.settings().retention);
    assert_eq!(info.config.max_age, Duration::from_secs(7 * 24 * 60 * 60));

    // Nobody has heard of DAVE: refused, not queued.
    let err = transport
        .send_message(&outgoing("DAVE", "into the void"))
        .await
        .unwrap_err();
    assert_eq!(err.code, NERR_NAME_NOT_FOUND);

    // CAROL logs in on HOSTB once and logs out again.
    let dir = tempfile::tempdir().unwrap();
    let session = login(&b, &dir_b, "CAROL", inbox_in(&dir), dir).await;
    let started = Instant::now();
    while !consumer::user_has_queue(&b, &EncodedName::new("CAROL").unwrap())
        .await
        .unwrap()
    {
        assert!(started.elapsed() < ARRIVAL_TIMEOUT, "no queue for CAROL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (dir_on_b, inbox_on_b) = session.logout("CAROL").await;
    assert_eq!(dir_b.user_host("CAROL").await.unwrap(), None);

    // Logged in nowhere: the message waits, and the sender is told so.
    let sent = transport
        .send_message(&outgoing("carol", "waiting for you"))
        .await
        .unwrap();
    assert_eq!(
        sent,
        messenger_nats::transport::Sent::Queued {
            user: "CAROL".into()
        }
    );
    assert_eq!(
        sent.notice().unwrap(),
        "CAROL is not logged on; the message will be delivered when CAROL logs on."
    );
    // The publish was acknowledged once the stream stored it; the queue's count follows a
    // moment later on current servers (seen with nats-server 2.15; 2.9 has it at once).
    let started = Instant::now();
    while user_queue_info(&a, "CAROL").await.num_pending != 1 {
        assert!(
            started.elapsed() < ARRIVAL_TIMEOUT,
            "the message waits in CAROL's queue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // CAROL logs in on HOSTC: the message is delivered there, for her account, once.
    let dir = tempfile::tempdir().unwrap();
    let session = login(&c, &dir_c, "CAROL", inbox_in(&dir), dir).await;
    eventually(ARRIVAL_TIMEOUT, "the waiting message at HOSTC", || {
        texts(&session.rx.inbox).len() == 1
    })
    .await;
    {
        let store = session.rx.inbox.store().lock().unwrap();
        let stored = store.list(&InboxQuery::default()).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].message.text, "waiting for you");
        assert_eq!(stored[0].message.recipients, ["carol"]);
        assert_eq!(stored[0].message.to, "CAROL");
    }

    // While she is logged in on HOSTC, a message for her goes there at once.
    let sent = transport
        .send_message(&outgoing("CAROL", "you are back"))
        .await
        .unwrap();
    assert_eq!(
        sent,
        messenger_nats::transport::Sent::User {
            user: "CAROL".into(),
            host: "HOSTC".into()
        }
    );
    assert_eq!(sent.notice(), None);
    eventually(ARRIVAL_TIMEOUT, "the second message at HOSTC", || {
        texts(&session.rx.inbox).len() == 2
    })
    .await;
    let started = Instant::now();
    loop {
        let info = user_queue_info(&c, "CAROL").await;
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            break;
        }
        assert!(
            started.elapsed() < ARRIVAL_TIMEOUT,
            "never acknowledged: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    session.logout("CAROL").await;

    // Back on HOSTB: what was delivered on HOSTC does not come again.
    let session = login(&b, &dir_b, "CAROL", inbox_on_b, dir_on_b).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(texts(&session.rx.inbox).is_empty());
    session.logout("CAROL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_message_older_than_the_retention_is_not_delivered() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    // The stream is created with the default retention, then a host configured otherwise
    // brings it to its own.
    let (first, _) = host(cluster.settings(), "HOSTZ").await;
    let info = first.stream().await.unwrap().get_info().await.unwrap();
    assert_eq!(info.config.max_age, DEFAULT_RETENTION);
    let mut settings = cluster.settings();
    settings.retention = Duration::from_secs(2);
    let (a, dir_a) = host(settings.clone(), "HOSTA").await;
    let (b, _dir_b) = host(settings.clone(), "HOSTB").await;
    let info = a.stream().await.unwrap().get_info().await.unwrap();
    assert_eq!(info.config.max_age, Duration::from_secs(2));
    let carol = EncodedName::new("CAROL").unwrap();
    consumer::create_user_queue(&b, &carol).await.unwrap();
    let transport = NatsTransport::new(a.clone(), dir_a);
    let sent = transport
        .send_message(&outgoing("CAROL", "too late"))
        .await
        .unwrap();
    assert!(matches!(
        sent,
        messenger_nats::transport::Sent::Queued { .. }
    ));
    assert_eq!(user_queue_info(&a, "CAROL").await.num_pending, 1);
    let started = Instant::now();
    while user_queue_info(&a, "CAROL").await.num_pending != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the message outlived the retention"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before its age"
    );
}

/// A message stream made when it still held the user queues' subjects is brought to its
/// present form when the user stream is first needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_queues_move_out_of_a_message_stream_that_still_claims_them() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let (a, _dir_a) = host(cluster.settings(), "HOSTA").await;
    let js = a.jetstream();
    let _ = js.delete_stream(messenger_nats::subject::STREAM).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: messenger_nats::subject::STREAM.to_owned(),
        subjects: vec!["messenger.host.*".into(), "messenger.user.*".into()],
        num_replicas: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let users = a.user_stream().await.expect("the user stream is made");
    assert_eq!(users.cached_info().config.subjects, ["messenger.user.*"]);
    let hosts = a.stream().await.unwrap().get_info().await.unwrap();
    assert_eq!(hosts.config.subjects, ["messenger.host.*"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_payloads_from_nats_are_refused_and_do_not_hold_up_the_rest() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let (a, _dir_a) = host(cluster.settings(), "HOSTA").await;
    let (b, dir_b) = host(cluster.settings(), "HOSTB").await;
    let hostb = EncodedName::new("HOSTB").unwrap();
    let carol = EncodedName::new("CAROL").unwrap();
    consumer::create_user_queue(&b, &carol).await.unwrap();
    let publish = |subject: String, payload: Vec<u8>| {
        let js = a.jetstream().clone();
        async move {
            js.publish(subject, Bytes::from(payload))
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    let valid = |to: &str, text: &str| WireMessage {
        expires_in_secs: None,
        id: MessageId::random(),
        from: "MALLORY".into(),
        from_host: "HOSTA".into(),
        to: to.into(),
        text: text.into(),
    };
    // Not JSON, an oversized payload, a bad id, a name with subject wildcards, and for
    // CAROL's queue a message addressed to someone else: all refused.
    publish(hostb.host_subject(), b"\x1b[2J{not json".to_vec()).await;
    publish(hostb.host_subject(), vec![b'x'; MAX_PAYLOAD + 1]).await;
    publish(
        hostb.host_subject(),
        br#"{"id":"../../etc/passwd","from":"A","from_host":"H","to":"B","text":"t"}"#.to_vec(),
    )
    .await;
    let mut wild = valid("BOB", "wild");
    wild.from = "A.*.>".into();
    publish(hostb.host_subject(), wild.encode()).await;
    publish(carol.user_subject(), valid("ROOT", "not yours").encode()).await;
    // And one good message behind them on each.
    publish(
        hostb.host_subject(),
        valid("BOB", "good for the host").encode(),
    )
    .await;
    publish(
        carol.user_subject(),
        valid("CAROL", "good for carol").encode(),
    )
    .await;

    let rx = receiver(b.clone(), "HOSTB").await;
    let dir = tempfile::tempdir().unwrap();
    let session = login(&b, &dir_b, "CAROL", inbox_in(&dir), dir).await;
    eventually(ARRIVAL_TIMEOUT, "the good messages", || {
        texts(&rx.inbox).len() == 1 && texts(&session.rx.inbox).len() == 1
    })
    .await;
    // Refused messages are terminated, not left to come again.
    let started = Instant::now();
    loop {
        let host = consumer_info(&b, "HOSTB").await.unwrap();
        let user = user_queue_info(&b, "CAROL").await;
        if [host.num_ack_pending, user.num_ack_pending] == [0, 0]
            && [host.num_pending, user.num_pending] == [0, 0]
        {
            break;
        }
        assert!(started.elapsed() < ARRIVAL_TIMEOUT, "{host:?} {user:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(texts(&rx.inbox), ["good for the host"]);
    assert_eq!(texts(&session.rx.inbox), ["good for carol"]);
    rx.stop().await;
    session.logout("CAROL").await;
}
