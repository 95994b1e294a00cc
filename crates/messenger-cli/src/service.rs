//! `start`, `stop`, `status`: the Messenger service's life.
//!
//! When systemd runs the machine and `messengerd.service` is installed, and no `--config` or
//! `--socket` points elsewhere, `start` and `stop` go through `systemctl` so that systemd
//! keeps track of the service. Otherwise `start` runs `messengerd` (found next to this
//! program, else on `PATH`) in the background with the same `--config`, its output appended to
//! `messengerd.log` beside the control socket, and waits until the control socket answers;
//! `stop` sends SIGTERM to the service's process (the pid it reports, else the one in
//! `messengerd.pid` beside the control socket) and waits until it is gone.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use messenger_core::nerr;
use messenger_ipc::{Reply, Request, StatusInfo};
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::context::Context;
use crate::output::{self, Exit};

/// The systemd unit of the service.
const UNIT: &str = "messengerd.service";
/// The daemon's executable name.
const DAEMON: &str = "messengerd";
/// Where systemd keeps its runtime state; present only when systemd is PID 1
/// (sd_booted(3)).
const SYSTEMD_RUNTIME_DIR: &str = "/run/systemd/system";
/// The daemon's pid file, beside its control socket.
const PID_FILE: &str = "messengerd.pid";
/// The daemon's log when started in the background, beside its control socket.
const LOG_FILE: &str = "messengerd.log";
/// Mode of a new log: messages are logged without their text (above debug level), but names
/// and addresses are still nobody else's business.
const LOG_FILE_MODE: u32 = 0o640;
/// Longest wait for a started service to answer. Our limit: start-up registers the computer
/// name, which takes three broadcasts 250–750 ms apart (REFERENCE 2.3), plus the inbox; 20 s
/// leaves room for a slow disk.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for a stopped service to exit. The daemon allows itself 5 s to release its
/// names and finish connections; twice that, then give up and say so.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the socket or the process is looked at while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Runs `status`.
pub fn status(ctx: &Context) -> Exit {
    match query_status(ctx) {
        Some(s) => {
            print_status(&s);
            Exit::Ok
        }
        None => {
            println!("The Messenger service is not running.");
            Exit::NotRunning
        }
    }
}

/// `net start` with no service: the started services, as Windows lists them.
pub fn list_started(ctx: &Context) -> Exit {
    println!("These services are started:\n");
    if query_status(ctx).is_some() {
        println!("   Messenger\n");
    }
    output::completed();
    Exit::Ok
}

/// Runs `start`.
pub fn start(ctx: &Context) -> Exit {
    if query_status(ctx).is_some() {
        output::net_error(nerr::NERR_MSG_ALREADY_STARTED);
        return Exit::Failed;
    }
    println!("The Messenger service is starting.");
    let result = if use_systemd(ctx) {
        systemctl("start").and_then(|()| wait_until_answering(ctx, None))
    } else {
        spawn(ctx)
    };
    match result.and_then(|()| wait_for_computer_name(ctx)) {
        Ok(true) => {
            println!("The Messenger service was started successfully.");
            Exit::Ok
        }
        Ok(false) => {
            // Windows starts the service anyway and reports the lost computer name.
            println!("The Messenger service was started.");
            output::net_error(nerr::NERR_NO_COMPUTER_NAME);
            Exit::Failed
        }
        Err(detail) => {
            output::net_error_with_detail(nerr::NERR_MSG_INIT_FAILED, Some(&detail));
            Exit::Failed
        }
    }
}

/// Runs `stop`.
pub fn stop(ctx: &Context) -> Exit {
    let running = query_status(ctx);
    if use_systemd(ctx) && systemd_unit_active() {
        println!("The Messenger service is stopping.");
        return match systemctl("stop") {
            Ok(()) => {
                println!("The Messenger service was stopped successfully.");
                Exit::Ok
            }
            Err(detail) => {
                output::error(&detail);
                Exit::Failed
            }
        };
    }
    let pid = match running
        .as_ref()
        .map(|s| s.pid)
        .or_else(|| pid_from_file(ctx))
    {
        Some(pid) => pid,
        None => {
            output::net_error(nerr::NERR_MSG_NOT_STARTED);
            return Exit::NotRunning;
        }
    };
    if !is_daemon(pid) {
        if running.is_none() {
            // A stale pid file: the service is not running.
            output::net_error(nerr::NERR_MSG_NOT_STARTED);
            return Exit::NotRunning;
        }
        output::error(&format!("process {pid} is not {DAEMON}; not stopping it"));
        return Exit::Failed;
    }
    println!("The Messenger service is stopping.");
    let Ok(raw) = i32::try_from(pid) else {
        output::error(&format!("invalid process id {pid}"));
        return Exit::Failed;
    };
    let target = Pid::from_raw(raw);
    if let Err(e) = kill(target, Signal::SIGTERM) {
        output::error(&format!("cannot stop process {pid}: {e}"));
        return Exit::Failed;
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if kill(target, None).is_err() || !is_daemon(pid) {
            println!("The Messenger service was stopped successfully.");
            return Exit::Ok;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    output::error(&format!(
        "the Messenger service (process {pid}) did not stop within {} s",
        STOP_TIMEOUT.as_secs()
    ));
    Exit::Failed
}

/// Waits (bounded) until the computer name has been registered on the network, so that
/// messages to it are accepted as soon as `start` returns. Returns false if another node holds
/// the computer name.
fn wait_for_computer_name(ctx: &Context) -> Result<bool, String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        let state = ctx
            .connect()
            .ok()
            .and_then(|mut c| match c.call(&Request::NameList) {
                Ok(Reply::Names { names }) => names
                    .into_iter()
                    .find(|n| n.kind == "computer")
                    .map(|n| n.state),
                _ => None,
            });
        match state.as_deref() {
            Some("registered") => return Ok(true),
            Some("conflict") => return Ok(false),
            _ => std::thread::sleep(POLL_INTERVAL),
        }
    }
    Err(format!(
        "the computer name was not registered within {} s",
        START_TIMEOUT.as_secs()
    ))
}

/// The service's status, if it answers.
fn query_status(ctx: &Context) -> Option<StatusInfo> {
    let mut client = ctx.connect().ok()?;
    match client.call(&Request::Status) {
        Ok(Reply::Status(s)) => Some(s),
        _ => None,
    }
}

fn print_status(s: &StatusInfo) {
    let up = s.uptime_secs;
    println!("The Messenger service is running.\n");
    println!(
        "{:<18}{} (control protocol {})",
        "Version",
        output::safe(&s.version),
        s.protocol_version
    );
    println!("{:<18}{}", "Process id", s.pid);
    println!(
        "{:<18}{}",
        "Running for",
        format_args!("{}h {:02}m {:02}s", up / 3600, (up / 60) % 60, up % 60)
    );
    println!("{:<18}{}", "Computer name", output::safe(&s.computer_name));
    println!("{:<18}{}", "Workgroup", output::safe(&s.workgroup));
    println!(
        "{:<18}{}",
        "Addresses",
        output::safe(&s.addresses.join(", "))
    );
    println!("{:<18}{}", "Unread messages", s.unread);
}

/// Whether to go through systemd (see the module documentation).
fn use_systemd(ctx: &Context) -> bool {
    ctx.config_path.is_none()
        && !ctx.socket_overridden()
        && Path::new(SYSTEMD_RUNTIME_DIR).exists()
        && Command::new("systemctl")
            .args(["cat", UNIT])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn systemd_unit_active() -> bool {
    Command::new("systemctl")
        .args(["is-active", "--quiet", UNIT])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn systemctl(verb: &str) -> Result<(), String> {
    let status = Command::new("systemctl")
        .args([verb, UNIT])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("systemctl {verb} {UNIT} failed ({status})"))
    }
}

/// The daemon's executable: beside this program (an installation or a build directory keeps
/// both together), else whatever `PATH` finds.
fn daemon_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(DAEMON)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(DAEMON))
}

/// Starts the daemon in the background and waits until it answers.
fn spawn(ctx: &Context) -> Result<(), String> {
    let socket = ctx.socket().map_err(|e| e.0)?;
    let dir = socket
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let log_path = dir.join(LOG_FILE);
    // The directory may be the service account's (the service takes a run directory it
    // created): never follow a link there, nor append to a file that has other names too.
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(LOG_FILE_MODE)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    match log.metadata() {
        Ok(m) if m.is_file() && m.nlink() == 1 => {}
        _ => {
            return Err(format!(
                "{} is not a plain file of its own; not writing to it",
                log_path.display()
            ))
        }
    }
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let log_len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let mut command = Command::new(daemon_path());
    if let Some(config) = &ctx.config_path {
        command.arg("--config").arg(config);
    }
    // Its own process group, so that Ctrl-C in the shell that started it does not stop it.
    use std::os::unix::process::CommandExt;
    command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    let child = command
        .spawn()
        .map_err(|e| format!("cannot run {DAEMON}: {e}"))?;
    wait_until_answering(ctx, Some((child, log_path, log_len)))
}

/// Waits (bounded) until the control socket answers; fails early if the child exits.
fn wait_until_answering(
    ctx: &Context,
    mut child: Option<(std::process::Child, PathBuf, u64)>,
) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if query_status(ctx).is_some() {
            return Ok(());
        }
        if let Some((process, log, from)) = child.as_mut() {
            if let Ok(Some(status)) = process.try_wait() {
                return Err(format!(
                    "{DAEMON} exited ({status}){}",
                    log_tail(log, *from)
                ));
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    Err(format!(
        "the service did not answer within {} s",
        START_TIMEOUT.as_secs()
    ))
}

/// What the daemon wrote to its log since `from`, for the error message.
fn log_tail(path: &Path, from: u64) -> String {
    let Ok(all) = std::fs::read(path) else {
        return String::new();
    };
    let start = usize::try_from(from).unwrap_or(0).min(all.len());
    let text = String::from_utf8_lossy(&all[start..]);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(":\n{text}")
    }
}

fn pid_from_file(ctx: &Context) -> Option<u32> {
    let socket = ctx.socket().ok()?;
    let text = std::fs::read_to_string(socket.parent()?.join(PID_FILE)).ok()?;
    text.trim().parse().ok()
}

/// Whether `pid` runs the daemon, so that a stale pid (reused by another program) is never
/// signalled.
fn is_daemon(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == DAEMON)
}
