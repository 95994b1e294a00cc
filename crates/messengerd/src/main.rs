//! `messengerd`: the Messenger service. Parses its arguments, binds its ports, gives up root,
//! and runs the library's [`messengerd::run`] until SIGTERM or SIGINT.
//!
//! Exit status: 0 after a clean stop or a valid `--check-config`; 1 when the configuration is
//! invalid; 2 when the service cannot start (ports in use, sockets handed over by systemd that
//! do not fit the configuration, inbox unusable, another instance).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use messenger_core::config::{Config, DEFAULT_CONFIG_PATH};
use messengerd::host::ownership::{self, Account, RunDir};
use messengerd::{Settings, Sockets};
use tokio_util::sync::CancellationToken;

/// The Messenger service: receives NET SEND messages for this computer's names, keeps them in
/// a durable inbox and shows them on users' terminals.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Configuration file (TOML; every key optional).
    #[arg(long, short, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Check the configuration file, say what is wrong (with the line), and exit.
    #[arg(long)]
    check_config: bool,
    /// Print this host's entry for the `authorization { users = [...] }` block of the NATS
    /// servers' configuration (user and password from `[nats]`, permissions that let it
    /// receive only its own messages), and exit.
    #[arg(long)]
    nats_permissions: bool,
    /// Log filter, e.g. `info` or `messengerd=debug` (also `RUST_LOG`). Message texts are
    /// logged only at debug level.
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

/// Account the service runs as when the configuration names none and it starts as root: its
/// own account (packaging/sysusers.d), else the shared fallback.
const DEFAULT_SERVICE_USERS: [&str; 2] = ["messenger", SHARED_FALLBACK_USER];
/// The fallback account. Other daemons run as it too, so whatever runs as it can reach the
/// service's files, and the service theirs; a warning says so.
const SHARED_FALLBACK_USER: &str = "nobody";

fn main() -> ExitCode {
    let args = Args::parse();
    let explicit = args.config.as_os_str() != DEFAULT_CONFIG_PATH;
    let config = if explicit || args.config.exists() {
        match Config::load(&args.config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("messengerd: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        Config::default()
    };
    if args.check_config {
        return match Settings::resolve(config) {
            Ok(s) => {
                println!(
                    "{}: configuration is valid (computer {}, workgroup {}, session port {})",
                    args.config.display(),
                    s.computer_name,
                    s.workgroup,
                    s.config.session_port()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("messengerd: {}: {e}", args.config.display());
                ExitCode::from(1)
            }
        };
    }
    if args.nats_permissions {
        return print_nats_permissions(config, &args.config);
    }
    init_logging(args.log.as_deref());
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("messengerd: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `--nats-permissions`: see [`messenger_nats::permissions`].
fn print_nats_permissions(config: Config, path: &std::path::Path) -> ExitCode {
    let settings = match Settings::resolve(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("messengerd: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    let host = match messenger_nats::subject::EncodedName::new(&settings.computer_name) {
        Ok(host) => host,
        Err(e) => {
            eprintln!("messengerd: the computer name cannot be used on NATS: {e}");
            return ExitCode::from(1);
        }
    };
    let workgroup = match messenger_nats::subject::EncodedName::new(&settings.workgroup) {
        Ok(workgroup) => workgroup,
        Err(e) => {
            eprintln!("messengerd: the workgroup cannot be used on NATS: {e}");
            return ExitCode::from(1);
        }
    };
    let (user, password) = match settings.nats.as_ref().map(|n| &n.credentials) {
        Some(messenger_nats::config::Credentials::UserPassword { user, password }) => {
            (user.clone(), password.clone())
        }
        _ => {
            eprintln!(
                "messengerd: {}: [nats] has no user and password; set them first (the entry \
                 names this host's user)",
                path.display()
            );
            return ExitCode::from(1);
        }
    };
    println!(
        "{}",
        messenger_nats::permissions::host_permissions(&host, &workgroup)
            .server_user_entry(&user, &password)
    );
    ExitCode::SUCCESS
}

fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// The root phase, then the service until a signal. As root: open the run directory, bind
/// every socket, write the pid file, give the data directory (and a run directory it
/// created) to the service account, and give up root; all before the runtime exists and
/// before a byte is read from the network. Then, as the service account, open the inbox and
/// [`messengerd::run`].
fn serve(config: Config) -> anyhow::Result<()> {
    let settings = Settings::resolve(config)?;
    let account = service_account(&settings)?;
    let run_dir = RunDir::prepare(&settings.control_socket)
        .map_err(|e| anyhow::anyhow!("{e}{}", messengerd::host::sockets::not_root_hint()))?;
    // Socket activation (messengerd.socket) hands the NetBIOS ports over; else bind them here.
    let sockets =
        match messengerd::host::activation::from_env(&settings.config, &settings.control_socket)? {
            Some(sockets) => sockets,
            None => Sockets::bind(&settings.config, &settings.control_socket)?,
        };
    run_dir.write_pid_file()?;
    let result = serve_from_pid_file(settings, sockets, account, &run_dir);
    run_dir.remove_pid_file();
    result
}

/// [`serve`] once the pid file is written: whatever happens, `serve` removes it afterwards.
fn serve_from_pid_file(
    settings: Settings,
    sockets: Sockets,
    account: Option<(String, Account)>,
    run_dir: &RunDir,
) -> anyhow::Result<()> {
    if let Some((user, account)) = &account {
        ownership::give_data_dir(&settings.data_dir, *account)?;
        run_dir.give_to(*account)?;
        if messengerd::host::privileges::drop_to(user)? {
            tracing::info!(user, "running without root");
        }
    }
    // Opened by the service account, not by root: SQLite creates its -wal and -shm files by
    // name in a directory that account owns, where root would follow whatever it planted.
    let inbox = messengerd::open_inbox(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
            signals.cancel();
        });
        messengerd::run(settings, sockets, inbox, shutdown, |running| {
            tracing::info!(
                computer = %running.service.settings().computer_name,
                workgroup = %running.service.settings().workgroup,
                "Messenger service started"
            );
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        })
        .await
    });
    // `run` has waited its grace period; what is left is dropped now, without waiting again
    // (a message command's process group is killed as its task is dropped).
    runtime.shutdown_background();
    Ok(result?)
}

/// The account to switch to, when running as root: `user` of the configuration, else the
/// first of [`DEFAULT_SERVICE_USERS`] that exists.
fn service_account(settings: &Settings) -> anyhow::Result<Option<(String, Account)>> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(None);
    }
    let user = match &settings.config.user {
        Some(user) => user.clone(),
        None => {
            let Some(user) = DEFAULT_SERVICE_USERS
                .iter()
                .find(|u| nix::unistd::User::from_name(u).ok().flatten().is_some())
            else {
                anyhow::bail!(
                    "none of the accounts {DEFAULT_SERVICE_USERS:?} exists; set `user` in the \
                     configuration"
                );
            };
            if *user == SHARED_FALLBACK_USER {
                tracing::warn!(
                    "running as {SHARED_FALLBACK_USER}, an account other daemons share; create \
                     the account `messenger` (packaging/sysusers.d) or set `user`"
                );
            }
            (*user).to_owned()
        }
    };
    let Some(entry) = nix::unistd::User::from_name(&user)? else {
        anyhow::bail!("user {user:?} does not exist");
    };
    let account = Account {
        uid: entry.uid.as_raw(),
        gid: entry.gid.as_raw(),
    };
    Ok(Some((user, account)))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
