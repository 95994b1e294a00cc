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
//!
//! The modules are layered; each uses only those listed before it, so the daemon reads
//! top-down without cycles:
//! - [`util`] and [`error`]: locks, the clock, typed start-up errors;
//! - [`host`]: sockets, privileges, safe file handling as root, utmp, control-socket callers;
//! - [`gate`]: admission control, owning the source policy and every rate limit;
//! - `delivery`: the sinks a stored message is handed to (terminals, the message command);
//! - [`service`]: the shared state (names, login sessions, the inbox) and its rules;
//! - `transports`: the name, session and datagram services, and the outbound router;
//!   `logins` keeps the service's login sessions in step with logind or utmp;
//! - `control`: the control socket, which turns requests into calls on the layers below
//!   and their results into replies.

#![forbid(unsafe_code)]

pub(crate) mod control;
pub(crate) mod delivery;
pub mod error;
pub mod gate;
pub mod host;
pub(crate) mod logins;
pub mod service;
pub(crate) mod transports;
pub mod util;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use messenger_core::names::NameKind;
use netbios::name::{SUFFIX_MESSENGER, SUFFIX_WORKSTATION};
use netbios::NetbiosName;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::StartError;

pub use host::sockets::Sockets;
pub use service::Settings;

/// Longest wait at shutdown for tasks to finish: names released, messages being delivered
/// stored and answered, message commands ended. Release takes one packet per name; a
/// delivery waits for one inbox commit. systemd's stop timeout in the packaged unit (15 s)
/// leaves room for this and the inbox's last commit.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
pub fn open_inbox(settings: &Settings) -> Result<service::inbox::Inbox, StartError> {
    let path = settings.data_dir.join(INBOX_FILE);
    service::inbox::Inbox::open(&path, &settings.config.retention)
        .map_err(|source| StartError::Inbox { path, source })
}

/// [`start`] with an inbox opened beforehand by [`open_inbox`].
pub async fn start_with_inbox(
    settings: Settings,
    sockets: Sockets,
    inbox: service::inbox::Inbox,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    let tasks = TaskTracker::new();
    let commands = settings.config.message_command.as_deref().map(|template| {
        Arc::new(delivery::command::CommandRunner::new(
            template,
            settings.data_dir.join("spool"),
        ))
    });

    let endpoints = host::udp::endpoints(
        sockets.interfaces,
        sockets.shared,
        transports::nameservice::MAX_PACKET,
        transports::datagram::MAX_DATAGRAM,
        &tasks,
        &shutdown,
    )
    .map_err(StartError::Udp)?;
    let mut name_services = Vec::new();
    let mut receivers = Vec::new();
    for _ in &endpoints {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        name_services.push(tx);
        receivers.push(rx);
    }
    let addresses = endpoints.iter().map(|s| s.interface.addr).collect();
    let interfaces: Vec<_> = endpoints.iter().map(|s| s.interface.clone()).collect();
    let gate = Arc::new(gate::Gate::new(gate::GateSettings::from_config(
        &settings.config,
        &interfaces,
    )?));
    let local_sends = gate::LocalSendLimit::from_config(&settings.config);
    let mut sinks: Vec<Arc<dyn delivery::DeliverySink>> =
        vec![Arc::new(delivery::terminal::TerminalSink::new())];
    if let Some(runner) = &commands {
        sinks.push(Arc::new(delivery::command::CommandSink::new(
            Arc::clone(runner),
            tasks.clone(),
        )));
    }
    let service = Arc::new(service::Service {
        settings,
        inbox,
        names: Mutex::new(service::names::NameTable::default()),
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
        echoes: Mutex::new(service::echoes::BroadcastEchoes::default()),
        stopping: shutdown.clone(),
        organisation: Default::default(),
    });

    for (i, (iface, rx)) in endpoints.into_iter().zip(receivers).enumerate() {
        let s = Arc::clone(&service);
        let token = shutdown.clone();
        tasks.spawn(transports::nameservice::run(
            s.clone(),
            i,
            iface.interface,
            iface.name,
            rx,
            token.clone(),
        ));
        tasks.spawn(transports::datagram::run(s, iface.datagram, token));
    }
    for listener in sockets.sessions {
        tasks.spawn(transports::session::serve(
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
    // What expired while the service was down is expired before anyone lists or follows.
    if let Err(e) = service.inbox.expire_due(util::now_micros()).await {
        tracing::warn!(error = %e, "could not expire messages at start");
    }
    tasks.spawn(service::expiry::expire_on_time(
        service.inbox.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(control::serve(
        control,
        Arc::clone(&service),
        shutdown.clone(),
    ));

    tasks.spawn(service::inbox::prune_periodically(
        service.inbox.clone(),
        shutdown.clone(),
    ));
    register_initial_names(&service).await?;
    tasks.spawn(logins::watch(Arc::clone(&service), shutdown.clone()));
    if let Some(nats) = service.settings.nats.clone() {
        tasks.spawn(transports::organisation::run(
            Arc::clone(&service),
            nats,
            shutdown.clone(),
        ));
    }
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
    inbox: service::inbox::Inbox,
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
