//! Directed messages over JetStream as a [`Transport`].
//!
//! A message to a name the directory places on another host is published to that host's
//! subject with a fresh [`MessageId`] as `Nats-Msg-Id`; a publish whose acknowledgement is
//! lost is retried with the same id, and JetStream drops the duplicate. The send succeeds when
//! JetStream acknowledges the message, that is when it is stored on a quorum of replicas.
//! While a node that led a stream has died and the others elect a new leader, the requests
//! a send makes fail; they are tried again for up to [`FAILOVER_WINDOW`], so that a sender
//! rides out the fail-over instead of being told to send again.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;

use messenger_core::nerr::{
    ERROR_INVALID_NAME, ERROR_INVALID_PARAMETER, NERR_NAME_NOT_FOUND, NERR_NETWORK_ERROR,
};
use messenger_core::transport::{Delivery, Outgoing, Reach, Recipient, SendError, Transport};

use crate::connection::Nats;
use crate::consumer;
use crate::directory::{Directory, DirectoryError};
use crate::subject::receipt_subject;
use crate::subject::EncodedName;
use crate::wire::{
    MessageId, ReceiptState, WireError, WireMessage, WireReceipt, BROADCAST_TEXT_CHARS,
    CLASSIC_TEXT_CHARS, MAX_EXPIRES_IN_SECS, MAX_TEXT_CHARS,
};
use futures_util::StreamExt;

/// How long a send keeps trying the JetStream requests it needs (directory reads, the
/// publish) while they fail and the connection stays up: long enough to ride out a stream
/// leader election after a node dies. On current servers a Raft follower waits 4 to 9 s for
/// a lost leader before it campaigns (nats-server's server/raft.go,
/// `minElectionTimeoutDefault` and `maxElectionTimeoutDefault`), so 12 s covers the longest
/// wait, the vote and the answer; a sender whose cluster is broken for good learns it then.
pub const FAILOVER_WINDOW: Duration = Duration::from_secs(12);
/// The pause between tries within [`FAILOVER_WINDOW`].
pub const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Why a request tried within the fail-over window failed.
enum Failure<E> {
    /// The connection has been down for longer than the reconnect grace.
    Unreachable,
    /// The last try's error, when the window closed or the error is final.
    Failed(E),
    /// The window closed while a try was under way.
    TimedOut,
}

/// What became of a message JetStream acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Stored for the host holding the name.
    Host {
        /// The name, as shown to the sender.
        recipient: String,
        /// The host holding it.
        host: String,
    },
    /// Stored in the queue of a user logged in on `host` now, whose host pulls it at once.
    User {
        /// The user.
        user: String,
        /// Where they are logged in.
        host: String,
    },
    /// Stored in the queue of a user logged in nowhere: delivered when they next log in on
    /// any host of the organisation, if within the stream's retention.
    Queued {
        /// The user.
        user: String,
    },
}

impl Sent {
    /// The name as shown to the sender.
    pub fn recipient(&self) -> &str {
        match self {
            Sent::Host { recipient, .. } => recipient,
            Sent::User { user, .. } | Sent::Queued { user } => user,
        }
    }

    /// What the sender is told besides success, if anything.
    pub fn notice(&self) -> Option<String> {
        match self {
            Sent::Queued { user } => Some(format!(
                "{user} is not logged on; the message will be delivered when {user} logs on."
            )),
            _ => None,
        }
    }
}

/// `name` as a name of the message network, or the sender's error (ERROR_INVALID_NAME), its
/// text after `what`.
fn name_argument(name: &str, what: &str) -> Result<EncodedName, SendError> {
    EncodedName::new(name).map_err(|e| SendError {
        code: ERROR_INVALID_NAME,
        message: format!("{what}{e}"),
        input: true,
    })
}

/// Sends directed messages through JetStream to the host the directory names.
#[derive(Debug, Clone)]
pub struct NatsTransport {
    nats: Nats,
    directory: Directory,
}

impl NatsTransport {
    /// A transport over `nats`, resolving names with `directory`.
    pub fn new(nats: Nats, directory: Directory) -> Self {
        Self { nats, directory }
    }

    fn unreachable() -> SendError {
        SendError {
            code: NERR_NETWORK_ERROR,
            message: "The organisation's message network (NATS) is unreachable; \
                      the message was not sent."
                .to_owned(),
            input: false,
        }
    }

    /// Publishes `message` to `host` with its id as `Nats-Msg-Id`, retrying with the same id;
    /// returns whether JetStream saw it as a duplicate.
    pub async fn publish(
        &self,
        host: &EncodedName,
        message: &WireMessage,
    ) -> Result<bool, SendError> {
        self.publish_to(&host.host_subject(), message).await
    }

    async fn publish_to(&self, subject: &str, message: &WireMessage) -> Result<bool, SendError> {
        self.publish_by(subject, message, Instant::now() + FAILOVER_WINDOW)
            .await
    }

    /// [`NatsTransport::publish_to`], retried with the same id until `deadline`.
    async fn publish_by(
        &self,
        subject: &str,
        message: &WireMessage,
        deadline: Instant,
    ) -> Result<bool, SendError> {
        let payload = Bytes::from(message.encode());
        let ack = self
            .within_failover(
                deadline,
                |_| true,
                || async {
                    let publish = PublishMessage::build()
                        .payload(payload.clone())
                        .message_id(message.id.as_str());
                    match self
                        .nats
                        .jetstream
                        .send_publish(subject.to_owned(), publish)
                        .await
                    {
                        Ok(future) => future.await,
                        Err(e) => Err(e),
                    }
                },
            )
            .await;
        let not_stored = |why: String| SendError {
            code: NERR_NETWORK_ERROR,
            message: format!("The message network (NATS) did not store the message: {why}"),
            input: false,
        };
        match ack {
            Ok(ack) => Ok(ack.duplicate),
            Err(Failure::Unreachable) => Err(Self::unreachable()),
            Err(Failure::Failed(e)) => Err(not_stored(e.to_string())),
            Err(Failure::TimedOut) => Err(not_stored("no acknowledgement in time".to_owned())),
        }
    }

    /// Runs `request` until it succeeds or `retry` finds its error final, trying again
    /// after [`RETRY_PAUSE`] while the connection is up (or coming back within the reconnect
    /// grace) and `deadline` has not passed; a try still under way at the deadline is given
    /// up. What fails while the cluster fails over (no leader for a stream yet, a request to
    /// a node that died) succeeds once it has.
    async fn within_failover<T, E, Fut>(
        &self,
        deadline: Instant,
        retry: impl Fn(&E) -> bool,
        mut request: impl FnMut() -> Fut,
    ) -> Result<T, Failure<E>>
    where
        E: std::fmt::Display,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        loop {
            if !self.nats.ready().await {
                return Err(Failure::Unreachable);
            }
            let error = match tokio::time::timeout_at(deadline.into(), request()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => e,
                Err(_) => return Err(Failure::TimedOut),
            };
            if !retry(&error) || Instant::now() + RETRY_PAUSE >= deadline {
                return Err(Failure::Failed(error));
            }
            tracing::debug!(error = %error, "a JetStream request failed; trying again");
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

impl Transport for NatsTransport {
    fn name(&self) -> &'static str {
        "nats"
    }

    /// Names and workgroups, only while connected or reconnecting (see
    /// [`crate::connection::RECONNECT_GRACE`]), so that the router falls back to the LAN
    /// when NATS is down.
    fn reach(&self, _to: &Recipient) -> Reach {
        if self.nats.is_usable() {
            Reach::Network
        } else {
            Reach::Unreachable
        }
    }

    async fn send(&self, message: &Outgoing) -> Result<Delivery, SendError> {
        let recipient = match &message.to {
            Recipient::Name(_) => self.send_message(message).await?.recipient().to_owned(),
            Recipient::Workgroup(_) => self.send_broadcast(message).await?,
        };
        Ok(Delivery { recipient })
    }
}

impl NatsTransport {
    /// Whether the cluster may be used now (see [`Nats::is_usable`]). No I/O.
    pub fn is_usable(&self) -> bool {
        self.nats.is_usable()
    }

    /// Whether a directed message for `name` has somewhere to go in the organisation other
    /// than this host: another host holds the name, the user is logged in on another host,
    /// or the user has a queue where it waits for their next login. Asked by the gateway for
    /// NetBIOS senders before it accepts a message it must forward. Any failure (no cluster,
    /// an invalid name) is "no": the message is then refused, as without the gateway.
    pub async fn delivers_elsewhere(&self, name: &str) -> bool {
        self.destination(name).await.is_some()
    }

    /// When a message for `name` would go elsewhere ([`NatsTransport::delivers_elsewhere`]):
    /// the addresses of the host it would go to (none for a user's queue, or a host that
    /// recorded none). The WINS proxy answers only for names held off its own subnet.
    pub async fn elsewhere_at(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        match self.destination(name).await? {
            Some(host) => Some(self.directory.addresses(&host).await.unwrap_or_default()),
            None => Some(Vec::new()),
        }
    }

    /// Where a message for `name` would go, when not here: `Some(Some(host))` to that host,
    /// `Some(None)` to the user's queue, `None` nowhere (or here, or unknown).
    async fn destination(&self, name: &str) -> Option<Option<EncodedName>> {
        let name = EncodedName::new(name).ok()?;
        if !self.nats.is_usable() {
            return None;
        }
        let here = self.directory.host();
        match self.directory.holder(name.display()).await {
            Ok(Some(host)) => return (host != *here).then_some(Some(host)),
            Ok(None) => {}
            Err(_) => return None,
        }
        match self.directory.user_host(name.display()).await {
            Ok(Some(host)) => (host != *here).then_some(Some(host)),
            Ok(None) => consumer::user_has_queue(&self.nats, &name)
                .await
                .unwrap_or(false)
                .then_some(None),
            Err(_) => None,
        }
    }

    /// Publishes a broadcast (`*`, `/DOMAIN:X`) to every host of its workgroup on every subnet
    /// and returns the workgroup's name. The text obeys the Windows rule for broadcasts
    /// ([`BROADCAST_TEXT_CHARS`]), as over the mailslot. The sending host does not receive its
    /// own broadcast back (its users get it from the sender's path).
    pub async fn send_broadcast(&self, message: &Outgoing) -> Result<String, SendError> {
        let Recipient::Workgroup(workgroup) = &message.to else {
            return Err(SendError {
                code: ERROR_INVALID_PARAMETER,
                message: "A message to a name is not a broadcast.".to_owned(),
                input: true,
            });
        };
        let workgroup = name_argument(workgroup, "the workgroup: ")?;
        let from = name_argument(&message.from, "the sender's name: ")?;
        let wire = WireMessage {
            id: MessageId::random(),
            from: from.display().to_owned(),
            from_host: self.directory.host().display().to_owned(),
            to: workgroup.display().to_owned(),
            text: message.text.clone(),
            expires_in_secs: None,
        };
        if let Err(WireError::TextTooLong(chars)) = wire.check_broadcast_length() {
            return Err(SendError {
                code: ERROR_INVALID_PARAMETER,
                message: format!(
                    "the broadcast is {chars} characters long; the limit is \
                     {BROADCAST_TEXT_CHARS}"
                ),
                input: true,
            });
        }
        if !self.nats.ready().await {
            return Err(Self::unreachable());
        }
        // Created on first use: a cluster where nobody has broadcast yet has no stream.
        self.nats
            .broadcast_stream()
            .await
            .map_err(|_| Self::unreachable())?;
        self.publish_to(&workgroup.workgroup_subject(), &wire)
            .await?;
        Ok(workgroup.display().to_owned())
    }

    /// Sends `message` and says where it went: to the host holding the name, or to a user's
    /// queue (logged in somewhere now, or nowhere: then it waits for their next login).
    /// [`Transport::send`] is this without the details.
    pub async fn send_message(&self, message: &Outgoing) -> Result<Sent, SendError> {
        self.send_message_as(message, MessageId::random(), None)
            .await
    }

    /// [`NatsTransport::send_message`] with the id chosen by the caller (a sender that waits
    /// for receipts subscribes to the id's receipts, [`NatsTransport::watch_receipts`], before
    /// the message goes out) and, with `expires_in`, an expiry: the receiving host marks the
    /// message expired that long after storing it, unless it was read.
    pub async fn send_message_as(
        &self,
        message: &Outgoing,
        id: MessageId,
        expires_in: Option<Duration>,
    ) -> Result<Sent, SendError> {
        let Recipient::Name(name) = &message.to else {
            return Err(SendError {
                code: ERROR_INVALID_PARAMETER,
                message: "Broadcasts are not sent over the organisation's network.".to_owned(),
                input: true,
            });
        };
        let to = name_argument(name, "")?;
        let from = name_argument(&message.from, "the sender's name: ")?;
        let limit = if message.allow_long {
            MAX_TEXT_CHARS
        } else {
            CLASSIC_TEXT_CHARS
        };
        let chars = message.text.chars().count();
        if chars > limit {
            return Err(SendError {
                code: ERROR_INVALID_PARAMETER,
                message: format!("the message is {chars} characters long; the limit is {limit}"),
                input: true,
            });
        }
        if !self.nats.ready().await {
            return Err(Self::unreachable());
        }
        // One window for the whole send: its lookups and its publish.
        let deadline = Instant::now() + FAILOVER_WINDOW;
        let failed = |failure: Failure<DirectoryError>| match failure {
            Failure::Unreachable => Self::unreachable(),
            Failure::Failed(e)
                if matches!(e, DirectoryError::Nats(_)) && !self.nats.is_usable() =>
            {
                Self::unreachable()
            }
            Failure::Failed(e) => SendError {
                code: e.nerr(),
                message: e.to_string(),
                input: false,
            },
            Failure::TimedOut => SendError {
                code: NERR_NETWORK_ERROR,
                message: "The organisation's directory (NATS) did not answer in time.".to_owned(),
                input: false,
            },
        };
        let transient = |e: &DirectoryError| matches!(e, DirectoryError::Nats(_));
        let expires_in_secs = match expires_in.map(|d| d.as_secs()) {
            Some(secs) if secs == 0 || secs > MAX_EXPIRES_IN_SECS => {
                return Err(SendError {
                    code: ERROR_INVALID_PARAMETER,
                    message: format!(
                        "an expiry of {secs} seconds; 1 to {MAX_EXPIRES_IN_SECS} are carried"
                    ),
                    input: true,
                })
            }
            other => other,
        };
        let wire = WireMessage {
            id,
            from: from.display().to_owned(),
            from_host: self.directory.host().display().to_owned(),
            to: to.display().to_owned(),
            text: message.text.clone(),
            expires_in_secs,
        };
        let holder = self
            .within_failover(deadline, transient, || self.directory.holder(to.display()))
            .await
            .map_err(failed)?;
        if let Some(host) = holder {
            self.publish_by(&host.host_subject(), &wire, deadline)
                .await?;
            return Ok(Sent::Host {
                recipient: to.display().to_owned(),
                host: host.display().to_owned(),
            });
        }
        let user = to.display().to_owned();
        let user_host = self
            .within_failover(deadline, transient, || self.directory.user_host(&user))
            .await
            .map_err(failed)?;
        let sent = match user_host {
            Some(host) => Sent::User {
                user,
                host: host.display().to_owned(),
            },
            None => {
                let queued = self
                    .within_failover(
                        deadline,
                        |_| true,
                        || consumer::user_has_queue(&self.nats, &to),
                    )
                    .await
                    .map_err(|failure| {
                        failed(match failure {
                            Failure::Failed(e) => Failure::Failed(DirectoryError::Nats(e)),
                            Failure::Unreachable => Failure::Unreachable,
                            Failure::TimedOut => Failure::TimedOut,
                        })
                    })?;
                if !queued {
                    return Err(SendError {
                        code: NERR_NAME_NOT_FOUND,
                        message: format!("{user} is held by no computer of the organisation."),
                        input: false,
                    });
                }
                Sent::Queued { user }
            }
        };
        self.publish_by(&to.user_subject(), &wire, deadline).await?;
        Ok(sent)
    }
}

impl NatsTransport {
    /// Subscribes to the receipts of the message `id` (before it is sent, so that none is
    /// missed).
    pub async fn watch_receipts(&self, id: &MessageId) -> Result<ReceiptWatch, SendError> {
        let subscriber = self
            .nats
            .client
            .subscribe(receipt_subject(id))
            .await
            .map_err(|_| Self::unreachable())?;
        // The subscription is in place on the server once a round trip has passed.
        self.nats
            .client
            .flush()
            .await
            .map_err(|_| Self::unreachable())?;
        Ok(ReceiptWatch {
            id: id.clone(),
            subscriber,
        })
    }

    /// Tells a waiting sender, if there is one, how far the message `id` got here. Nothing is
    /// stored: with nobody waiting the receipt goes nowhere, and a lost one costs the sender
    /// only its wait.
    pub async fn publish_receipt(&self, id: &MessageId, state: ReceiptState) {
        let receipt = WireReceipt {
            id: id.clone(),
            state,
            host: self.directory.host().display().to_owned(),
        };
        if let Err(e) = self
            .nats
            .client
            .publish(receipt_subject(id), Bytes::from(receipt.encode()))
            .await
        {
            tracing::debug!(error = %e, "publishing a receipt failed");
        }
    }
}

/// The receipts of one message, as they arrive.
#[derive(Debug)]
pub struct ReceiptWatch {
    id: MessageId,
    subscriber: async_nats::Subscriber,
}

impl ReceiptWatch {
    /// The id watched.
    pub fn id(&self) -> &MessageId {
        &self.id
    }

    /// Waits until a recipient has read the message or it expired unread, for at most `wait`
    /// or until `cancelled` completes. Receipts that do not decode, or are about another
    /// message, are ignored.
    pub async fn read_within(
        &mut self,
        wait: Duration,
        cancelled: impl std::future::Future<Output = ()>,
    ) -> ReadOutcome {
        let read = async {
            while let Some(message) = self.subscriber.next().await {
                match WireReceipt::decode(&message.payload) {
                    Ok(r) if r.id == self.id && r.state == ReceiptState::Read => {
                        return ReadOutcome::Read
                    }
                    Ok(r) if r.id == self.id && r.state == ReceiptState::Expired => {
                        return ReadOutcome::Expired
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "ignored a receipt"),
                }
            }
            ReadOutcome::NotRead
        };
        tokio::select! {
            read = tokio::time::timeout(wait, read) => read.unwrap_or(ReadOutcome::NotRead),
            () = cancelled => ReadOutcome::NotRead,
        }
    }
}

/// What a waiting sender learned about a message sent over NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// A recipient read it.
    Read,
    /// Nobody read it before its expiry.
    Expired,
    /// Nobody read it within the wait (or no receipt came).
    NotRead,
}
