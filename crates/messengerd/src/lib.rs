//! `messengerd`, the Messenger service, as a library: [`run`] serves already-bound sockets
//! until a shutdown token fires. The binary is a thin `main` around it (arguments, the root
//! phase, the runtime); tests run the same [`run`], or [`start`] to reach into the running
//! service, in-process on loopback with ephemeral ports.
//!
//! Tasks: a name service per interface (UDP 137) registers and defends our names; the session
//! server (TCP 139) and the datagram listener (UDP 138) receive messages; the control socket
//! serves the command line; a watcher keeps users' names in step with who is logged in. They
//! share one [`service::Service`]. Every task, down to each connection, control call, display
//! and message command, is spawned on the service's task tracker, so that shutdown can wait
//! for what is in flight.
#![forbid(unsafe_code)]

pub mod activation;
pub(crate) mod caller;
pub(crate) mod command;
pub(crate) mod control;
pub(crate) mod datagram;
pub(crate) mod deliver;
pub(crate) mod display;
pub mod error;
pub mod gate;
pub mod inbox;
pub mod names;
pub(crate) mod nameservice;
pub mod ownership;
pub mod privileges;
pub(crate) mod receive;
pub(crate) mod send;
pub mod service;
pub mod sockets;
pub(crate) mod udp;
pub mod utmp;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use messenger_core::names::NameKind;
use netbios::name::{SUFFIX_MESSENGER, SUFFIX_WORKSTATION};
use netbios::NetbiosName;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::StartError;

pub use service::Settings;
pub use sockets::Sockets;

/// How often utmp is read again for logins and logouts. `who` is no faster; a name appears a
/// couple of seconds after its user logs in.
const UTMP_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Longest wait at shutdown for tasks to finish: names released, messages being delivered
/// stored and answered, message commands ended. Release takes one packet per name; a
/// delivery waits for one inbox commit. systemd's stop timeout in the packaged unit (15 s)
/// leaves room for this and the inbox's last commit.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How far ahead a task waits when its state machine has no timer running: far enough to
/// cost nothing, near enough that a wait is never "forever" (tokio's timer wheel handles
/// instants about two years ahead at most); the task wakes for input before then anyway.
const NO_DEADLINE: Duration = Duration::from_secs(3600);

/// The instant to wait for when a state machine has no deadline (see [`NO_DEADLINE`]).
fn no_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + NO_DEADLINE
}

/// The inbox database's file name inside the data directory.
pub const INBOX_FILE: &str = "inbox.sqlite3";

/// A running service's handle for callers that need to reach it (tests, `main`).
pub struct Running {
    /// The shared state.
    pub service: Arc<service::Service>,
    /// Every task of the service.
    pub tasks: TaskTracker,
}

/// Opens the inbox, restores names, starts every task on `sockets`, and returns once the
/// service is up. Tasks stop when `shutdown` is cancelled; await [`Running::tasks`] after that.
pub async fn start(
    settings: Settings,
    sockets: Sockets,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    let inbox = open_inbox(&settings)?;
    start_with_inbox(settings, sockets, inbox, shutdown).await
}

/// Opens (creating if needed) the inbox in the data directory. `main` calls this after it
/// has given up root (see `ownership`), so the data directory must be reachable by the
/// service account.
pub fn open_inbox(settings: &Settings) -> Result<inbox::Inbox, StartError> {
    let path = settings.data_dir.join(INBOX_FILE);
    inbox::Inbox::open(&path, &settings.config.retention)
        .map_err(|source| StartError::Inbox { path, source })
}

/// [`start`] with an inbox opened beforehand by [`open_inbox`].
pub async fn start_with_inbox(
    settings: Settings,
    sockets: Sockets,
    inbox: inbox::Inbox,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    let tasks = TaskTracker::new();
    let commands = settings.config.message_command.as_deref().map(|template| {
        Arc::new(command::CommandRunner::new(
            template,
            settings.data_dir.join("spool"),
        ))
    });

    let mut name_services = Vec::new();
    let mut receivers = Vec::new();
    for _ in &sockets.interfaces {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        name_services.push(tx);
        receivers.push(rx);
    }
    let addresses = sockets
        .interfaces
        .iter()
        .map(|s| s.interface.addr)
        .collect();
    let interfaces: Vec<_> = sockets
        .interfaces
        .iter()
        .map(|s| s.interface.clone())
        .collect();
    let gate = Arc::new(gate::Gate::new(gate::GateSettings::from_config(
        &settings.config,
        &interfaces,
    )?));
    let local_sends = send::LocalSendLimit::from_config(&settings.config);
    let mut sinks: Vec<Arc<dyn display::DeliverySink>> =
        vec![Arc::new(display::TerminalSink::new())];
    if let Some(runner) = &commands {
        sinks.push(Arc::new(command::CommandSink::new(
            Arc::clone(runner),
            tasks.clone(),
        )));
    }
    let service = Arc::new(service::Service {
        settings,
        inbox,
        names: Mutex::new(names::NameTable::default()),
        sessions: RwLock::new(Vec::new()),
        sinks,
        name_services,
        addresses,
        interfaces,
        started: Instant::now(),
        gate,
        tasks: tasks.clone(),
        commands,
        local_sends,
    });

    for (i, (iface, rx)) in sockets.interfaces.into_iter().zip(receivers).enumerate() {
        let s = Arc::clone(&service);
        let token = shutdown.clone();
        tasks.spawn(nameservice::run(
            s.clone(),
            i,
            iface.interface.clone(),
            iface.name,
            iface.name_broadcast,
            rx,
            token.clone(),
        ));
        tasks.spawn(datagram::run(
            s,
            iface.datagram,
            iface.datagram_broadcast,
            token,
        ));
    }
    for listener in sockets.sessions {
        tasks.spawn(receive::serve(
            Arc::clone(&service),
            listener,
            shutdown.clone(),
        ));
    }
    let control_path = service.settings.control_socket.clone();
    let control = tokio::net::UnixListener::from_std(sockets.control).map_err(|source| {
        StartError::Control {
            path: control_path,
            source,
        }
    })?;
    tasks.spawn(control::serve(
        control,
        Arc::clone(&service),
        shutdown.clone(),
    ));

    tasks.spawn(inbox::prune_periodically(
        service.inbox.clone(),
        shutdown.clone(),
    ));
    register_initial_names(&service).await?;
    tasks.spawn(watch_logins(Arc::clone(&service), shutdown.clone()));
    // Closed: `wait` ends once no task is left. Tasks spawned later (connections, displays,
    // commands) are still tracked.
    tasks.close();
    Ok(Running { service, tasks })
}

/// Runs the service on `sockets` with `inbox` until `shutdown`: calls `on_ready` once every
/// task is up, and after `shutdown` waits up to [`SHUTDOWN_GRACE`] for the tasks (names
/// released, deliveries in flight stored and answered, message commands ended), says what it
/// had to cut off, and closes the inbox.
pub async fn run(
    settings: Settings,
    sockets: Sockets,
    inbox: inbox::Inbox,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&Running),
) -> Result<(), StartError> {
    let running = start_with_inbox(settings, sockets, inbox, shutdown.clone()).await?;
    on_ready(&running);
    shutdown.cancelled().await;
    tracing::info!("stopping: releasing names, finishing deliveries in flight");
    stop(&running, SHUTDOWN_GRACE).await;
    Ok(())
}

/// Waits up to `grace` for the tasks of a service whose shutdown token fired, logs what is
/// still running after that, and closes the inbox (its writer commits what it was given).
/// Returns the number of tasks cut off; they end when their runtime does.
pub async fn stop(running: &Running, grace: Duration) -> usize {
    let cut = match tokio::time::timeout(grace, running.tasks.wait()).await {
        Ok(()) => 0,
        Err(_) => running.tasks.len(),
    };
    if cut > 0 {
        let commands = running.service.commands.as_ref().map_or(0, |c| c.running());
        tracing::warn!(
            tasks = cut,
            message_commands = commands,
            "tasks still running after {grace:?} are cut off"
        );
    }
    running.service.inbox.close();
    cut
}

async fn register_initial_names(service: &Arc<service::Service>) -> Result<(), StartError> {
    let name = |name: &str, suffix| {
        NetbiosName::new_uppercase(name.as_bytes(), suffix).map_err(|source| StartError::Name {
            name: name.to_owned(),
            source,
        })
    };
    let computer = name(&service.settings.computer_name, SUFFIX_MESSENGER)?;
    let workgroup = name(&service.settings.workgroup, SUFFIX_WORKSTATION)?;
    service.add_name(computer, NameKind::Computer, None);
    // The workstation name and the workgroup group name: `NET SEND *` is addressed to the
    // workgroup's <00> name ([MS-MAIL] 3.2.3), and peers expect a messenger host to hold both.
    service.register_everywhere(computer.with_suffix(SUFFIX_WORKSTATION), false);
    service.register_everywhere(workgroup, true);
    let stored = service
        .inbox
        .with_store(|s| s.list_names())
        .await
        .map_err(StartError::StoredNames)?;
    let stored = service.names_still_allowed(stored).await;
    for record in stored {
        match record.to_messaging_name() {
            Ok(m) => {
                service.add_name(m.name, m.kind, Some(m.owner));
            }
            Err(e) => tracing::warn!(name = %record.name, error = %e, "skipping a stored name"),
        }
    }
    Ok(())
}

async fn watch_logins(service: Arc<service::Service>, shutdown: CancellationToken) {
    let path = service.settings.config.utmp_path();
    let mut last: Option<Vec<utmp::LoginSession>> = None;
    loop {
        // A read of a file can stall (a hung file system); keep it off the runtime's workers.
        let read_path = path.clone();
        let read = tokio::task::spawn_blocking(move || utmp::read_sessions(&read_path))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Ok(sessions) => {
                if last.as_ref() != Some(&sessions) {
                    service.refresh_sessions(sessions.clone()).await;
                    last = Some(sessions);
                }
            }
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot read utmp"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(UTMP_POLL_INTERVAL) => {}
        }
    }
}
