//! The service's shared state and the rules that tie receiving, names and the inbox together.
//!
//! Transports (the session server, the datagram listener, local sends) hand a received message
//! to [`Service::accept_message`], which checks that it is for one of our names, stores it
//! durably, and only then lets the transport acknowledge it; showing it to users and running
//! the message command happen afterwards and never delay the sender.
//!
//! The state is private to the daemon; callers outside it (`main`, tests) read it through the
//! accessors [`Service::settings`], [`Service::inbox`] and [`Service::names`].

pub mod echoes;
pub mod expiry;
pub mod inbox;
pub mod names;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use messenger_core::access::{self, Accounts, Identity, SystemAccounts};
use messenger_core::config::{Config, Invoker};
use messenger_core::message::{NewMessage, StoredMessage, TransportKind};
use messenger_core::names::{NameKind, NameRecord, Owner};
use netbios::oem::CodePage;
use netbios::NetbiosName;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::delivery::command::CommandRunner;
use crate::delivery::{reaches, Arrival, Audience, DeliverySink};
use crate::host::utmp::LoginSession;
use crate::util::{lock, now_micros};
use inbox::Inbox;
use names::NameTable;

/// Why a message was not accepted; each maps to the SMB error the sender gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not addressed to one of our names: the session sender gets ERRerror, or
    /// STATUS_OBJECT_NAME_NOT_FOUND when it speaks NT status (see
    /// `netbios::smb::receiver::DeliveryError::NotOurName`); a datagram is dropped.
    NotOurName,
    /// The inbox could not take it (disk full, read-only, queue full): ERRnoroom.
    NoRoom,
    /// Policy refused the source (allow/deny lists, rate limit).
    Policy,
    /// A broadcast already stored from its other way (mailslot or NATS); nothing to answer,
    /// since broadcasts are datagrams.
    Echo,
}

/// Settings resolved from the configuration and the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration as loaded.
    pub config: Config,
    /// NetBIOS computer name, uppercase.
    pub computer_name: String,
    /// Workgroup, uppercase.
    pub workgroup: String,
    /// Where the inbox and spool live.
    pub data_dir: PathBuf,
    /// The control socket.
    pub control_socket: PathBuf,
    /// OEM code page of the wire.
    pub code_page: CodePage,
    /// The account Samba's smbd runs `message command` as (smb.conf `guest account`), which
    /// may deliver messages smbd received.
    pub samba_guest_account: String,
    /// The organisation's network (`[nats]`), validated; `None` without the table.
    pub nats: Option<messenger_nats::NatsSettings>,
}

impl Settings {
    /// Resolves `config` for the current process.
    pub fn resolve(config: Config) -> Result<Self, crate::error::StartError> {
        let invoker = current_invoker();
        let code_page = config.code_page();
        let samba_guest_account = config
            .samba()
            .map(|s| s.guest_account().to_owned())
            .unwrap_or_else(|| messenger_core::samba::DEFAULT_SAMBA_GUEST_ACCOUNT.to_owned());
        let nats = config
            .nats
            .as_ref()
            .map(messenger_nats::NatsSettings::from_table)
            .transpose()?;
        Ok(Self {
            samba_guest_account,
            nats,
            computer_name: config.computer_name(&invoker),
            workgroup: config.workgroup(),
            data_dir: config
                .data_dir(&invoker)
                .ok_or(crate::error::StartError::NoDataDir)?,
            control_socket: config.control_socket(),
            code_page,
            config,
        })
    }
}

/// The host name assumed when the system's cannot be read or is not UTF-8: any valid
/// NetBIOS name would do, and this one says what the computer is.
const FALLBACK_HOST_NAME: &str = "LINUX";

/// Who runs this process, for the configuration's defaults.
pub fn current_invoker() -> Invoker {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| FALLBACK_HOST_NAME.to_owned());
    Invoker::from_environment(nix::unistd::Uid::effective().is_root(), host)
}

/// A request to the name service tasks (one per interface).
#[derive(Debug, Clone)]
pub enum NameCommand {
    /// Register a name (group or unique).
    Register {
        /// The name.
        name: NetbiosName,
        /// Group name (never contested).
        group: bool,
    },
    /// Release a name.
    Release {
        /// The name.
        name: NetbiosName,
    },
}

/// State shared by every task of the service.
pub struct Service {
    /// Resolved settings.
    pub(crate) settings: Settings,
    /// The durable inbox.
    pub(crate) inbox: Inbox,
    /// Our messaging names.
    pub(crate) names: Mutex<NameTable>,
    /// Login sessions, as last read from utmp.
    pub(crate) sessions: RwLock<Vec<LoginSession>>,
    /// Where every stored message is handed: terminals, the message command, and so on.
    pub(crate) sinks: Vec<Arc<dyn DeliverySink>>,
    /// Name service tasks, one per interface.
    pub(crate) name_services: Vec<mpsc::UnboundedSender<NameCommand>>,
    /// IPv4 addresses served.
    pub(crate) addresses: Vec<std::net::Ipv4Addr>,
    /// The interfaces served.
    pub(crate) interfaces: Vec<messenger_net::iface::Interface>,
    /// When the service started.
    pub(crate) started: Instant,
    /// Admission control: source policy, connection caps, rate limits.
    pub(crate) gate: Arc<crate::gate::Gate>,
    /// Every task of the service (connections, control calls, displays, message commands):
    /// shutdown waits for them.
    pub(crate) tasks: TaskTracker,
    /// Runs `message_command`, when there is one (one of the `sinks`; here to count what
    /// still runs at shutdown).
    pub(crate) commands: Option<Arc<CommandRunner>>,
    /// The organisation's network (NATS), once connected; never set without `[nats]`.
    pub(crate) organisation: crate::transports::organisation::OrganisationSlot,
    /// Cancelled when the service stops: senders waiting for their readers stop waiting.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// The rate limit on messages local users send through the control socket.
    pub(crate) local_sends: crate::gate::LocalSendLimit,
    /// Broadcasts received one way (mailslot or NATS) whose twin may still come the other.
    pub(crate) echoes: Mutex<echoes::BroadcastEchoes>,
}

impl Service {
    /// The resolved settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The durable inbox.
    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Our messaging names, locked: hold the guard briefly, every receiving task needs it.
    pub fn names(&self) -> std::sync::MutexGuard<'_, NameTable> {
        lock(&self.names)
    }

    /// Asks every interface to register `name`.
    pub fn register_everywhere(&self, name: NetbiosName, group: bool) {
        for ns in &self.name_services {
            let _ = ns.send(NameCommand::Register { name, group });
        }
    }

    /// Asks every interface to release `name`.
    pub fn release_everywhere(&self, name: NetbiosName) {
        for ns in &self.name_services {
            let _ = ns.send(NameCommand::Release { name });
        }
    }

    /// Adds a messaging name to the table and starts registering it; returns false if it was
    /// already there.
    pub fn add_name(&self, name: NetbiosName, kind: NameKind, owner: Option<Owner>) -> bool {
        let added = lock(&self.names).insert(name, kind, owner, self.name_services.len());
        if added {
            self.register_everywhere(name, false);
        }
        added
    }

    /// Removes a messaging name and releases it on the network.
    pub fn remove_name(&self, name: &NetbiosName) {
        if lock(&self.names).remove(name).is_some() {
            self.release_everywhere(*name);
        }
    }

    /// The account that may deliver messages smbd received, besides root.
    pub fn samba_guest_account(&self) -> &str {
        &self.settings.samba_guest_account
    }

    /// Whether `name` is an alias owned by `uid`.
    pub fn is_alias_of(&self, name: &NetbiosName, uid: u32) -> bool {
        lock(&self.names).get(name).is_some_and(|e| {
            e.kind == NameKind::Alias && e.owner.as_ref().is_some_and(|o| o.uid == uid)
        })
    }

    /// Removes `name` and releases it on the network if it is an alias owned by `uid`, and
    /// only then: a user who logged in may have taken it meanwhile.
    pub fn remove_alias_of(&self, name: &NetbiosName, uid: u32) {
        let removed = {
            let mut names = lock(&self.names);
            let ours = names.get(name).is_some_and(|e| {
                e.kind == NameKind::Alias && e.owner.as_ref().is_some_and(|o| o.uid == uid)
            });
            ours && names.remove(name).is_some()
        };
        if removed {
            self.release_everywhere(*name);
        }
    }

    /// Whether a broadcast that arrived `via` should be stored, or is the twin of one that
    /// arrived the other way (see [`echoes`]). Without `[nats]` there is only one way.
    pub(crate) fn admit_broadcast(
        &self,
        from: &str,
        workgroup: &str,
        text: &str,
        via: echoes::Via,
    ) -> bool {
        if self.settings.nats.is_none() {
            return true;
        }
        let fingerprint = echoes::Fingerprint::of(from, workgroup, text);
        lock(&self.echoes).admit(fingerprint, via, Instant::now())
    }

    /// Decodes the OEM bytes of a received text or name.
    pub fn decode_text(&self, bytes: &[u8]) -> String {
        self.settings.code_page.decode_text(bytes)
    }

    /// Checks, stores and (after the commit) shows a received message. `to` is the
    /// destination exactly as received; for broadcasts `to_workgroup` is true and `to` must
    /// name our workgroup.
    pub async fn accept_message(self: &Arc<Self>, incoming: Incoming) -> Result<i64, Refusal> {
        let to_name = trim_nuls(&incoming.to);
        let recipients = if incoming.to_workgroup {
            let wanted = self.settings.workgroup.as_bytes();
            if !to_name.eq_ignore_ascii_case(wanted) {
                return Err(Refusal::NotOurName);
            }
            Vec::new()
        } else {
            let names = lock(&self.names);
            let entry = names.find_usable(to_name).ok_or(Refusal::NotOurName)?;
            match (&entry.kind, &entry.owner) {
                (NameKind::Computer, _) | (_, None) => Vec::new(),
                (_, Some(owner)) => vec![owner.name.clone()],
            }
        };
        let text = self.decode_text(trim_nuls(&incoming.text));
        let from = self.decode_text(trim_nuls(&incoming.from));
        if incoming.to_workgroup
            && !self.admit_broadcast(
                &from,
                &self.settings.workgroup,
                &text,
                echoes::Via::Mailslot,
            )
        {
            tracing::debug!("a broadcast that came over NATS too is already in the inbox");
            return Err(Refusal::Echo);
        }
        let message = NewMessage {
            received_at: now_micros(),
            from,
            to: self.decode_text(to_name),
            recipients,
            source: incoming.source,
            transport: incoming.transport,
            text,
            raw: incoming.text,
        };
        // What arrives over NetBIOS never expires: the protocol has no way to ask for it.
        self.deliver(message, incoming.calling_machine, None).await
    }

    /// Stores `message` durably and, once it is on disk, shows it and runs the message
    /// command in the background. The id is returned only after the commit. With
    /// `expires_in` (a local `send --time`) it expires that long after it is stored unless
    /// read first (see [`expiry`]).
    pub async fn deliver(
        self: &Arc<Self>,
        message: NewMessage,
        machine: String,
        expires_in: Option<Duration>,
    ) -> Result<i64, Refusal> {
        // Without an origin id nothing is a redelivery: every message is stored.
        match self
            .deliver_inner(None, message, machine, expires_in)
            .await?
        {
            Some(id) => Ok(id),
            None => Err(Refusal::NoRoom),
        }
    }

    /// [`Service::deliver`] for a message its network may deliver more than once: stored
    /// (and shown) only the first time `origin_id` is seen; `None` for a redelivery.
    pub async fn deliver_once(
        self: &Arc<Self>,
        origin_id: String,
        message: NewMessage,
        machine: String,
        expires_in: Option<Duration>,
    ) -> Result<Option<i64>, Refusal> {
        self.deliver_inner(Some(origin_id), message, machine, expires_in)
            .await
    }

    async fn deliver_inner(
        self: &Arc<Self>,
        origin_id: Option<String>,
        message: NewMessage,
        machine: String,
        expires_in: Option<Duration>,
    ) -> Result<Option<i64>, Refusal> {
        // Under load most messages have nobody to be shown to (no session of their
        // recipients, no message command): for those, skip the copy of the text and the
        // display task altogether. Who is logged in may change meanwhile; a message is then
        // shown or not as if it had arrived a moment earlier, and it is in the inbox anyway.
        let to_show = self.has_audience(&message).then(|| message.clone());
        let (from, to, transport, source) = (
            message.from.clone(),
            message.to.clone(),
            message.transport,
            message.source,
        );
        let text = tracing::enabled!(tracing::Level::DEBUG).then(|| message.text.clone());
        let expires_at = expires_in.map(|after| expiry::expires_at(message.received_at, after));
        let stored = match (origin_id, expires_at) {
            (None, None) => self.inbox.store(message).await.map(Some),
            (None, Some(at)) => self.inbox.store_expiring(message, at).await.map(Some),
            (Some(origin_id), at) => self.inbox.store_once(origin_id, message, at).await,
        };
        let id = match stored {
            Ok(Some(id)) => id,
            Ok(None) => {
                tracing::debug!("a message delivered again is already in the inbox");
                return Ok(None);
            }
            Err(e) => {
                tracing::error!(error = %e, "inbox cannot take a message; sender gets ERRnoroom");
                return Err(Refusal::NoRoom);
            }
        };
        tracing::info!(
            id,
            from = %messenger_core::sanitize::sanitize_line(&from),
            to = %messenger_core::sanitize::sanitize_line(&to),
            transport = ?transport,
            source = ?source,
            "message stored"
        );
        if let Some(text) = text {
            tracing::debug!(id, text = %messenger_core::sanitize::sanitize(&text), "message text");
        }
        if let Some(message) = to_show {
            let this = Arc::clone(self);
            self.tasks
                .spawn(async move { this.show(id, message, machine, expires_at).await });
        }
        Ok(Some(id))
    }

    /// Whether anything happens after `message` is stored: a login session of one of its
    /// recipients (of anyone, for a message to everyone), or a sink that acts anyway.
    fn has_audience(&self, message: &NewMessage) -> bool {
        if self.sinks.iter().any(|s| s.acts_without_sessions()) {
            return true;
        }
        let sessions = self.sessions.read().unwrap_or_else(|e| e.into_inner());
        sessions.iter().any(|s| reaches(&message.recipients, s))
    }

    /// Hands a stored message to every sink, and marks it read for the users who saw it.
    async fn show(
        self: Arc<Self>,
        id: i64,
        message: NewMessage,
        machine: String,
        expires_at: Option<i64>,
    ) {
        let audience = {
            let all = self.sessions.read().unwrap_or_else(|e| e.into_inner());
            Audience::of(&message.recipients, &all)
        };
        let arrival = Arrival {
            stored: StoredMessage {
                id,
                message,
                read: false,
                read_by: Vec::new(),
                expires_at,
                expired: false,
            },
            machine,
        };
        let sinks = self.sinks.clone();
        let shown = tokio::task::spawn_blocking(move || {
            let mut shown: Vec<String> = Vec::new();
            for sink in &sinks {
                for user in sink.deliver(&arrival, &audience) {
                    if !shown.contains(&user) {
                        shown.push(user);
                    }
                }
            }
            shown
        })
        .await
        .unwrap_or_default();
        for user in shown {
            if let Err(e) = self.inbox.mark_read(user, vec![id]).await {
                tracing::warn!(error = %e, "could not mark a shown message read");
            }
        }
    }

    /// Adds `name` as an alias of `owner` and starts registering it, unless it is present,
    /// the owner already holds `per_user_cap` aliases (`None`: no cap, for root), or the table
    /// is full; fails with the NET error number. Checked and taken under one lock, so
    /// concurrent `/ADD`s cannot exceed the cap.
    pub fn add_alias(
        &self,
        name: NetbiosName,
        owner: Owner,
        per_user_cap: Option<usize>,
    ) -> Result<(), u32> {
        lock(&self.names).insert_alias(name, owner, per_user_cap, self.name_services.len())?;
        self.register_everywhere(name, false);
        Ok(())
    }

    /// Takes the login sessions just read from utmp: registers the names of users who logged
    /// in and releases those of users who left.
    ///
    /// A user who logs in takes their login name even when it is another owner's alias (one
    /// added before the account existed, or kept from before aliases were checked): names
    /// belong to their users, so messages to it must reach the user, not the alias's owner.
    /// The alias is turned into the user's name in place (the name stays registered) and
    /// deleted from the store, and a warning says whose it was. The account lookups run on
    /// the blocking pool.
    pub async fn refresh_sessions(&self, sessions: Vec<LoginSession>) {
        let users = crate::host::utmp::users(&sessions);
        {
            let mut current = self.sessions.write().unwrap_or_else(|e| e.into_inner());
            *current = sessions;
        }
        let mut to_remove = Vec::new();
        // Names of users who logged in: absent, or another's alias (with its owner's uid).
        let mut arrived: Vec<(NetbiosName, String, Option<u32>)> = Vec::new();
        {
            let names = lock(&self.names);
            for e in names.iter().filter(|e| e.kind == NameKind::User) {
                let owner = e.owner.as_ref().map(|o| o.name.as_str()).unwrap_or("");
                if !users.contains(owner) {
                    to_remove.push(e.name);
                }
            }
            for user in &users {
                let Ok(name) = NetbiosName::messenger(user) else {
                    continue;
                };
                match names.get(&name) {
                    None => arrived.push((name, user.clone(), None)),
                    Some(e) if e.kind == NameKind::Alias => {
                        if let Some(o) = &e.owner {
                            arrived.push((name, user.clone(), Some(o.uid)));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        for name in to_remove {
            tracing::info!(%name, "user logged out; releasing name");
            self.remove_name(&name);
        }
        if arrived.is_empty() {
            return;
        }
        let logins: Vec<String> = arrived.iter().map(|(_, user, _)| user.clone()).collect();
        let count = logins.len();
        let uids = tokio::task::spawn_blocking(move || {
            logins
                .iter()
                .map(|l| SystemAccounts.user(l).map(|a| a.uid))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|_| vec![None; count]);
        for ((name, user, alias_owner), uid) in arrived.into_iter().zip(uids) {
            let owner = Owner {
                uid: uid.unwrap_or(u32::MAX),
                name: user,
            };
            match alias_owner {
                None => {
                    tracing::info!(%name, "user logged in; registering name");
                    self.add_name(name, NameKind::User, Some(owner));
                }
                Some(previous) if access::login_takes_name_from(previous, uid) => {
                    let taken = lock(&self.names).take_alias_for_user(&name, previous, owner);
                    if taken {
                        tracing::warn!(
                            %name,
                            previous_owner_uid = previous,
                            "a user logged in whose login name was another user's alias; \
                             the name is the user's now and the alias is deleted"
                        );
                        let stored = messenger_core::names::display_name(&name);
                        if let Err(e) = self
                            .inbox
                            .with_store(move |s| s.delete_name(&stored).map(|_| ()))
                            .await
                        {
                            tracing::warn!(error = %e, "could not remove the alias from the store");
                        }
                    }
                }
                // The user's own alias: messages to it reach them already.
                Some(_) => {}
            }
        }
    }

    /// The stored names that may still be held: an alias whose owner (other than root) may
    /// no longer add it, because it has become another account's login name, is left out,
    /// deleted from the store and logged. The account lookups run on the blocking pool.
    pub async fn names_still_allowed(&self, stored: Vec<NameRecord>) -> Vec<NameRecord> {
        let checked = tokio::task::spawn_blocking(move || {
            stored
                .into_iter()
                .map(|r| {
                    let refused = (r.kind == NameKind::Alias).then(|| {
                        let owner = Identity {
                            uid: r.owner_uid,
                            gid: u32::MAX,
                            login: r.owner_name.clone(),
                        };
                        access::check_alias(&owner, &r.name, &[], &SystemAccounts).err()
                    });
                    (r, refused.flatten())
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut kept = Vec::with_capacity(checked.len());
        for (record, refused) in checked {
            match refused {
                None => kept.push(record),
                Some(why) => {
                    tracing::warn!(
                        name = %record.name,
                        owner = %record.owner_name,
                        reason = %why,
                        "dropping a stored alias"
                    );
                    let name = record.name.clone();
                    if let Err(e) = self
                        .inbox
                        .with_store(move |s| s.delete_name(&name).map(|_| ()))
                        .await
                    {
                        tracing::warn!(error = %e, "could not remove the alias from the store");
                    }
                }
            }
        }
        kept
    }
}

/// A message as a transport received it, before any checks.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Originator, OEM bytes.
    pub from: Vec<u8>,
    /// Destination, OEM bytes.
    pub to: Vec<u8>,
    /// Text, OEM bytes.
    pub text: Vec<u8>,
    /// A workgroup broadcast (mailslot to `WORKGROUP<00>`).
    pub to_workgroup: bool,
    /// Sender's address.
    pub source: Option<SocketAddr>,
    /// How it came.
    pub transport: TransportKind,
    /// Calling NetBIOS name from the session request, if any.
    pub calling_machine: String,
}

pub(crate) fn trim_nuls(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}
