//! Sending on behalf of the command line (`Request::Send`): the router of outgoing messages.
//!
//! Each way out is a `messenger_core::transport::Transport`, asked whether it can reach the
//! recipient before it is used. Names of this computer are delivered locally, straight into
//! the inbox; a name the organisation's directory places on another host goes through NATS
//! JetStream (with `[nats]`); anything else goes over NetBIOS through the same client code the command line
//! uses when no service runs (`messenger-net`). A broadcast goes by mailslot on this computer's
//! subnets and, with `[nats]`, through JetStream to the workgroup's hosts on every subnet. Broadcasts (`*`, `/DOMAIN`, `/USERS`) need root or the configured
//! broadcast group, and a broadcast to our own workgroup reaches our own users too. Who may
//! sign with which name and who may broadcast are the rules of `messenger_core::access`, the
//! same the command line applies when it sends without the service.
//!
//! Local users are rate-limited per uid (`crate::gate::LocalSendLimit`) as network sources are per address, with the same
//! `[policy]` numbers (`messages_per_second`, `message_burst`; off with `rate_limit = false`):
//! a person sends no faster from a shell here than from another computer, and without a
//! limit one local user could fill the inbox and everyone's terminals. Root is exempt: it can
//! stop the service or write the inbox anyway, and administrators' scripts announce to many.
//! An over-limit send is refused with ERROR_NOT_ENOUGH_QUOTA (1816).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use messenger_core::message::{NewMessage, TransportKind};
use messenger_core::names::NameKind;
use messenger_core::nerr::{
    ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER, ERROR_NOT_ENOUGH_QUOTA, NERR_BAD_RECEIVE,
    NERR_NAME_NOT_FOUND, NERR_NETWORK_ERROR,
};
use messenger_core::transport::{Delivery, Outgoing, Reach, Recipient, SendError, Transport};
use messenger_ipc::{Receipt, SendTarget};
use messenger_nats::transport::ReadOutcome;
use messenger_nats::wire::MessageId;
use messenger_net::NetBios;
use tokio::sync::broadcast;

use crate::host::caller::Caller;
use crate::service::inbox::ReadReceipt;
use crate::service::Service;
use crate::util::{lock, now_micros};

/// What became of one recipient of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The recipient as the sender should see it.
    pub recipient: String,
    /// Whether it reached them.
    pub result: Result<(), SendError>,
    /// For a send that waited, whether it was read (see [`Receipt`]).
    pub receipt: Option<Receipt>,
    /// What the sender should know besides (a message that waits for its user's login).
    pub notice: Option<String>,
    /// Whether the send's expiry (`--time`) went with the message to another computer that
    /// keeps it (over the organisation's network).
    pub expiry_carried: bool,
}

impl Outcome {
    fn new(recipient: String, result: Result<(), SendError>) -> Self {
        Self {
            recipient,
            result,
            receipt: None,
            notice: None,
            expiry_carried: false,
        }
    }
}

/// What a send asks for besides its recipient and text.
#[derive(Debug, Clone, Default)]
pub(crate) struct SendOptions {
    /// Sender name to show, if not the caller's.
    pub from: Option<String>,
    /// Allow texts longer than the Windows limit.
    pub allow_long: bool,
    /// Wait this long for the recipients to read it.
    pub wait: Option<Duration>,
    /// The message expires this long after it is stored, unless read first (`--time`): the
    /// copies stored here, and those sent to other hosts of the organisation, which keep it.
    pub expire: Option<Duration>,
}

/// What a send did: the outcome for each recipient, and the copies it stored here.
#[derive(Debug)]
pub(crate) struct SendReport {
    /// One per recipient, in the order the sender should see them.
    pub outcomes: Vec<Outcome>,
    /// Inbox ids of the copies stored in this computer's inbox (with the send's expiry, if
    /// it asked for one).
    pub stored_here: Vec<i64>,
}

impl SendReport {
    fn new(outcomes: Vec<Outcome>) -> Self {
        Self {
            outcomes,
            stored_here: Vec::new(),
        }
    }
}

/// A send refused as a whole, before anything went out.
fn refused(code: u32, message: impl Into<String>) -> SendError {
    SendError {
        code,
        message: message.into(),
        input: true,
    }
}

/// Handles a send request from `caller`: the outcome for each recipient, or why the request
/// failed as a whole (not allowed, over the rate, an empty text, a name that cannot be one).
pub(crate) async fn send(
    service: &Arc<Service>,
    caller: &Caller,
    target: SendTarget,
    text: String,
    options: SendOptions,
) -> Result<SendReport, SendError> {
    let SendOptions {
        from,
        allow_long,
        wait,
        expire,
    } = options;
    let from = match from {
        Some(f) if !messenger_core::access::may_send_as(&caller.identity(), &f) => {
            return Err(refused(
                ERROR_ACCESS_DENIED,
                messenger_core::access::SEND_AS_REFUSED,
            ))
        }
        Some(f) => f,
        None => caller.user.clone(),
    };
    if text.trim().is_empty() {
        return Err(refused(ERROR_INVALID_PARAMETER, "The message is empty."));
    }
    if !service.local_sends.admits(caller, Instant::now()) {
        tracing::warn!(
            uid = caller.uid,
            "a local user is over the send rate; refused"
        );
        return Err(refused(
            ERROR_NOT_ENOUGH_QUOTA,
            "Too many messages in a short time; wait a moment and send again.",
        ));
    }
    match target {
        SendTarget::Name { name } => {
            let typed = name.trim().to_uppercase();
            let outgoing = Outgoing {
                from,
                to: Recipient::Name(name),
                text,
                allow_long,
            };
            // A name of ours never leaves the computer; anything else goes to the first
            // network transport that can try it.
            let local = LocalDelivery { service, expire };
            if local.reach(&outgoing.to) == Reach::Local {
                // Subscribed before delivering, so that no read is missed.
                let reads = wait.map(|_| service.inbox.subscribe_reads());
                return Ok(match local.deliver(&outgoing).await {
                    Ok(delivered) => {
                        let receipt = match (wait, reads) {
                            (Some(wait), Some(reads)) => {
                                let readers = Readers::of(&delivered.recipients);
                                let read =
                                    wait_for_readers(service, reads, delivered.id, readers, wait)
                                        .await;
                                Some(if read.is_empty() {
                                    Receipt::NotReadInTime
                                } else {
                                    Receipt::Read
                                })
                            }
                            _ => None,
                        };
                        SendReport {
                            outcomes: vec![Outcome {
                                receipt,
                                ..Outcome::new(delivered.shown, Ok(()))
                            }],
                            stored_here: vec![delivered.id],
                        }
                    }
                    Err(e) => SendReport::new(vec![Outcome::new(typed, Err(e))]),
                });
            }
            // A name the organisation's directory places on another host goes there through
            // JetStream at once, without waiting out broadcast name queries; a name it does
            // not know, or no reachable cluster, leaves the LAN as before.
            if let Some(organisation) = service.organisation.get() {
                let nats = &organisation.transport;
                if nats.reach(&outgoing.to) == Reach::Network {
                    // A waiting sender listens for the receiving host's read receipt before
                    // the message goes out, so that none is missed.
                    let id = MessageId::random();
                    let mut receipts = match wait {
                        Some(_) => nats.watch_receipts(&id).await.ok(),
                        None => None,
                    };
                    let expires_in = expire;
                    match nats.send_message_as(&outgoing, id, expires_in).await {
                        Err(e) if e.input => return Err(e),
                        Err(e) if e.code == NERR_NAME_NOT_FOUND => {}
                        result => {
                            let receipt = match (&result, wait, receipts.as_mut()) {
                                (Ok(_), Some(wait), Some(receipts)) => Some(
                                    match receipts
                                        .read_within(
                                            wait_for_remote_receipt(wait, expires_in),
                                            service.stopping.cancelled(),
                                        )
                                        .await
                                    {
                                        ReadOutcome::Read => Receipt::Read,
                                        ReadOutcome::Expired => Receipt::Expired,
                                        ReadOutcome::NotRead => Receipt::NotReadInTime,
                                    },
                                ),
                                // Subscribing failed: the message went out, but no receipt
                                // can come back.
                                (Ok(_), Some(_), None) => Some(Receipt::AcceptedOnly),
                                _ => None,
                            };
                            return Ok(SendReport::new(vec![match result {
                                Ok(sent) => Outcome {
                                    receipt,
                                    // "CAROL is not logged on; the message will be delivered
                                    // when CAROL logs on."
                                    notice: sent.notice(),
                                    expiry_carried: expires_in.is_some(),
                                    ..Outcome::new(sent.recipient().to_owned(), Ok(()))
                                },
                                Err(e) => Outcome::new(typed, Err(e)),
                            }]));
                        }
                    }
                }
            }
            let result = {
                let netbios = match netbios(service) {
                    Ok(t) => t,
                    Err(e) => return Err(refused(NERR_NETWORK_ERROR, e)),
                };
                match netbios.send(&outgoing).await {
                    // What the caller typed is wrong (a name that is neither a messaging
                    // name nor a host): the request fails as a whole, as the command line
                    // reports it.
                    Err(e) if e.input => return Err(e),
                    // Not on the LAN, and the directory could not be asked: say why the
                    // name may well exist on another subnet.
                    Err(mut e)
                        if e.code == NERR_NAME_NOT_FOUND && organisation_unreachable(service) =>
                    {
                        e.code = NERR_NETWORK_ERROR;
                        e.message = format!(
                            "{} The organisation's message network (NATS) is unreachable, so \
                             names on other subnets cannot be found now.",
                            e.message
                        );
                        Err(e)
                    }
                    other => other,
                }
            };
            // Another host over NetBIOS says only that it accepted the message.
            let accepted = wait.map(|_| Receipt::AcceptedOnly);
            Ok(SendReport::new(vec![match result {
                Ok(d) => Outcome {
                    receipt: accepted,
                    ..Outcome::new(d.recipient, Ok(()))
                },
                Err(e) => Outcome::new(typed, Err(e)),
            }]))
        }
        SendTarget::Workgroup { name } => {
            if !caller.may_broadcast {
                return Err(refused(
                    ERROR_ACCESS_DENIED,
                    messenger_core::access::BROADCAST_REFUSED,
                ));
            }
            let workgroup = name
                .unwrap_or_else(|| service.settings.workgroup.clone())
                .to_uppercase();
            let outgoing = Outgoing {
                from,
                to: Recipient::Workgroup(workgroup.clone()),
                text,
                allow_long,
            };
            let netbios = match netbios(service) {
                Ok(t) => t,
                Err(e) => return Err(refused(NERR_NETWORK_ERROR, e)),
            };
            // By mailslot on this computer's subnets and, with `[nats]`, through JetStream to
            // the workgroup's hosts on every subnet, at once; a host that gets both stores one
            // (`service::echoes`).
            let organisation = service
                .organisation
                .get()
                .filter(|o| o.transport.reach(&outgoing.to) == Reach::Network);
            let over_nats = async {
                match organisation {
                    Some(o) => Some(o.transport.send_broadcast(&outgoing).await),
                    None => None,
                }
            };
            let (mailslot, over_nats) = tokio::join!(netbios.send(&outgoing), over_nats);
            let mailslot = match mailslot {
                Err(e) if e.input => return Err(e),
                other => other.map(|_| ()),
            };
            let (network, notice) = match (mailslot, over_nats) {
                (mailslot, None) => (mailslot, None),
                (_, Some(Err(e))) if e.input => return Err(e),
                (Ok(()), Some(Ok(_))) => (Ok(()), None),
                (Ok(()), Some(Err(e))) => (
                    Ok(()),
                    Some(format!(
                        "The broadcast reached this computer's subnets only: {e}"
                    )),
                ),
                (Err(e), Some(Ok(_))) => (
                    Ok(()),
                    Some(format!(
                        "The broadcast went to the workgroup's computers through the \
                         organisation's network only; by mailslot it failed: {e}"
                    )),
                ),
                (Err(e), Some(Err(_))) => (Err(e), None),
            };
            // A broadcast has no reader to wait for; its receivers only accept it.
            let accepted = wait.map(|_| Receipt::AcceptedOnly);
            let receipt = if network.is_ok() { accepted } else { None };
            let mut outcomes = vec![Outcome {
                receipt,
                notice,
                ..Outcome::new(workgroup, network)
            }];
            // A broadcast to our own workgroup reaches our own users too.
            let mut stored_here = Vec::new();
            let local = LocalDelivery { service, expire };
            if local.reach(&outgoing.to) == Reach::Local {
                match local.deliver(&outgoing).await {
                    Ok(delivered) => stored_here.push(delivered.id),
                    Err(e) => {
                        outcomes.push(Outcome::new(service.settings.computer_name.clone(), Err(e)))
                    }
                }
            }
            Ok(SendReport {
                outcomes,
                stored_here,
            })
        }
        SendTarget::Users => {
            if !caller.may_broadcast {
                return Err(refused(
                    ERROR_ACCESS_DENIED,
                    "Only root and members of the broadcast group may send to every user.",
                ));
            }
            let users: Vec<String> = {
                let sessions = service.sessions.read().unwrap_or_else(|e| e.into_inner());
                crate::host::utmp::users(&sessions).into_iter().collect()
            };
            if users.is_empty() {
                return Err(refused(
                    NERR_NAME_NOT_FOUND,
                    "Nobody is logged in to this computer.",
                ));
            }
            let to = service.settings.computer_name.clone();
            let reads = wait.map(|_| service.inbox.subscribe_reads());
            let delivered =
                deliver_locally(service, &from, &to, users.clone(), &text, expire).await;
            // One copy for every user: each result says whether that user read it.
            let read = match (&delivered, wait, reads) {
                (Ok(id), Some(wait), Some(reads)) => Some(
                    wait_for_readers(service, reads, *id, Readers::Each(users.clone()), wait).await,
                ),
                _ => None,
            };
            let stored_here = delivered.iter().copied().collect();
            let result = delivered.map(|_| ());
            let outcomes = users
                .into_iter()
                .map(|recipient| {
                    let receipt = read.as_ref().map(|read| {
                        if read.contains(&recipient) {
                            Receipt::Read
                        } else {
                            Receipt::NotReadInTime
                        }
                    });
                    Outcome {
                        receipt,
                        ..Outcome::new(recipient, result.clone())
                    }
                })
                .collect();
            Ok(SendReport {
                outcomes,
                stored_here,
            })
        }
    }
}

/// Whether `[nats]` is configured but the cluster cannot be used now (never connected, or
/// down for longer than the reconnect grace).
fn organisation_unreachable(service: &Service) -> bool {
    service.settings.nats.is_some()
        && service
            .organisation
            .get()
            .is_none_or(|o| !o.transport.is_usable())
}

/// How much longer than its expiry a sender waits for another host's receipt: that host
/// settles the expiry when it falls due and its receipt crosses the cluster in milliseconds;
/// a busy host or a fail-over in the cluster may take a few seconds.
const REMOTE_EXPIRY_GRACE: Duration = Duration::from_secs(5);

/// How long to wait for another host's receipt: `wait`, and when the wait reaches the
/// message's expiry, until the receipt that it expired can have come.
fn wait_for_remote_receipt(wait: Duration, expires_in: Option<Duration>) -> Duration {
    match expires_in {
        Some(expiry) if wait >= expiry => expiry + REMOTE_EXPIRY_GRACE,
        _ => wait,
    }
}

/// The NetBIOS transport with the service's configuration and interfaces.
fn netbios(service: &Service) -> Result<NetBios, String> {
    messenger_net::Settings::with_interfaces(
        &service.settings.config,
        &service.settings.computer_name,
        service.interfaces.clone(),
    )
    .map(NetBios::new)
    .map_err(|e| e.to_string())
}

/// Whose reading a waiting sender waits for.
#[derive(Debug, Clone)]
enum Readers {
    /// Anyone here (a message for everyone on this computer): the first reader ends the wait.
    Anyone,
    /// Each of these users: the wait ends once all of them have read it.
    Each(Vec<String>),
}

impl Readers {
    /// The readers of a message for `recipients` (none: everyone).
    fn of(recipients: &[String]) -> Self {
        if recipients.is_empty() {
            Readers::Anyone
        } else {
            Readers::Each(recipients.to_vec())
        }
    }

    fn includes(&self, user: &str) -> bool {
        match self {
            Readers::Anyone => true,
            Readers::Each(users) => users.iter().any(|u| u == user),
        }
    }

    fn all_read(&self, read: &HashSet<String>) -> bool {
        match self {
            Readers::Anyone => !read.is_empty(),
            Readers::Each(users) => users.iter().all(|u| read.contains(u)),
        }
    }
}

/// Waits up to `wait` (or until the service stops) for `readers` to read message `id`, and
/// returns who did. `reads` was subscribed before the message was delivered, so that a read
/// that comes at once is not missed.
async fn wait_for_readers(
    service: &Arc<Service>,
    mut reads: broadcast::Receiver<ReadReceipt>,
    id: i64,
    readers: Readers,
    wait: Duration,
) -> HashSet<String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut read = HashSet::new();
    while !readers.all_read(&read) {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = service.stopping.cancelled() => break,
            receipt = reads.recv() => match receipt {
                Ok(r) => {
                    if r.ids.contains(&id) && readers.includes(&r.user) {
                        read.insert(r.user);
                    }
                }
                // Receipts were missed: ask the inbox about each reader instead.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Readers::Each(users) = &readers {
                        read.extend(already_read(service, users.clone(), id).await);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    read
}

/// Which of `users` have read message `id`, from the inbox.
async fn already_read(service: &Arc<Service>, users: Vec<String>, id: i64) -> Vec<String> {
    service
        .inbox
        .read(move |s| {
            let mut read = Vec::new();
            for user in users {
                if s.get_for_user(&user, id)?.is_some_and(|m| m.read) {
                    read.push(user);
                }
            }
            Ok(read)
        })
        .await
        .unwrap_or_default()
}

/// A message delivered to this computer.
struct Delivered {
    /// The name it was for, as shown.
    shown: String,
    /// The users it is for (none: everyone).
    recipients: Vec<String>,
    /// Its inbox id.
    id: i64,
}

/// Delivery to this computer's own names and workgroup, straight into the inbox.
struct LocalDelivery<'a> {
    service: &'a Arc<Service>,
    /// The send's expiry, given to what it stores.
    expire: Option<Duration>,
}

impl LocalDelivery<'_> {
    /// The name of ours that `name` is, as shown, and the users it is for (none: everyone).
    fn find(&self, name: &str) -> Option<(String, Vec<String>)> {
        let parsed = messenger_core::names::parse_messaging_name(name).ok()?;
        let names = lock(&self.service.names);
        names.find_usable(parsed.name_bytes()).map(|e| {
            let recipients = match (&e.kind, &e.owner) {
                (NameKind::Computer, _) | (_, None) => Vec::new(),
                (_, Some(o)) => vec![o.name.clone()],
            };
            (messenger_core::names::display_name(&e.name), recipients)
        })
    }
}

impl Transport for LocalDelivery<'_> {
    fn name(&self) -> &'static str {
        "local"
    }

    fn reach(&self, to: &Recipient) -> Reach {
        let ours = match to {
            Recipient::Name(name) => self.find(name).is_some(),
            Recipient::Workgroup(workgroup) => *workgroup == self.service.settings.workgroup,
        };
        if ours {
            Reach::Local
        } else {
            Reach::Unreachable
        }
    }

    async fn send(&self, message: &Outgoing) -> Result<Delivery, SendError> {
        self.deliver(message)
            .await
            .map(|d| Delivery { recipient: d.shown })
    }
}

impl LocalDelivery<'_> {
    /// Stores `message` for the users of the name it is for.
    async fn deliver(&self, message: &Outgoing) -> Result<Delivered, SendError> {
        let (shown, recipients) = match &message.to {
            Recipient::Name(name) => self.find(name).ok_or_else(|| SendError {
                code: NERR_NAME_NOT_FOUND,
                message: format!("{} is no longer a name of this computer", name.trim()),
                input: false,
            })?,
            Recipient::Workgroup(workgroup) => (workgroup.clone(), Vec::new()),
        };
        let id = deliver_locally(
            self.service,
            &message.from,
            &shown,
            recipients.clone(),
            &message.text,
            self.expire,
        )
        .await?;
        Ok(Delivered {
            shown,
            recipients,
            id,
        })
    }
}

async fn deliver_locally(
    service: &Arc<Service>,
    from: &str,
    to: &str,
    recipients: Vec<String>,
    text: &str,
    expire: Option<Duration>,
) -> Result<i64, SendError> {
    let message = NewMessage {
        received_at: now_micros(),
        from: from.to_uppercase(),
        to: to.to_owned(),
        recipients,
        source: None,
        transport: TransportKind::Local,
        text: text.to_owned(),
        raw: text.as_bytes().to_vec(),
    };
    service
        .deliver(message, service.settings.computer_name.clone(), expire)
        .await
        .map_err(|_| SendError {
            code: NERR_BAD_RECEIVE,
            message: "The inbox could not take the message.".into(),
            input: false,
        })
}
