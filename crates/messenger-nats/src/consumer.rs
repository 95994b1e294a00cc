//! The receiving side: a host's durable pull consumer, committing to the inbox before it
//! acknowledges.
//!
//! JetStream delivers at least once: a message whose acknowledgement is lost (the service or
//! a node died between the commit and the ack) comes again. The inbox stores each message id
//! once ([`messenger_store::Store::insert_once`]), so each message is in the inbox exactly
//! once. A payload that fails the checks of [`WireMessage::decode`] is terminated (never
//! redelivered) and logged without its content.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::AckKind;
use futures_util::{FutureExt, StreamExt};

use messenger_core::message::{NewMessage, TransportKind};
use messenger_store::{Store, StoreError};

use crate::connection::{Nats, NatsError};
use crate::subject::{EncodedName, USER_STREAM, USER_SUBJECT_PREFIX};
use crate::wire::{MessageId, WireError, WireMessage};

/// How long JetStream waits for an acknowledgement before it delivers a message again. An
/// inbox commit takes milliseconds (a second on a very busy disk); a message lost on its way
/// to this host, when the member it was connected through died, comes again after this long.
pub const ACK_WAIT: Duration = Duration::from_secs(10);
/// How long one pull request stays open on the server. A request is renewed when it expires,
/// so a request lost with a dead member is replaced within this time.
pub const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How often the server says an open pull request is still alive; two missed in a row and
/// the client knows the request is gone and makes a new one.
pub const PULL_HEARTBEAT: Duration = Duration::from_secs(1);
/// Most messages one pull request asks for.
pub const PULL_BATCH: usize = 256;
/// Most messages committed to the inbox in one transaction (one fsync for all): what has
/// arrived while the previous commit ran, bounded so that a long backlog is acknowledged in
/// steps, well within [`ACK_WAIT`].
pub const COMMIT_BATCH: usize = 256;
/// How long a message the inbox could not take waits before it is delivered again.
pub const NAK_DELAY: Duration = Duration::from_secs(5);
/// The pause before the consumer is set up again after the cluster failed it.
pub const RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(1);

/// A message received over NATS, checked, for the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its id.
    pub id: MessageId,
    /// The message.
    pub message: WireMessage,
    /// The local account it is for, when it came from a user's queue: the account given to
    /// [`run_user`] for the queue that pulled it, never anything from the payload.
    pub user: Option<String>,
    /// Whether it is a broadcast to this host's workgroup (from [`run_broadcasts`]): for
    /// everyone here, and possibly also received by mailslot.
    pub broadcast: bool,
}

/// Where received messages are committed.
pub trait Inbox: Send + Sync {
    /// Commits `received` durably, once per id: `Ok(true)` when stored now, `Ok(false)` when
    /// it was already stored. The message is acknowledged to JetStream only after `Ok`.
    fn commit(&self, received: Received) -> impl Future<Output = Result<bool, String>> + Send;

    /// Commits several messages, all durably before it returns `Ok` (one transaction where
    /// the inbox can): for each, whether it was stored now. On `Err` none of them is
    /// acknowledged, so all come again (a part already stored is then recognised by id).
    fn commit_batch(
        &self,
        batch: Vec<Received>,
    ) -> impl Future<Output = Result<Vec<bool>, String>> + Send {
        async move {
            let mut stored = Vec::with_capacity(batch.len());
            for received in batch {
                stored.push(self.commit(received).await?);
            }
            Ok(stored)
        }
    }
}

/// An [`Inbox`] writing straight to a [`Store`] (for a process without the service's
/// committer). A message for a host is for everyone on it (the service's own inbox decides
/// recipients by the names it holds); a message from a user's queue is for that user only.
#[derive(Clone)]
pub struct StoreInbox {
    store: Arc<Mutex<Store>>,
}

impl StoreInbox {
    /// An inbox over `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store: Arc::new(Mutex::new(store)),
        }
    }

    /// The store, to read what was committed.
    pub fn store(&self) -> &Arc<Mutex<Store>> {
        &self.store
    }
}

/// The inbox form of a received message.
pub fn new_message(received: &Received, recipients: Vec<String>) -> NewMessage {
    let received_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    NewMessage {
        received_at,
        from: received.message.from.clone(),
        to: received.message.to.clone(),
        recipients,
        source: None,
        transport: TransportKind::Nats,
        text: received.message.text.clone(),
        raw: received.message.text.as_bytes().to_vec(),
    }
}

impl Inbox for StoreInbox {
    async fn commit(&self, received: Received) -> Result<bool, String> {
        let stored = self.commit_batch(vec![received]).await?;
        Ok(stored.first().copied().unwrap_or(false))
    }

    /// One transaction, one fsync, for the whole batch.
    async fn commit_batch(&self, batch: Vec<Received>) -> Result<Vec<bool>, String> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            let messages: Vec<NewMessage> = batch
                .iter()
                .map(|r| new_message(r, r.user.iter().cloned().collect()))
                .collect();
            let items: Vec<(&str, &NewMessage)> = batch
                .iter()
                .zip(&messages)
                .map(|(r, m)| (r.id.as_str(), m))
                .collect();
            let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
            store
                .insert_once_batch(&items)
                .map(|ids| ids.iter().map(Option::is_some).collect())
                .map_err(|e: StoreError| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// Where a consumer reads from.
#[derive(Debug, Clone)]
struct Source {
    subject: String,
    durable: String,
    /// The user whose queue this is, and the local account the user is logged in as.
    user: Option<(EncodedName, String)>,
    /// The workgroup, when this is the host's consumer of its workgroup's broadcasts, and the
    /// host (whose own broadcasts are skipped).
    workgroup: Option<(EncodedName, EncodedName)>,
}

/// Receives the messages for the host `host` into `inbox` until `shutdown` completes. Cluster
/// failures are logged and the consumer is set up again; only a shutdown ends it.
pub async fn run<I: Inbox>(
    nats: &Nats,
    host: &EncodedName,
    inbox: &I,
    shutdown: impl Future<Output = ()>,
) {
    let source = Source {
        subject: host.host_subject(),
        durable: host.host_consumer(),
        user: None,
        workgroup: None,
    };
    run_source(nats, &source, inbox, shutdown).await;
}

/// Receives the broadcasts to `workgroup` into `inbox` for the host `host`, until `shutdown`
/// completes. The host's durable consumer starts with the broadcasts sent after it was first
/// created and keeps its place across restarts, so a host that was down for less than
/// [`crate::connection::BROADCAST_RETENTION`] gets what it missed.
pub async fn run_broadcasts<I: Inbox>(
    nats: &Nats,
    host: &EncodedName,
    workgroup: &EncodedName,
    inbox: &I,
    shutdown: impl Future<Output = ()>,
) {
    let source = Source {
        subject: workgroup.workgroup_subject(),
        durable: host.broadcast_consumer(),
        user: None,
        workgroup: Some((workgroup.clone(), host.clone())),
    };
    run_source(nats, &source, inbox, shutdown).await;
}

/// Receives the messages that waited for `user` while they were logged in nowhere, into
/// `inbox` for the local account `account` the user is logged in as, until `shutdown`
/// completes (the user logs out of this host). Run
/// by the host where the user logs in; it creates the user's durable consumer on the first
/// login, so from then on a message for the user when they are logged in nowhere waits for
/// them ([`user_has_queue`]). The consumer keeps its place between logins and hosts: each
/// message is delivered once, wherever the user logs in next.
pub async fn run_user<I: Inbox>(
    nats: &Nats,
    user: &EncodedName,
    account: &str,
    inbox: &I,
    shutdown: impl Future<Output = ()>,
) {
    let source = Source {
        subject: user.user_subject(),
        durable: user.user_consumer(),
        user: Some((user.clone(), account.to_owned())),
        workgroup: None,
    };
    run_source(nats, &source, inbox, shutdown).await;
}

/// Creates `user`'s queue if it does not exist, without receiving from it: from then on a
/// message for the user when they are logged in nowhere waits for them.
pub async fn create_user_queue(nats: &Nats, user: &EncodedName) -> Result<(), NatsError> {
    let source = Source {
        subject: user.user_subject(),
        durable: user.user_consumer(),
        user: None,
        workgroup: None,
    };
    consumer(nats, &source).await.map(|_| ())
}

/// Whether `user` has a queue, that is has logged in on a host of the organisation since the
/// stream was created: a message for them waits when they are logged in nowhere.
pub async fn user_has_queue(nats: &Nats, user: &EncodedName) -> Result<bool, NatsError> {
    use async_nats::jetstream::stream::ConsumerErrorKind;
    use async_nats::jetstream::ErrorCode;
    // One request, and the stream's configuration is left alone (this runs per message).
    match nats
        .jetstream
        .get_consumer_from_stream::<pull::Config, _, _>(user.user_consumer(), USER_STREAM)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => match e.kind() {
            ConsumerErrorKind::JetStream(e)
                if e.error_code() == ErrorCode::CONSUMER_NOT_FOUND
                    || e.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(false)
            }
            _ => Err(NatsError::JetStream(e.to_string())),
        },
    }
}

async fn run_source<I: Inbox>(
    nats: &Nats,
    source: &Source,
    inbox: &I,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            result = consume(nats, source, inbox) => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "the NATS consumer stopped; setting it up again");
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(RESUBSCRIBE_PAUSE) => {}
        }
    }
}

async fn consumer(
    nats: &Nats,
    source: &Source,
) -> Result<async_nats::jetstream::consumer::PullConsumer, NatsError> {
    let (stream, deliver_policy) = match (&source.workgroup, source.subject.as_str()) {
        // A host that joins learns of the broadcasts sent from then on, not of the last hour's.
        (Some(_), _) => (nats.broadcast_stream().await?, DeliverPolicy::New),
        (None, subject) if subject.starts_with(USER_SUBJECT_PREFIX) => {
            (nats.user_stream().await?, DeliverPolicy::All)
        }
        (None, _) => (nats.stream().await?, DeliverPolicy::All),
    };
    stream
        .get_or_create_consumer(
            &source.durable,
            pull::Config {
                durable_name: Some(source.durable.clone()),
                filter_subject: source.subject.clone(),
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                deliver_policy,
                num_replicas: nats.settings().replicas,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| NatsError::JetStream(e.to_string()))
}

async fn consume<I: Inbox>(nats: &Nats, source: &Source, inbox: &I) -> Result<(), NatsError> {
    let js = |e: &dyn std::fmt::Display| NatsError::JetStream(e.to_string());
    let consumer = consumer(nats, source).await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
        .map_err(|e| js(&e))?;
    loop {
        let Some(first) = messages.next().await else {
            return Ok(());
        };
        // The first message, and whatever else has already arrived, in one commit.
        let mut batch = Vec::new();
        let mut failure = None;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Ok(message) => batch.push(message),
                Err(e) => {
                    failure = Some(js(&e));
                    break;
                }
            }
            if batch.len() >= COMMIT_BATCH {
                break;
            }
            next = messages.next().now_or_never().flatten();
        }
        deliver(source, inbox, batch).await;
        if let Some(e) = failure {
            return Err(e);
        }
    }
}

/// Checks `batch`, commits what passes to `inbox`, then acknowledges it; terminates what does
/// not pass, and asks for a later redelivery of everything when the inbox fails.
async fn deliver<I: Inbox>(source: &Source, inbox: &I, batch: Vec<jetstream::Message>) {
    let mut accepted = Vec::with_capacity(batch.len());
    let mut received = Vec::with_capacity(batch.len());
    for message in batch {
        let decoded = WireMessage::decode(&message.payload);
        if let (Ok(w), Some((_, host))) = (&decoded, &source.workgroup) {
            if w.from_host == host.display() {
                // This host's own broadcast: its users got it when it was sent.
                if let Err(e) = message.ack().await {
                    tracing::debug!(error = %e, "acknowledging our own broadcast failed");
                }
                continue;
            }
        }
        let wire = decoded.and_then(|w| {
            match (&source.user, &source.workgroup) {
                // A user's queue holds messages for that user only.
                (Some((user, _)), _) if w.to != user.display() => Err(WireError::WrongRecipient),
                // A workgroup's subject holds its broadcasts only, as short as on NetBIOS.
                (_, Some((workgroup, _))) if w.to != workgroup.display() => {
                    Err(WireError::WrongRecipient)
                }
                (_, Some(_)) => w.check_broadcast_length().map(|()| w),
                _ => Ok(w),
            }
        });
        match wire {
            Ok(wire) => {
                received.push(Received {
                    id: wire.id.clone(),
                    message: wire,
                    user: source.user.as_ref().map(|(_, account)| account.clone()),
                    broadcast: source.workgroup.is_some(),
                });
                accepted.push(message);
            }
            Err(e) => {
                tracing::warn!(error = %e, "refused a message from NATS");
                if let Err(e) = message.ack_with(AckKind::Term).await {
                    tracing::debug!(error = %e, "terminating a refused message failed");
                }
            }
        }
    }
    if accepted.is_empty() {
        return;
    }
    match inbox.commit_batch(received).await {
        Ok(stored) => {
            tracing::debug!(
                messages = accepted.len(),
                new = stored.iter().filter(|&&s| s).count(),
                "messages from NATS are in the inbox"
            );
            // A lost acknowledgement means a redelivery, which the inbox ignores.
            for message in accepted {
                if let Err(e) = message.ack().await {
                    tracing::debug!(error = %e, "acknowledging a stored message failed");
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "the inbox could not take messages from NATS");
            for message in accepted {
                if let Err(e) = message.ack_with(AckKind::Nak(Some(NAK_DELAY))).await {
                    tracing::debug!(error = %e, "refusing a message failed");
                }
            }
        }
    }
}
