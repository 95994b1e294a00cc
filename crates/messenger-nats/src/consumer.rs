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

use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::AckKind;
use futures_util::StreamExt;

use messenger_core::message::{NewMessage, TransportKind};
use messenger_store::{Store, StoreError};

use crate::connection::{Nats, NatsError};
use crate::subject::EncodedName;
use crate::wire::{MessageId, WireMessage};

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
/// Most messages one pull request asks for: they are committed one at a time, so a larger
/// batch only holds more messages on this host unacknowledged.
pub const PULL_BATCH: usize = 256;
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
}

/// Where received messages are committed.
pub trait Inbox: Send + Sync {
    /// Commits `received` durably, once per id: `Ok(true)` when stored now, `Ok(false)` when
    /// it was already stored. The message is acknowledged to JetStream only after `Ok`.
    fn commit(&self, received: Received) -> impl Future<Output = Result<bool, String>> + Send;
}

/// An [`Inbox`] writing straight to a [`Store`] (for a process without the service's
/// committer). Messages are for everyone on the host; the service's own inbox decides
/// recipients by the names it holds.
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
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            let message = new_message(&received, Vec::new());
            let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
            store
                .insert_once(received.id.as_str(), &message)
                .map(|id| id.is_some())
                .map_err(|e: StoreError| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// Receives the messages for the host `host` into `inbox` until `shutdown` completes. Cluster
/// failures are logged and the consumer is set up again; only a shutdown ends it.
pub async fn run<I: Inbox>(
    nats: &Nats,
    host: &EncodedName,
    inbox: &I,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            result = consume(nats, host, inbox) => {
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

async fn consume<I: Inbox>(nats: &Nats, host: &EncodedName, inbox: &I) -> Result<(), NatsError> {
    let js = |e: &dyn std::fmt::Display| NatsError::JetStream(e.to_string());
    let stream = nats.stream().await?;
    let consumer = stream
        .get_or_create_consumer(
            &host.host_consumer(),
            pull::Config {
                durable_name: Some(host.host_consumer()),
                filter_subject: host.host_subject(),
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                num_replicas: nats.settings().replicas,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| js(&e))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
        .map_err(|e| js(&e))?;
    while let Some(next) = messages.next().await {
        let message = match next {
            Ok(m) => m,
            Err(e) => return Err(js(&e)),
        };
        let wire = match WireMessage::decode(&message.payload) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "refused a message from NATS");
                if let Err(e) = message.ack_with(AckKind::Term).await {
                    tracing::debug!(error = %e, "terminating a refused message failed");
                }
                continue;
            }
        };
        let received = Received {
            id: wire.id.clone(),
            message: wire,
        };
        match inbox.commit(received).await {
            Ok(stored) => {
                tracing::debug!(stored, "a message from NATS is in the inbox");
                // A lost acknowledgement means a redelivery, which the inbox ignores.
                if let Err(e) = message.ack().await {
                    tracing::debug!(error = %e, "acknowledging a stored message failed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the inbox could not take a message from NATS");
                if let Err(e) = message.ack_with(AckKind::Nak(Some(NAK_DELAY))).await {
                    tracing::debug!(error = %e, "refusing a message failed");
                }
            }
        }
    }
    Ok(())
}
