//! `messenger agent`: the per-user desktop agent.
//!
//! It runs in the user's graphical session, connects to the Messenger service's control
//! socket as that user (the service knows who it is from the socket's peer credentials),
//! follows the user's inbox and shows each new message as a desktop notification that stays
//! until dismissed, as the Windows pop-up stayed until OK was pressed. Dismissing it, or its
//! OK action, marks the message read; a notification that expired or that the server closed
//! leaves the message unread. A message whose sender gave it an expiry (`messenger send
//! --time`) is taken down when the service says it expired unread.
//!
//! Nothing is lost when something restarts:
//! - at start, the unread messages are shown (a few, and one summary for the rest);
//! - when the service restarts, the agent connects again (with a growing pause) and follows
//!   from the last message it saw (`after_id`), so the service replays what came meanwhile;
//!   when the service says the stream lagged, it does the same at once;
//! - when the notification server restarts (or appears late), every message shown and not
//!   yet acknowledged is shown again; when the session bus goes away, the agent connects to
//!   it again.
//!
//! Anyone on the network can send a message, so at most [`MAX_PENDING`] notifications are on
//! the screen at once; later messages are counted in one summary notification.
//!
//! One agent runs per user (a lock in `$XDG_RUNTIME_DIR`, see [`lock`]).
#![forbid(unsafe_code)]

pub mod control;
pub mod desktop;
pub mod format;
pub mod lock;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use futures_lite::StreamExt;
use messenger_ipc::{MessageView, Reply, Request};
use tokio::signal::unix::{signal, SignalKind};

use control::{Connection, ControlError};
use desktop::{Note, NotificationsProxy};
use format::CatchUp;

/// First pause before connecting again to the service or the session bus after losing it;
/// it doubles on each failure up to [`MAX_BACKOFF`]. A restarting service is back within a
/// second or so, and connecting to a socket nobody listens on costs nothing.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Longest pause between attempts: a service that is down for long is noticed within this
/// once it is back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Messages shown one by one at once. Past this, new messages are counted in the summary
/// notification instead ("and N more: messenger inbox --unread"): a flood from the network
/// would otherwise bury the desktop under notifications, one per message, each to dismiss.
pub const MAX_PENDING: usize = 50;

/// Longest a change of the summary's count waits before it is shown. During a flood the
/// count changes with every message, and each update makes the notification server lay out
/// its notifications again (about 50 ms with [`MAX_PENDING`] of them on the screen, measured
/// with dunst): updated per message, the agent would fall behind a flood by that much per
/// message. Four updates a second still look live.
pub const SUMMARY_REFRESH: Duration = Duration::from_millis(250);

/// What the agent needs to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The service's control socket.
    pub socket: PathBuf,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// Another agent runs for this user, or the lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    /// The runtime or a signal handler could not be set up.
    #[error("cannot start: {0}")]
    Setup(#[from] std::io::Error),
}

/// Logging to standard error (the journal, under systemd), `RUST_LOG` or `info`.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the agent until SIGTERM or SIGINT: takes the per-user lock, then follows the inbox.
pub fn run(options: Options) -> Result<(), AgentError> {
    let _lock = lock::AgentLock::acquire_for_user()?;
    // One thread: the agent waits almost all the time, and should cost its user little.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(Agent::new(options).run())
}

/// A pause that grows while attempts fail.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(MIN_BACKOFF)
    }

    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        now
    }

    fn reset(&mut self) {
        self.0 = MIN_BACKOFF;
    }
}

/// The session bus and the notification server on it.
struct Desktop {
    proxy: NotificationsProxy<'static>,
    closed: desktop::NotificationClosedStream,
    actions: desktop::ActionInvokedStream,
    owner: zbus::proxy::OwnerChangedStream<'static>,
    /// The server interprets markup in bodies (`body-markup`).
    markup: bool,
    _connection: zbus::Connection,
}

enum DesktopEvent {
    Closed {
        id: u32,
        reason: u32,
    },
    Action {
        id: u32,
        key: String,
    },
    /// The notification server appeared (true) or went away (false).
    Server(bool),
    /// The session bus connection ended.
    Lost,
}

impl Desktop {
    async fn connect() -> zbus::Result<Self> {
        let connection = zbus::Connection::session().await?;
        let proxy = NotificationsProxy::new(&connection).await?;
        let closed = proxy.receive_notification_closed().await?;
        let actions = proxy.receive_action_invoked().await?;
        let owner = proxy.inner().receive_owner_changed().await?;
        let mut desktop = Self {
            proxy,
            closed,
            actions,
            owner,
            markup: false,
            _connection: connection,
        };
        desktop.refresh_capabilities().await;
        Ok(desktop)
    }

    /// Asks the server what it does with markup; without an answer, assume the worst (it
    /// interprets markup), so that escaping shows entities rather than formatting.
    async fn refresh_capabilities(&mut self) {
        self.markup = match self.proxy.get_capabilities().await {
            Ok(caps) => caps.iter().any(|c| c == "body-markup"),
            Err(e) => {
                tracing::debug!(error = %e, "no capabilities from the notification server");
                true
            }
        };
    }

    async fn next_event(&mut self) -> DesktopEvent {
        tokio::select! {
            s = self.closed.next() => match s.and_then(|s| s.args().ok().map(|a| (a.id, a.reason))) {
                Some((id, reason)) => DesktopEvent::Closed { id, reason },
                None => DesktopEvent::Lost,
            },
            s = self.actions.next() => match s.and_then(|s| s.args().ok().map(|a| (a.id, a.action_key))) {
                Some((id, key)) => DesktopEvent::Action { id, key },
                None => DesktopEvent::Lost,
            },
            o = self.owner.next() => match o {
                Some(owner) => DesktopEvent::Server(owner.is_some()),
                None => DesktopEvent::Lost,
            },
        }
    }
}

/// The control-socket side: a connection for requests and the follow stream.
struct Service {
    requests: Connection,
    follow: Connection,
}

/// The agent's state.
struct Agent {
    options: Options,
    /// Messages to show or shown, not yet acknowledged, by id.
    pending: BTreeMap<i64, MessageView>,
    /// The notifications on screen: server id → message id (none: the catch-up summary).
    on_screen: HashMap<u32, Option<i64>>,
    /// Acknowledged messages the service has not yet been told of.
    to_mark: BTreeSet<i64>,
    /// The last message id seen: the follow stream resumes after it.
    resume: Option<i64>,
    /// The unread messages of before the start were shown.
    caught_up: bool,
    /// Unread messages not shown one by one (before the start, or past [`MAX_PENDING`]):
    /// the count the summary notification shows, until the user dismisses it.
    more_unread: u64,
    /// The summary notification on the screen, if any.
    summary: Option<u32>,
    /// When the summary is next brought up to date with `more_unread`, if its count changed
    /// (see [`SUMMARY_REFRESH`]).
    summary_due: Option<tokio::time::Instant>,
}

impl Agent {
    fn new(options: Options) -> Self {
        Self {
            options,
            pending: BTreeMap::new(),
            on_screen: HashMap::new(),
            to_mark: BTreeSet::new(),
            resume: None,
            caught_up: false,
            more_unread: 0,
            summary: None,
            summary_due: None,
        }
    }

    async fn run(mut self) -> Result<(), AgentError> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut desktop: Option<Desktop> = None;
        let mut service: Option<Service> = None;
        let mut desktop_backoff = Backoff::new();
        let mut service_backoff = Backoff::new();
        let mut desktop_retry = tokio::time::Instant::now();
        let mut service_retry = tokio::time::Instant::now();
        loop {
            let now = tokio::time::Instant::now();
            if desktop.is_none() && now >= desktop_retry {
                match Desktop::connect().await {
                    Ok(d) => {
                        tracing::info!(markup = d.markup, "connected to the session bus");
                        desktop_backoff.reset();
                        self.on_screen.clear();
                        self.summary = None;
                        desktop = Some(d);
                        self.show_all(desktop.as_ref()).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot connect to the session bus");
                        desktop_retry = now + desktop_backoff.next();
                    }
                }
            }
            if service.is_none() && now >= service_retry {
                match self.connect_service(desktop.as_ref()).await {
                    Ok(s) => {
                        tracing::info!(after_id = ?self.resume, "following the inbox");
                        service_backoff.reset();
                        service = Some(s);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot follow the inbox; trying again");
                        service_retry = now + service_backoff.next();
                    }
                }
            }
            let retry_at = match (&desktop, &service) {
                (None, None) => Some(desktop_retry.min(service_retry)),
                (None, Some(_)) => Some(desktop_retry),
                (Some(_), None) => Some(service_retry),
                (Some(_), Some(_)) => None,
            };
            let summary_due = self.summary_due;
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = sleep_until(retry_at) => {}
                _ = sleep_until(summary_due) => {
                    self.summary_due = None;
                    if let Some(d) = desktop.as_ref() {
                        self.show_summary(d).await;
                    }
                }
                event = next_desktop_event(&mut desktop) => {
                    match event {
                        DesktopEvent::Lost => {
                            tracing::warn!("lost the session bus");
                            desktop = None;
                            self.on_screen.clear();
                self.summary = None;
                            desktop_retry = tokio::time::Instant::now() + desktop_backoff.next();
                        }
                        event => {
                            if let Some(d) = desktop.as_mut() {
                                self.on_desktop_event(d, event).await;
                            }
                        }
                    }
                    if let Some(s) = service.as_mut() {
                        if let Err(e) = self.flush_marks(&mut s.requests).await {
                            tracing::warn!(error = %e, "lost the service");
                            service = None;
                        }
                    }
                }
                reply = next_reply(&mut service) => {
                    let keep = match reply {
                        Ok(reply) => self.on_reply(desktop.as_ref(), reply).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the service; connecting again");
                            false
                        }
                    };
                    if !keep {
                        service = None;
                        service_retry = tokio::time::Instant::now() + service_backoff.next();
                    }
                }
            }
        }
        // Leave nothing on the screen that nobody answers: closed by call, the messages stay
        // unread, and the next agent shows them again.
        if let Some(d) = &desktop {
            for id in self.on_screen.keys() {
                let _ = d.proxy.close_notification(*id).await;
            }
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// Connects to the service: the catch-up the first time, the marks not yet sent, and the
    /// follow stream from the last message seen.
    async fn connect_service(
        &mut self,
        desktop: Option<&Desktop>,
    ) -> Result<Service, ControlError> {
        let mut requests = Connection::connect(&self.options.socket).await?;
        if !self.caught_up {
            self.catch_up(&mut requests, desktop).await?;
            self.caught_up = true;
        }
        self.flush_marks(&mut requests).await?;
        let mut follow = Connection::connect(&self.options.socket).await?;
        let request = Request::InboxFollow {
            all_users: false,
            after_id: Some(self.resume.unwrap_or(0)),
        };
        match follow.call(&request).await? {
            Reply::Following => Ok(Service { requests, follow }),
            other => Err(ControlError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Shows the unread messages of before the start: the newest few one by one, the rest
    /// in one summary. The follow stream then starts after the newest message in the inbox.
    async fn catch_up(
        &mut self,
        requests: &mut Connection,
        desktop: Option<&Desktop>,
    ) -> Result<(), ControlError> {
        let list = |unread_only: bool, last: u64| Request::InboxList {
            unread_only,
            all_users: false,
            after_id: None,
            limit: Some(last as usize),
            last: Some(last),
        };
        let (newest, _) = page(requests.call(&list(false, 1)).await?)?;
        let (unread, older) = page(
            requests
                .call(&list(true, format::CATCH_UP_SHOWN as u64))
                .await?,
        )?;
        self.resume = newest
            .iter()
            .chain(&unread)
            .map(|m| m.id)
            .max()
            .or(self.resume);
        // Expired messages are not news any more (their senders' `--time` ran out).
        let mut unread = unread;
        unread.retain(|m| !m.expired);
        let plan = CatchUp::plan(unread, older);
        tracing::info!(
            shown = plan.shown.len(),
            more = plan.more,
            "showing the unread messages"
        );
        self.more_unread = plan.more;
        for m in plan.shown {
            self.pending.insert(m.id, m);
        }
        self.show_all(desktop).await;
        Ok(())
    }

    /// Shows (or updates) the summary of the unread messages not shown one by one.
    async fn show_summary(&mut self, d: &Desktop) {
        if self.more_unread == 0 {
            return;
        }
        let (summary, body) = format::more_summary(self.more_unread);
        let note = Note {
            summary,
            body: if d.markup {
                format::escape_markup(&body)
            } else {
                body
            },
            critical: false,
            acknowledge: false,
        };
        match desktop::show(&d.proxy, &note, self.summary.unwrap_or(0)).await {
            Ok(id) => {
                tracing::debug!(more = self.more_unread, "summary shown");
                if let Some(old) = self.summary.replace(id) {
                    self.on_screen.remove(&old);
                }
                self.on_screen.insert(id, None);
            }
            Err(e) => tracing::warn!(error = %e, "cannot show a notification"),
        }
    }

    /// Shows every pending message not on the screen, and the summary.
    async fn show_all(&mut self, desktop: Option<&Desktop>) {
        let Some(d) = desktop else { return };
        if self.summary.is_none() {
            self.show_summary(d).await;
        }
        let shown: BTreeSet<i64> = self.on_screen.values().flatten().copied().collect();
        let ids: Vec<i64> = self
            .pending
            .keys()
            .filter(|id| !shown.contains(id))
            .copied()
            .collect();
        for id in ids {
            if let Some(m) = self.pending.get(&id) {
                if let Some(n) = self.notify(d, m).await {
                    self.on_screen.insert(n, Some(id));
                }
            }
        }
    }

    async fn notify(&self, d: &Desktop, m: &MessageView) -> Option<u32> {
        let note = Note {
            summary: format::summary(m),
            body: format::body(m, d.markup),
            critical: m.audience.is_broadcast(),
            acknowledge: true,
        };
        match desktop::show(&d.proxy, &note, 0).await {
            Ok(id) => {
                tracing::debug!(id = m.id, notification = id, "shown");
                Some(id)
            }
            Err(e) => {
                // Kept pending: shown when a notification server appears.
                tracing::warn!(error = %e, id = m.id, "cannot show a notification");
                None
            }
        }
    }

    /// A reply on the follow stream; false when the stream must be started again.
    async fn on_reply(&mut self, desktop: Option<&Desktop>, reply: Reply) -> bool {
        match reply {
            Reply::Message(m) => {
                self.resume = Some(self.resume.map_or(m.id, |r| r.max(m.id)));
                if m.read || m.expired {
                    // Read elsewhere (`messenger inbox`) while we were away, or expired
                    // unread: nothing to ask.
                    if self.pending.remove(&m.id).is_some() {
                        self.close_message(desktop, m.id).await;
                    }
                } else if self.pending.contains_key(&m.id) || self.to_mark.contains(&m.id) {
                    // Already shown, or acknowledged and about to be marked read.
                } else if self.pending.len() >= MAX_PENDING {
                    self.more_unread += 1;
                    self.summary_due
                        .get_or_insert_with(|| tokio::time::Instant::now() + SUMMARY_REFRESH);
                } else {
                    let id = m.id;
                    self.pending.insert(id, m);
                    if let (Some(d), Some(m)) = (desktop, self.pending.get(&id)) {
                        if let Some(n) = self.notify(d, m).await {
                            self.on_screen.insert(n, Some(id));
                        }
                    }
                }
                true
            }
            Reply::Expired { id } => {
                // Its sender's `--time` ran out: take it down, as Windows' /TIME did; it
                // stays unread in the inbox, marked expired.
                tracing::debug!(id, "expired unread");
                self.pending.remove(&id);
                self.close_message(desktop, id).await;
                true
            }
            Reply::Lagged { missed, .. } => {
                tracing::warn!(missed, after_id = ?self.resume, "fell behind; resuming from the inbox");
                false
            }
            Reply::Error(e) => {
                tracing::warn!(code = e.code, error = %e.message, "the service refused to go on");
                false
            }
            _ => true,
        }
    }

    async fn close_message(&mut self, desktop: Option<&Desktop>, message: i64) {
        let ids: Vec<u32> = self
            .on_screen
            .iter()
            .filter(|(_, m)| **m == Some(message))
            .map(|(n, _)| *n)
            .collect();
        for n in ids {
            self.on_screen.remove(&n);
            if let Some(d) = desktop {
                let _ = d.proxy.close_notification(n).await;
            }
        }
    }

    async fn on_desktop_event(&mut self, d: &mut Desktop, event: DesktopEvent) {
        match event {
            DesktopEvent::Closed { id, reason } => {
                let Some(message) = self.on_screen.remove(&id) else {
                    return;
                };
                let Some(message) = message else {
                    // The summary: its count was seen (the messages stay unread).
                    if self.summary == Some(id) {
                        self.summary = None;
                        self.more_unread = 0;
                    }
                    return;
                };
                if reason == desktop::reason::DISMISSED {
                    self.acknowledge(message);
                } else {
                    // Expired, closed by a call, or undefined: still unread, not shown again
                    // by this agent (`messenger inbox` has it).
                    tracing::debug!(id = message, reason, "closed without being read");
                    self.pending.remove(&message);
                }
            }
            DesktopEvent::Action { id, key } => {
                if key != desktop::ACTION_DEFAULT && key != desktop::ACTION_OK {
                    return;
                }
                if let Some(Some(message)) = self.on_screen.remove(&id) {
                    tracing::debug!(id = message, action = ?key, "action invoked");
                    self.acknowledge(message);
                    let _ = d.proxy.close_notification(id).await;
                }
            }
            DesktopEvent::Server(true) => {
                tracing::info!("a notification server appeared; showing what is unanswered");
                self.on_screen.clear();
                self.summary = None;
                d.refresh_capabilities().await;
                self.show_all(Some(d)).await;
            }
            DesktopEvent::Server(false) => {
                tracing::warn!("the notification server went away");
                self.on_screen.clear();
                self.summary = None;
            }
            DesktopEvent::Lost => {}
        }
    }

    fn acknowledge(&mut self, message: i64) {
        tracing::debug!(id = message, "acknowledged");
        self.pending.remove(&message);
        self.to_mark.insert(message);
    }

    /// Tells the service which messages were acknowledged.
    async fn flush_marks(&mut self, requests: &mut Connection) -> Result<(), ControlError> {
        if self.to_mark.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = self.to_mark.iter().copied().collect();
        match requests.call(&Request::InboxMarkRead { ids }).await? {
            Reply::MarkedRead { .. } => {
                self.to_mark.clear();
                Ok(())
            }
            other => Err(ControlError::Unexpected(format!("{other:?}"))),
        }
    }
}

/// A listing reply: its messages and how many older ones it left out.
fn page(reply: Reply) -> Result<(Vec<MessageView>, u64), ControlError> {
    match reply {
        Reply::Messages {
            messages, older, ..
        } => Ok((messages, older)),
        other => Err(ControlError::Unexpected(format!("{other:?}"))),
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_desktop_event(desktop: &mut Option<Desktop>) -> DesktopEvent {
    match desktop {
        Some(d) => d.next_event().await,
        None => std::future::pending().await,
    }
}

async fn next_reply(service: &mut Option<Service>) -> Result<Reply, ControlError> {
    match service {
        Some(s) => s.follow.next().await,
        None => std::future::pending().await,
    }
}
