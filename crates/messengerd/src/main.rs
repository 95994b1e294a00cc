//! `messengerd`: the Messenger service. Binds its ports, gives up root, and runs until
//! SIGTERM or SIGINT, releasing its names on the way out.
//!
//! Exit status: 0 after a clean stop or a valid `--check-config`; 1 when the configuration is
//! invalid; 2 when the service cannot start (ports in use, inbox unusable, another instance).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use messenger_core::config::{Config, DEFAULT_CONFIG_PATH};
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
    /// Log filter, e.g. `info` or `messengerd=debug` (also `RUST_LOG`). Message texts are
    /// logged only at debug level.
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

/// Account the service runs as when the configuration names none and it starts as root.
const DEFAULT_SERVICE_USERS: [&str; 2] = ["messenger", "nobody"];

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

fn serve(config: Config) -> anyhow::Result<()> {
    let settings = Settings::resolve(config)?;
    // A run directory that binding creates is ours: the service account gets it, so that it
    // can still remove the pid file at shutdown. One that already exists is left alone.
    let run_dir = settings
        .control_socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(PathBuf::from);
    let sockets = Sockets::bind(&settings.config, &settings.control_socket)?;
    let pid_file = settings.control_socket.with_file_name("messengerd.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))?;
    let inbox = messengerd::open_inbox(&settings)?;
    if let Some(user) = service_user(&settings) {
        give_data_dir_to(&settings, &user)?;
        if let Some(dir) = &run_dir {
            give_to(std::slice::from_ref(dir), &user)?;
        }
        if messengerd::privileges::drop_to(&user)? {
            tracing::info!(user, "running without root");
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signals.cancel();
        });
        let running =
            messengerd::start_with_inbox(settings, sockets, inbox, shutdown.clone()).await?;
        tracing::info!(
            computer = %running.service.settings.computer_name,
            workgroup = %running.service.settings.workgroup,
            "Messenger service started"
        );
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        shutdown.cancelled().await;
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        tracing::info!("stopping: releasing names");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), running.tasks.wait()).await;
        running.service.inbox.close();
        anyhow::Ok(())
    });
    let _ = std::fs::remove_file(&pid_file);
    result
}

/// The account to switch to, when running as root.
fn service_user(settings: &Settings) -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    if let Some(user) = &settings.config.user {
        return Some(user.clone());
    }
    DEFAULT_SERVICE_USERS
        .iter()
        .find(|u| nix::unistd::User::from_name(u).ok().flatten().is_some())
        .map(|u| (*u).to_owned())
}

/// Makes the data directory and inbox files the service account's, so that it can still
/// write them after giving up root.
fn give_data_dir_to(settings: &Settings, user: &str) -> anyhow::Result<()> {
    let mut paths = vec![settings.data_dir.clone()];
    if let Ok(entries) = std::fs::read_dir(&settings.data_dir) {
        paths.extend(entries.flatten().map(|e| e.path()));
    }
    give_to(&paths, user)
}

/// Makes `paths` the service account's.
fn give_to(paths: &[PathBuf], user: &str) -> anyhow::Result<()> {
    let Some(account) = nix::unistd::User::from_name(user)? else {
        anyhow::bail!("user {user:?} does not exist");
    };
    for path in paths {
        nix::unistd::chown(path, Some(account.uid), Some(account.gid))
            .map_err(|e| anyhow::anyhow!("cannot give {} to {user}: {e}", path.display()))?;
    }
    Ok(())
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
