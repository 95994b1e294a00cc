//! Organisation-wide delivery over NATS JetStream (`[nats]` in the configuration).
//!
//! The service connects to the cluster, opens the directory (a replicated key-value bucket,
//! `messenger_nats::directory`), and keeps its names there: the computer name, its logged-in
//! users' names and their aliases are claimed for this host (create or compare-and-set, so
//! that no two hosts hold one unique name), refreshed while the service lives, released when
//! they go, and each logged-in user is recorded as being here. Messages for this host arrive
//! on its durable consumer and are committed to the inbox before JetStream is told (and only
//! once per message id). The outbound router sends a directed message for a name that the
//! directory places on another host through JetStream.
//!
//! Broadcasts to this host's workgroup arrive on its broadcast consumer; one that also came
//! by mailslot is stored once (`service::echoes`). And this host is the gateway for NetBIOS
//! senders on its subnet: a directed message for a name the directory places on another host
//! is accepted and forwarded there ([`forwards`], [`forward`]), so that `smbclient -M` and
//! Windows reach names beyond their subnet.
//!
//! Without `[nats]` nothing here runs and the service behaves as on a LAN alone. Everything
//! read from NATS is as untrusted as a packet: the consumer's wire decoding checks it, and
//! the names in it reach the inbox through the same store checks as any message.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use messenger_core::message::NewMessage;
use messenger_core::names::NameKind;
use messenger_core::transport::{Outgoing, Recipient, SendError};
use messenger_nats::consumer::{self, Received};
use messenger_nats::directory::{Directory, DirectoryError, Holding};
use messenger_nats::subject::EncodedName;
use messenger_nats::wire::{MessageId, ReceiptState};
use messenger_nats::{Nats, NatsSettings, NatsTransport};
use netbios::name::SUFFIX_MESSENGER;
use tokio_util::sync::CancellationToken;

use crate::service::echoes::Via;
use crate::service::Service;

/// Pause before connecting again after the cluster could not be reached: short enough that
/// the organisation's delivery comes back soon after the cluster does, long enough not to
/// flood a cluster that is starting.
const CONNECT_RETRY: Duration = Duration::from_secs(5);

/// How often the names this host holds are compared with the directory: a user who logs in
/// is reachable from other subnets within this time. Claims of names already held are not
/// repeated; only their refresh (every [`NatsSettings::refresh_interval`]) writes again.
const NAME_SYNC_INTERVAL: Duration = Duration::from_secs(2);

/// Longest wait at shutdown for this host's names to be released from the directory; past
/// it they expire on their own (`directory_max_age_secs`).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The organisation's network, once connected: what the outbound router sends through.
pub(crate) struct Organisation {
    /// Directed messages to other hosts.
    pub transport: NatsTransport,
}

/// Set once the service has connected to the cluster and opened the directory.
pub(crate) type OrganisationSlot = OnceLock<Organisation>;

/// Whether the gateway takes messages for `name` (OEM bytes of a `<03>` name that is not
/// ours): the organisation's directory places it on another host, or it is a user whose
/// messages wait for their login. Without `[nats]`, or with the cluster unreachable, no.
pub(crate) async fn forwards(service: &Service, name: &[u8]) -> bool {
    let Some(organisation) = service.organisation.get() else {
        return false;
    };
    let name = service.decode_text(crate::service::trim_nuls(name));
    organisation.transport.delivers_elsewhere(name.trim()).await
}

/// Whether the WINS proxy of `interface` answers for `name` (OEM bytes of a `<03>` name that
/// is not ours): the directory places it on another host, and that host is not on
/// `interface`'s subnet (there it answers for itself), or it waits in a user's queue.
pub(crate) async fn proxies_for(
    service: &Service,
    name: &[u8],
    interface: &messenger_net::iface::Interface,
) -> bool {
    let Some(organisation) = service.organisation.get() else {
        return false;
    };
    let name = service.decode_text(crate::service::trim_nuls(name));
    match organisation.transport.elsewhere_at(name.trim()).await {
        Some(addresses) => !addresses.iter().any(|a| interface.contains(*a)),
        None => false,
    }
}

/// Forwards a message that arrived over NetBIOS for a name that is not ours (OEM bytes as
/// received) to the host of the organisation that holds the name: `None` when there is no
/// such host (the sender is refused as before), else whether JetStream stored it.
pub(crate) async fn forward(
    service: &Service,
    from: &[u8],
    to: &[u8],
    text: &[u8],
) -> Option<Result<(), SendError>> {
    let organisation = service.organisation.get()?;
    let trim = crate::service::trim_nuls;
    let to = service.decode_text(trim(to)).trim().to_owned();
    if !organisation.transport.delivers_elsewhere(&to).await {
        return None;
    }
    let outgoing = Outgoing {
        from: service.decode_text(trim(from)).trim().to_owned(),
        to: Recipient::Name(to),
        text: service.decode_text(trim(text)),
        // The session service already held it to the configured receive limit.
        allow_long: true,
    };
    let sent = organisation.transport.send_message(&outgoing).await;
    if let Ok(sent) = &sent {
        tracing::info!(
            to = %sent.recipient(),
            "message from a NetBIOS sender forwarded to another host of the organisation"
        );
    }
    Some(sent.map(|_| ()))
}

/// Connects, keeps this host's names in the directory and receives its messages, until
/// `shutdown`. Runs only when `[nats]` is configured.
pub(crate) async fn run(
    service: Arc<Service>,
    settings: NatsSettings,
    shutdown: CancellationToken,
) {
    let host = match EncodedName::new(&service.settings().computer_name) {
        Ok(host) => host,
        Err(e) => {
            tracing::error!(error = %e, "the computer name cannot be used on NATS; organisation-wide delivery is off");
            return;
        }
    };
    let Some((nats, directory)) = connect(&settings, &host, &shutdown).await else {
        return;
    };
    tracing::info!(servers = ?settings.servers, "connected to the organisation's NATS cluster");
    let _ = service.organisation.set(Organisation {
        transport: NatsTransport::new(nats.clone(), directory.clone()),
    });
    let inbox = ServiceInbox {
        service: Arc::clone(&service),
    };
    let for_users = inbox.clone();
    let receiving = {
        let (nats, host, stop) = (nats.clone(), host.clone(), shutdown.clone());
        service.tasks.spawn(async move {
            consumer::run(&nats, &host, &inbox, stop.cancelled()).await;
        })
    };
    let broadcasts = match EncodedName::new(&service.settings().workgroup) {
        Ok(workgroup) => {
            let (nats, host, inbox, stop) = (
                nats.clone(),
                host.clone(),
                for_users.clone(),
                shutdown.clone(),
            );
            Some(service.tasks.spawn(async move {
                consumer::run_broadcasts(&nats, &host, &workgroup, &inbox, stop.cancelled()).await;
            }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "the workgroup name cannot be used on NATS; broadcasts reach this host by mailslot only");
            None
        }
    };
    let receipts = {
        let (service, stop) = (Arc::clone(&service), shutdown.clone());
        service
            .tasks
            .clone()
            .spawn(async move { send_read_receipts(service, stop).await })
    };
    let link = Link {
        nats: &nats,
        directory: &directory,
        inbox: &for_users,
    };
    keep_names(&service, link, &settings, &shutdown).await;
    let _ = receiving.await;
    if let Some(broadcasts) = broadcasts {
        let _ = broadcasts.await;
    }
    let _ = receipts.await;
}

/// Connects and opens the directory, trying again every [`CONNECT_RETRY`]; `None` at
/// shutdown.
async fn connect(
    settings: &NatsSettings,
    host: &EncodedName,
    shutdown: &CancellationToken,
) -> Option<(Nats, Directory)> {
    loop {
        let attempt = async {
            let nats = Nats::connect_host(settings.clone(), host)
                .await
                .map_err(|e| e.to_string())?;
            let directory = Directory::open(&nats, host.clone())
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((nats, directory))
        };
        let error = tokio::select! {
            _ = shutdown.cancelled() => return None,
            result = attempt => match result {
                Ok(connected) => return Some(connected),
                Err(e) => e,
            },
        };
        tracing::warn!(error = %error, "cannot reach the organisation's NATS cluster; trying again");
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(CONNECT_RETRY) => {}
        }
    }
}

/// The names this host should hold in the directory now: every unique messaging name in
/// the name table, as shown (`ALICE`), and the users logged in here.
fn wanted(service: &Service) -> (Vec<String>, Vec<String>) {
    let names = service
        .names()
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                NameKind::Computer | NameKind::User | NameKind::Alias
            )
        })
        .map(|e| messenger_core::names::display_name(&e.name))
        .collect();
    let users = {
        let sessions = service.sessions.read().unwrap_or_else(|e| e.into_inner());
        crate::host::utmp::users(&sessions).into_iter().collect()
    };
    (names, users)
}

/// Publishes a receipt for each message that came over NATS when one of its recipients reads
/// it, or when it expires unread, for a sender waiting with `messenger send --wait` on
/// another host.
async fn send_read_receipts(service: Arc<Service>, shutdown: CancellationToken) {
    let mut reads = service.inbox.subscribe_reads();
    let mut expirations = service.inbox.subscribe_expirations();
    loop {
        let (state, ids) = tokio::select! {
            _ = shutdown.cancelled() => return,
            read = reads.recv() => (ReceiptState::Read, read.map(|r| r.ids)),
            expired = expirations.recv() => (ReceiptState::Expired, expired.map(|e| vec![e.id])),
        };
        let ids = match ids {
            Ok(ids) => ids,
            // Receipts are a courtesy: a sender whose receipt was skipped waits out its time.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "read receipts skipped: too many reads at once");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(organisation) = service.organisation.get() else {
            continue;
        };
        let origins = match service
            .inbox
            .read(move |store| store.origin_ids(&ids))
            .await
        {
            Ok(origins) => origins,
            Err(e) => {
                tracing::debug!(error = %e, "cannot look up the network ids of read messages");
                continue;
            }
        };
        for (_, origin) in origins {
            // Ids of other networks (none yet) are not NATS message ids.
            if let Ok(id) = MessageId::try_from(origin) {
                organisation.transport.publish_receipt(&id, state).await;
            }
        }
    }
}

/// Claims, refreshes and releases this host's names and records its users, until
/// `shutdown`; then releases what it holds.
async fn keep_names(
    service: &Arc<Service>,
    link: Link<'_>,
    settings: &NatsSettings,
    shutdown: &CancellationToken,
) {
    let Link {
        nats,
        directory,
        inbox,
    } = link;
    let mut held: HashMap<String, Holding> = HashMap::new();
    // The queues of the users logged in here, each received while its user is: messages
    // that waited while they were logged in nowhere arrive at their login.
    let mut queues: HashMap<String, CancellationToken> = HashMap::new();
    // Names another host holds: not tried again until they leave the name table.
    let mut refused: Vec<String> = Vec::new();
    let mut users_recorded: Vec<String> = Vec::new();
    let mut last_refresh = tokio::time::Instant::now();
    let mut addresses_recorded = false;
    loop {
        let (names, users) = wanted(service);
        let refresh_due = last_refresh.elapsed() >= settings.refresh_interval();
        // This host's addresses, for the WINS proxies of other hosts (see `proxies_for`).
        if !addresses_recorded || refresh_due {
            match directory.set_addresses(&service.addresses).await {
                Ok(()) => addresses_recorded = true,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot record this host's addresses in the directory")
                }
            }
        }
        for name in &names {
            if refused.contains(name) {
                continue;
            }
            let outcome = match held.get_mut(name) {
                Some(holding) if refresh_due => directory.refresh(holding).await,
                Some(_) => Ok(()),
                None => match directory.claim(name).await {
                    Ok(holding) => {
                        tracing::info!(%name, "name registered in the organisation's directory");
                        held.insert(name.clone(), holding);
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            match outcome {
                Ok(()) => {}
                Err(DirectoryError::Duplicate { .. }) | Err(DirectoryError::Lost { .. }) => {
                    tracing::warn!(%name, "another computer of the organisation holds this name; messages to it from other subnets go there");
                    held.remove(name);
                    refused.push(name.clone());
                }
                Err(e) => {
                    tracing::warn!(%name, error = %e, "cannot keep a name in the organisation's directory")
                }
            }
        }
        if refresh_due {
            last_refresh = tokio::time::Instant::now();
        }
        refused.retain(|n| names.contains(n));
        let gone: Vec<String> = held
            .keys()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(holding) = held.remove(&name) {
                match directory.release(holding).await {
                    Ok(()) => {
                        tracing::info!(%name, "name released from the organisation's directory")
                    }
                    Err(e) => {
                        tracing::debug!(%name, error = %e, "releasing a name from the directory failed")
                    }
                }
            }
        }
        for user in users_recorded.iter().filter(|u| !users.contains(u)) {
            match directory.clear_user_here(user).await {
                Ok(()) => tracing::info!(
                    %user,
                    "logout recorded in the organisation's directory; messages wait in the user's queue"
                ),
                Err(e) => {
                    tracing::debug!(%user, error = %e, "cannot record a logout in the directory")
                }
            }
        }
        for user in &users {
            if !users_recorded.contains(user) || refresh_due {
                if let Err(e) = directory.set_user_here(user).await {
                    tracing::debug!(%user, error = %e, "cannot record a login in the directory");
                }
            }
        }
        for user in &users {
            if queues.contains_key(user) {
                continue;
            }
            let Ok(name) = EncodedName::new(user) else {
                continue;
            };
            let stop = shutdown.child_token();
            queues.insert(user.clone(), stop.clone());
            let (nats, inbox, account) = (nats.clone(), inbox.clone(), user.clone());
            service.tasks.spawn(async move {
                consumer::run_user(&nats, &name, &account, &inbox, stop.cancelled()).await;
            });
        }
        queues.retain(|user, stop| {
            let here = users.contains(user);
            if !here {
                stop.cancel();
            }
            here
        });
        users_recorded = users;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(NAME_SYNC_INTERVAL) => {}
        }
    }
    // Users logged in here are reachable here no longer: messages for them wait in their
    // queues until they log in again, here or elsewhere.
    let release = async {
        for (_, holding) in held {
            let _ = directory.release(holding).await;
        }
        for user in &users_recorded {
            let _ = directory.clear_user_here(user).await;
        }
        let _ = directory.clear_addresses().await;
    };
    let _ = tokio::time::timeout(RELEASE_TIMEOUT, release).await;
}

/// What [`keep_names`] works with on the cluster.
struct Link<'a> {
    nats: &'a Nats,
    directory: &'a Directory,
    inbox: &'a ServiceInbox,
}

/// The service's inbox as the consumer's: each message stored once per id, then shown like
/// any other.
#[derive(Clone)]
struct ServiceInbox {
    service: Arc<Service>,
}

impl consumer::Inbox for ServiceInbox {
    async fn commit(&self, received: Received) -> Result<bool, String> {
        if received.broadcast {
            return self.commit_broadcast(received).await;
        }
        // Whom it is for: from a user's queue, the local account that queue is received for;
        // else by the name it was sent to.
        let recipients = match &received.user {
            Some(account) => vec![account.clone()],
            None => self.recipients_of(&received.message.to),
        };
        let message: NewMessage = consumer::new_message(&received, recipients);
        let machine = received.message.from_host.clone();
        // Sent with `--time`: it expires here, that long after it is stored.
        let expires_in = received.message.expires_in_secs.map(Duration::from_secs);
        let stored = self
            .service
            .deliver_once(
                received.id.as_str().to_owned(),
                message,
                machine,
                expires_in,
            )
            .await
            .map(|id| id.is_some())
            .map_err(|refusal| format!("{refusal:?}"))?;
        if stored {
            if let Some(organisation) = self.service.organisation.get() {
                organisation
                    .transport
                    .publish_receipt(&received.id, ReceiptState::Delivered)
                    .await;
            }
        }
        Ok(stored)
    }
}

impl ServiceInbox {
    /// A broadcast to this host's workgroup: for everyone here, stored once even when it came
    /// by mailslot too, and subject to `accept_broadcasts` as on the LAN.
    async fn commit_broadcast(&self, received: Received) -> Result<bool, String> {
        let service = &self.service;
        if !service.settings().config.policy.accept_broadcasts {
            tracing::info!("broadcast from NATS ignored: accept_broadcasts = false");
            return Ok(false);
        }
        let wire = &received.message;
        if !service.admit_broadcast(&wire.from, &wire.to, &wire.text, Via::Nats) {
            tracing::debug!("a broadcast that came by mailslot too is already in the inbox");
            return Ok(false);
        }
        let message: NewMessage = consumer::new_message(&received, Vec::new());
        let machine = wire.from_host.clone();
        // A broadcast over NATS carries no expiry; its sender is told that other hosts keep
        // it without one.
        service
            .deliver_once(received.id.as_str().to_owned(), message, machine, None)
            .await
            .map(|id| id.is_some())
            .map_err(|refusal| format!("{refusal:?}"))
    }

    /// The users a message sent to the name `to` is for: a user's name or alias reaches that
    /// user; the computer name, or a name no longer ours, everyone here (none listed).
    fn recipients_of(&self, to: &str) -> Vec<String> {
        let Ok(name) = netbios::NetbiosName::new_uppercase(to.as_bytes(), SUFFIX_MESSENGER) else {
            return Vec::new();
        };
        let names = self.service.names();
        match names.get(&name).map(|e| (&e.kind, &e.owner)) {
            Some((NameKind::User | NameKind::Alias, Some(owner))) => vec![owner.name.clone()],
            _ => Vec::new(),
        }
    }
}
