//! The system service as a machine runs it: `messengerd` started as root with the default
//! paths (`/run/messenger/control.sock`, `/var/lib/messenger`), and the command line of
//! ordinary users, with and without `XDG_RUNTIME_DIR`, reaching it with no `--socket` and no
//! `control_socket`. Each user sees their own messages and those for everyone, no others.
//!
//! Needs root (to start the service with its default paths and to run commands as other
//! users) and the `messengerd` binary beside `messenger` (`cargo test --workspace` builds
//! both); it says SKIPPED otherwise. It leaves the default directories as it found them: it
//! refuses to run (SKIPPED) when they exist already, since they would be an installed
//! service's, and removes them at the end.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use messenger_core::config::{SYSTEM_CONTROL_SOCKET, SYSTEM_DATA_DIR};

/// Longest wait for the service to come up or stop, or for one command.
const WAIT: Duration = Duration::from_secs(30);
/// The computer name of the service under test.
const COMPUTER: &str = "SYSPC";
/// Accounts (with no login of their own) that may stand for two ordinary users; the first
/// two that exist are used.
const USER_CANDIDATES: [&str; 6] = ["daemon", "bin", "sys", "games", "man", "lp"];

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// The running service; stopped, and the default directories removed, when dropped.
struct SystemService {
    child: Child,
}

impl Drop for SystemService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let run_dir = Path::new(SYSTEM_CONTROL_SOCKET).parent().unwrap();
        let _ = std::fs::remove_dir_all(run_dir);
        let _ = std::fs::remove_dir_all(SYSTEM_DATA_DIR);
    }
}

/// An ordinary user.
#[derive(Clone)]
struct User {
    name: String,
    uid: u32,
    gid: u32,
}

struct Setup {
    _dir: tempfile::TempDir,
    messenger: PathBuf,
    config: PathBuf,
}

impl Setup {
    /// Runs `messenger ARGS` as `user` (root if None), with a clean environment: `PATH`, and
    /// `XDG_RUNTIME_DIR` of the user's if `runtime_dir`; `--config` first when `config`.
    fn run(&self, user: Option<&User>, runtime_dir: bool, config: bool, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(&self.messenger);
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        if let Some(u) = user {
            cmd.uid(u.uid).gid(u.gid).env("USER", &u.name);
            if runtime_dir {
                cmd.env("XDG_RUNTIME_DIR", format!("/run/user/{}", u.uid));
            }
        }
        if config {
            cmd.arg("--config").arg(&self.config);
        }
        cmd.args(args);
        let output = assert_cmd::Command::from_std(cmd)
            .timeout(WAIT)
            .output()
            .expect("run messenger");
        output
    }

    /// [`Setup::run`], and checks that it succeeded; returns its standard output.
    fn ok(&self, user: Option<&User>, runtime_dir: bool, args: &[&str]) -> String {
        let out = self.run(user, runtime_dir, true, args);
        let who = user.map_or("root", |u| u.name.as_str());
        assert!(
            out.status.success(),
            "`messenger {}` as {who} (XDG_RUNTIME_DIR {}): {}\n{}{}",
            args.join(" "),
            if runtime_dir { "set" } else { "unset" },
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn ordinary_users() -> Vec<User> {
    USER_CANDIDATES
        .iter()
        .filter_map(|n| nix::unistd::User::from_name(n).ok().flatten())
        .filter(|u| !u.uid.is_root())
        .map(|u| User {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })
        .take(2)
        .collect()
}

#[test]
fn every_user_reaches_the_system_service_on_its_default_socket() {
    let test = "every_user_reaches_the_system_service_on_its_default_socket";
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED {test}: needs root to start the system service; NOT checked");
        return;
    }
    let built = assert_cmd::cargo::cargo_bin("messenger");
    let daemon = built.with_file_name("messengerd");
    if !daemon.exists() {
        eprintln!(
            "SKIPPED {test}: {} is not built (run `cargo test --workspace`); NOT checked",
            daemon.display()
        );
        return;
    }
    let run_dir = Path::new(SYSTEM_CONTROL_SOCKET).parent().unwrap();
    for existing in [run_dir, Path::new(SYSTEM_DATA_DIR)] {
        if existing.exists() {
            eprintln!(
                "SKIPPED {test}: {} exists (an installed service's?) and is left alone; NOT \
                 checked",
                existing.display()
            );
            return;
        }
    }
    let users = ordinary_users();
    assert_eq!(users.len(), 2, "two of {USER_CANDIDATES:?} must exist");
    let (alice, bob) = (&users[0], &users[1]);

    // The command line where every user may run it, and a configuration with no paths.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let messenger = dir.path().join("messenger");
    std::fs::copy(&built, &messenger).unwrap();
    std::fs::set_permissions(&messenger, std::fs::Permissions::from_mode(0o755)).unwrap();
    let utmp = dir.path().join("utmp");
    std::fs::write(&utmp, b"").unwrap();
    let config = dir.path().join("messenger.toml");
    std::fs::write(
        &config,
        format!(
            "computer_name = \"{COMPUTER}\"\n\
             workgroup = \"SYSWG\"\n\
             utmp_path = \"{utmp}\"\n\
             listen_addresses = [\"127.0.0.1\"]\n\
             name_port = {name}\n\
             datagram_port = {dgm}\n\
             session_port = {ssn}\n\
             [policy]\n\
             rate_limit = false\n",
            utmp = utmp.display(),
            name = free_port(true),
            dgm = free_port(true),
            ssn = free_port(false),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let setup = Setup {
        _dir: dir,
        messenger,
        config: config.clone(),
    };

    let child = std::process::Command::new(&daemon)
        .arg("--config")
        .arg(&config)
        .arg("--log")
        .arg("warn")
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("start messengerd");
    let mut service = SystemService { child };
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Some(status)) = service.child.try_wait() {
            panic!("messengerd exited early: {status}");
        }
        let out = setup.run(None, false, true, &["name"]);
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains(COMPUTER) {
            break;
        }
        assert!(Instant::now() < deadline, "the service did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Nothing of the service lies where another user could put something of their own.
    let run_meta = std::fs::metadata(run_dir).unwrap();
    assert_eq!(run_meta.mode() & 0o022, 0, "{run_dir:?} writable by others");
    let socket = std::fs::symlink_metadata(SYSTEM_CONTROL_SOCKET).unwrap();
    assert_eq!(socket.mode() & 0o777, 0o666);
    let data = std::fs::metadata(SYSTEM_DATA_DIR).unwrap();
    assert_eq!(data.mode() & 0o007, 0, "other users can read the inbox");

    for user in [alice, bob] {
        for runtime_dir in [true, false] {
            let status = setup.ok(Some(user), runtime_dir, &["status"]);
            assert!(status.contains(COMPUTER), "{status}");
            // With no configuration at all, too: the default socket is the system one.
            let out = setup.run(Some(user), runtime_dir, false, &["status"]);
            assert!(out.status.success(), "status without --config: {out:?}");
            let names = setup.ok(Some(user), runtime_dir, &["name"]);
            assert!(names.contains(COMPUTER), "{names}");
        }
    }
    let alias = format!("{}PAGER", alice.name.to_uppercase());
    setup.ok(Some(alice), true, &["name", &alias, "/ADD"]);
    let names = setup.ok(Some(bob), false, &["name"]);
    assert!(names.contains(&alias), "{names}");

    setup.ok(Some(bob), true, &["send", &alias, "for alice only"]);
    setup.ok(Some(bob), false, &["send", COMPUTER, "for everyone"]);

    let alices = setup.ok(Some(alice), false, &["inbox", "--json"]);
    assert!(alices.contains("for alice only"), "{alices}");
    assert!(alices.contains("for everyone"), "{alices}");
    let bobs = setup.ok(Some(bob), true, &["inbox", "--json"]);
    assert!(bobs.contains("for everyone"), "{bobs}");
    assert!(!bobs.contains("for alice only"), "{bobs}");
    let refused = setup.run(Some(bob), false, true, &["inbox", "--all"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let all = setup.ok(None, false, &["inbox", "--all", "--json"]);
    assert!(
        all.contains("for alice only") && all.contains("for everyone"),
        "{all}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(service.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "messengerd did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{status}");
    drop(service);
    assert!(!run_dir.exists() && !Path::new(SYSTEM_DATA_DIR).exists());
}
