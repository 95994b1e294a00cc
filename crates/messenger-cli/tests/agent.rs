//! `messenger agent` on a real desktop: an X server (Xvfb), a session bus (dbus-daemon), a
//! notification server (dunst), the real service (in this process, `netbios = false`) and the
//! real `messenger` binary. What dunst shows and keeps in its history is read with `dunstctl`;
//! a screenshot of the screen is kept in the target directory
//! (`test-artifacts/agent-desktop.png`).
//!
//! The tests need the Debian packages xvfb, dunst, dbus-x11 and imagemagick (scripts/test
//! installs them); without them they say so and pass without running.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use messenger_core::config::Config;
use messenger_ipc::{Client, MessageView, Reply, Request};
use tokio_util::sync::CancellationToken;

/// How long anything on the desktop may take to happen.
const WAIT: Duration = Duration::from_secs(20);

/// The programs the desktop needs.
const TOOLS: [&str; 6] = [
    "Xvfb",
    "dbus-daemon",
    "dbus-send",
    "dunst",
    "dunstctl",
    "import",
];

/// The computer name of the test service.
const COMPUTER: &str = "DESKPC";

/// dunst as the test wants it: markup read in bodies (as most servers do, so escaping
/// matters), the summary and body only, every notification on screen at once.
const DUNSTRC: &str = "[global]\n\
    markup = full\n\
    format = \"%s\\n%b\"\n\
    notification_limit = 0\n\
    idle_threshold = 0\n\
    show_indicators = no\n\
    font = Monospace 9\n\
    width = 600\n";

/// A session bus without service activation: the notification server runs only when the
/// test starts it (the system's session configuration would start dunst on demand).
const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>ADDRESS</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

fn missing_tool() -> Option<&'static str> {
    TOOLS.into_iter().find(|t| {
        !std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false)
    })
}

/// Skips loudly when the desktop cannot be built here.
fn skip(test: &str) -> bool {
    if let Some(tool) = missing_tool() {
        eprintln!(
            "SKIPPED {test}: {tool} is not installed (apt-get install xvfb dunst dbus-x11 \
             imagemagick libnotify-bin; scripts/test does)"
        );
        return true;
    }
    false
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends "flood 0", "flood 1", ... (`count` messages) to the alias `pager` through the control
/// socket, each acknowledged.
fn flood(service: &Service, count: usize) {
    let mut client = Client::connect(&service.socket()).unwrap();
    for i in 0..count {
        let reply = client
            .call(&Request::Send {
                target: messenger_ipc::SendTarget::Name {
                    name: "pager".into(),
                },
                from: None,
                text: format!("flood {i}"),
                allow_long: false,
                wait_secs: None,
                expire_secs: None,
            })
            .unwrap();
        assert!(matches!(reply, Reply::Sent { .. }), "{reply:?}");
    }
}

/// Xvfb on a display number it chose itself.
///
/// `-displayfd` makes the server try successive numbers and report the first it could lock
/// and listen on, so numbers held by other X servers, or by stale lock files of servers that
/// died, are never a reason to fail (a fixed scan of `/tmp/.X*-lock` ran out of numbers on a
/// machine whose `/tmp` kept the lock files of earlier runs).
struct XServer {
    process: Child,
    display: String,
}

impl XServer {
    fn start() -> Self {
        let mut process = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "800x600x24",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Xvfb writes the number once it listens, or exits (end of file) when it cannot.
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(process.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let number = line.trim();
        assert!(
            !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
            "Xvfb reported no display number (it printed {line:?}); status {:?}",
            process.try_wait()
        );
        let display = format!(":{number}");
        Self { process, display }
    }
}

impl Drop for XServer {
    /// SIGTERM, so that the server removes its lock file and socket (SIGKILL leaves both).
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.process.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A session bus from `config`, once its socket is there.
fn start_bus(config: &Path, socket: &Path) -> Proc {
    let bus = Proc(
        Command::new("dbus-daemon")
            .args(["--nofork", "--nopidfile"])
            .arg(format!("--config-file={}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the session bus", || socket.exists());
    bus
}

/// One desktop at a time: the tests wait for things to appear within `WAIT`, and several X
/// servers, buses and services at once on a small machine would make those waits flaky.
static ONE_DESKTOP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// An X server, a session bus and dunst.
struct Desktop {
    dir: tempfile::TempDir,
    display: String,
    bus: String,
    dunst: Option<Proc>,
    dbus: Proc,
    _x: XServer,
}

impl Desktop {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let x = XServer::start();
        let display = x.display.clone();
        let socket = dir.path().join("bus");
        let bus = format!("unix:path={}", socket.display());
        let bus_config = dir.path().join("bus.conf");
        std::fs::write(&bus_config, BUS_CONFIG.replace("ADDRESS", &bus)).unwrap();
        let dbus = start_bus(&bus_config, &socket);
        std::fs::write(dir.path().join("dunstrc"), DUNSTRC).unwrap();
        let runtime = dir.path().join("run");
        std::fs::create_dir(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut desktop = Self {
            dir,
            display,
            bus,
            dunst: None,
            dbus,
            _x: x,
        };
        desktop.start_dunst();
        desktop
    }

    fn start_dunst(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("dunst.log")).unwrap();
        self.dunst = Some(Proc(
            Command::new("dunst")
                .arg("-config")
                .arg(self.dir.path().join("dunstrc"))
                .env("DISPLAY", &self.display)
                .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        ));
        wait_for("dunst", || self.dunstctl(&["is-paused"]).is_some());
    }

    fn stop_dunst(&mut self) {
        self.dunst = None;
    }

    /// Stops the session bus (and dunst with it) and starts a new one at the same address.
    fn restart_bus(&mut self) {
        self.dunst = None;
        let _ = self.dbus.0.kill();
        let _ = self.dbus.0.wait();
        // The killed bus left its socket behind.
        let socket = self.dir.path().join("bus");
        std::fs::remove_file(&socket).unwrap();
        self.dbus = start_bus(&self.dir.path().join("bus.conf"), &socket);
        self.start_dunst();
    }

    fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// `dunstctl ARGS`' output, if it succeeded.
    fn dunstctl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("dunstctl")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn count(&self, which: &str) -> usize {
        self.dunstctl(&["count", which])
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(usize::MAX)
    }

    fn wait_displayed(&self, n: usize) {
        wait_for(&format!("{n} notifications on the screen"), || {
            self.count("displayed") == n
        });
    }

    /// The history, newest first: (summary, body, message as laid out, app name).
    fn history(&self) -> Vec<History> {
        let json = self.dunstctl(&["history"]).expect("dunstctl history");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["data"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| History {
                summary: n["summary"]["data"].as_str().unwrap().to_owned(),
                body: n["body"]["data"].as_str().unwrap().to_owned(),
                message: n["message"]["data"].as_str().unwrap().to_owned(),
                app: n["appname"]["data"].as_str().unwrap().to_owned(),
            })
            .collect()
    }

    /// Closes the topmost notification as its user would, and returns it from the history.
    fn dismiss_one(&self) -> History {
        let before = self.count("history");
        self.dunstctl(&["close"]).expect("dunstctl close");
        wait_for("the dismissed notification in the history", || {
            self.count("history") == before + 1
        });
        self.history().remove(0)
    }

    /// Saves a screenshot in the target directory.
    fn screenshot(&self, name: &str) {
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let status = Command::new("import")
            .args(["-window", "root", "-display", &self.display])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "import failed");
        eprintln!("screenshot: {}", path.display());
    }

    fn agent(&self, service: &Service) -> Proc {
        let log = std::fs::File::create(self.dir.path().join("agent.log")).unwrap();
        Proc(self.agent_command(service).stderr(log).spawn().unwrap())
    }

    fn agent_command(&self, service: &Service) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("messenger"));
        cmd.env_remove("MESSENGER_SOCKET")
            .env_remove("MESSENGER_CONFIG")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("RUST_LOG", "debug")
            .arg("--config")
            .arg(&service.config)
            .arg("agent")
            .stdout(Stdio::null());
        cmd
    }

    fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

#[derive(Debug)]
struct History {
    summary: String,
    body: String,
    message: String,
    app: String,
}

/// `target/test-artifacts`, beside the test binaries.
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/agent-HASH
    exe.ancestors()
        .nth(3)
        .unwrap_or(Path::new("."))
        .join("test-artifacts")
}

/// The service, in this process, on a runtime of its own (so it can be stopped and started
/// again on the same data while the test waits on its own thread).
struct Service {
    dir: tempfile::TempDir,
    config: PathBuf,
    running: Option<(CancellationToken, std::thread::JoinHandle<()>)>,
}

impl Service {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("utmp"), b"").unwrap();
        let config = dir.path().join("messenger.toml");
        std::fs::write(
            &config,
            format!(
                "computer_name = \"{COMPUTER}\"\n\
                 workgroup = \"DESKWG\"\n\
                 netbios = false\n\
                 data_dir = \"{data}\"\n\
                 control_socket = \"{socket}\"\n\
                 utmp_path = \"{utmp}\"\n",
                data = dir.path().join("data").display(),
                socket = dir.path().join("control.sock").display(),
                utmp = dir.path().join("utmp").display(),
            ),
        )
        .unwrap();
        let mut service = Self {
            dir,
            config,
            running: None,
        };
        service.resume();
        service
    }

    /// Starts the service (again) and waits until it answers.
    fn resume(&mut self) {
        let config = Config::load(&self.config).unwrap();
        let token = CancellationToken::new();
        let shutdown = token.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let settings = messengerd::Settings::resolve(config).unwrap();
                let sockets =
                    messengerd::Sockets::bind(&settings.config, &settings.control_socket).unwrap();
                let inbox = messengerd::open_inbox(&settings).unwrap();
                messengerd::run(settings, sockets, inbox, shutdown, |_| {})
                    .await
                    .unwrap();
            });
        });
        self.running = Some((token, thread));
        wait_for("the service", || {
            Client::connect(&self.socket())
                .and_then(|mut c| c.call(&Request::Status))
                .is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some((token, thread)) = self.running.take() {
            token.cancel();
            thread.join().unwrap();
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    /// `messenger ARGS` against this service, successfully.
    fn messenger(&self, args: &[&str]) {
        let out = Command::new(assert_cmd::cargo::cargo_bin("messenger"))
            .env_remove("MESSENGER_SOCKET")
            .env_remove("MESSENGER_CONFIG")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "messenger {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `messenger ARGS` against this service, running, its output piped.
    fn spawn(&self, args: &[&str]) -> Child {
        Command::new(assert_cmd::cargo::cargo_bin("messenger"))
            .env_remove("MESSENGER_SOCKET")
            .env_remove("MESSENGER_CONFIG")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The caller's unread messages.
    fn unread(&self) -> Vec<MessageView> {
        let reply = Client::connect(&self.socket())
            .unwrap()
            .call(&Request::InboxList {
                unread_only: true,
                all_users: false,
                after_id: None,
                limit: None,
                last: None,
            })
            .unwrap();
        match reply {
            Reply::Messages { messages, .. } => messages,
            other => panic!("{other:?}"),
        }
    }

    fn unread_texts(&self) -> Vec<String> {
        let mut t: Vec<String> = self.unread().into_iter().map(|m| m.text).collect();
        t.sort();
        t
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The text a user must see exactly as sent: tags, an entity and a link.
const MARKUP: &str = "<b>x</b> &amp; <a href=\"http://e\">l</a>";

/// What dunst lays out for a body `text` (its `message`, after our format `%s\n%b`): the
/// summary, the time, and the text with every markup character escaped, so that it shows
/// the characters themselves.
fn laid_out_literally(h: &History, text: &str) -> bool {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    h.message.starts_with(&h.summary) && h.message.ends_with(&format!("\n{escaped}"))
}

#[test]
fn the_agent_shows_messages_literally_and_a_dismissal_marks_them_read_for_waiting_senders() {
    if skip(
        "the_agent_shows_messages_literally_and_a_dismissal_marks_them_read_for_waiting_senders",
    ) {
        return;
    }
    let _one = ONE_DESKTOP.lock().unwrap_or_else(|e| e.into_inner());
    let desktop = Desktop::start();
    let service = Service::start();
    // An alias of this user: messages to it are the user's own.
    service.messenger(&["name", "pager", "/ADD"]);
    // Five unread before the agent starts: three are shown, two counted in a summary.
    for i in 1..=5 {
        service.messenger(&["send", "pager", &format!("before {i}")]);
    }
    let _agent = desktop.agent(&service);
    desktop.wait_displayed(4);
    // A message to the computer (everyone) with markup in it, while the agent runs.
    service.messenger(&["send", COMPUTER, MARKUP]);
    desktop.wait_displayed(5);
    desktop.screenshot("agent-desktop.png");

    // Dismiss everything, one by one, as the user would.
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(desktop.dismiss_one());
    }
    assert!(seen.iter().all(|h| h.app == "Messenger"), "{seen:#?}");
    let summary = seen
        .iter()
        .find(|h| h.summary.starts_with("and "))
        .expect("the catch-up summary");
    assert_eq!(summary.summary, "and 2 more unread messages");
    assert!(summary
        .message
        .ends_with("and 2 more: messenger inbox --unread"));
    for i in 3..=5 {
        let h = seen
            .iter()
            .find(|h| h.body.ends_with(&format!("before {i}")))
            .unwrap_or_else(|| panic!("before {i} shown: {seen:#?}"));
        let me = whoami().to_uppercase();
        assert_eq!(h.summary, format!("Message from {me} to PAGER"));
    }
    let markup = seen
        .iter()
        .find(|h| h.summary.ends_with(&format!("to {COMPUTER}")))
        .expect("the message to the computer");
    assert!(laid_out_literally(markup, MARKUP), "{markup:#?}");
    assert!(!markup.message.contains('<'), "no tag reaches the layout");
    // The body starts with the time it arrived.
    let time = markup.body.lines().next().unwrap();
    assert!(
        time.len() == "2026-12-04 15:20:00".len() && time.as_bytes()[4] == b'-',
        "{time:?}"
    );

    // The dismissed ones are read; the two only counted are not.
    wait_for("the dismissed messages marked read", || {
        service.unread_texts() == ["before 1", "before 2"]
    });

    // A sender who waits hears that the message was read once it is dismissed...
    let waiting = service.spawn(&["send", "--wait=20", "--verbose", "pager", "wait for me"]);
    desktop.wait_displayed(1);
    let h = desktop.dismiss_one();
    assert!(h.body.ends_with("\nwait for me"), "{h:?}");
    let out = waiting.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("has read the message"), "{stdout}");
    // Clicking a notification (its default action) acknowledges it too.
    service.messenger(&["send", "pager", "clicked"]);
    desktop.wait_displayed(1);
    let clicked = service
        .unread()
        .into_iter()
        .find(|m| m.text == "clicked")
        .expect("the clicked message unread")
        .id;
    desktop.dunstctl(&["action", "0"]).expect("dunstctl action");
    wait_for("the click heard", || {
        desktop
            .agent_log()
            .contains(&format!("action invoked id={clicked} action=\"default\""))
    });
    desktop.wait_displayed(0);
    wait_for("the clicked message read", || {
        service.unread_texts() == ["before 1", "before 2"]
    });
    // ... and that it was not, when nobody answers the notification in time (exit 6).
    let out = service
        .spawn(&["send", "--wait=1", "pager", "nobody answers"])
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    desktop.wait_displayed(1);
    eprintln!("{}", desktop.agent_log());
}

/// `send --time`: when the message expires unread the agent takes its notification down
/// (dunst no longer displays it), the message stays unread in the inbox marked expired, and
/// a sender who waits hears that it expired; other notifications stay.
#[test]
fn the_agent_takes_down_a_message_that_expired_unread() {
    if skip("the_agent_takes_down_a_message_that_expired_unread") {
        return;
    }
    let _one = ONE_DESKTOP.lock().unwrap_or_else(|e| e.into_inner());
    let desktop = Desktop::start();
    let service = Service::start();
    service.messenger(&["name", "pager", "/ADD"]);
    let _agent = desktop.agent(&service);
    wait_for("the agent following", || {
        desktop.agent_log().contains("following the inbox")
    });
    service.messenger(&["send", "pager", "stays"]);
    desktop.wait_displayed(1);
    let waiting = service.spawn(&["send", "--wait=60", "--time=3", "pager", "short-lived"]);
    desktop.wait_displayed(2);
    desktop.screenshot("agent-before-expiry.png");
    let out = waiting.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{stdout}");
    assert!(
        stdout.contains("PAGER has not read the message; it expired unread."),
        "{stdout}"
    );
    // Taken down by the agent, not by the user: the other one is still there.
    desktop.wait_displayed(1);
    let expired = service
        .unread()
        .into_iter()
        .find(|m| m.text == "short-lived")
        .expect("the expired message stays unread in the inbox");
    assert!(expired.expired, "{expired:?}");
    assert!(
        desktop
            .agent_log()
            .contains(&format!("expired unread id={}", expired.id)),
        "{}",
        desktop.agent_log()
    );
    let h = desktop.dismiss_one();
    assert!(h.body.ends_with("\nstays"), "{h:?}");
    desktop.wait_displayed(0);
    // An agent started afterwards does not bring the expired message back.
    drop(_agent);
    let _again = desktop.agent(&service);
    wait_for("the new agent following", || {
        desktop.agent_log().contains("following the inbox")
    });
    service.messenger(&["send", "pager", "after the restart"]);
    desktop.wait_displayed(1);
    let h = desktop.dismiss_one();
    assert!(h.body.ends_with("\nafter the restart"), "{h:?}");
    desktop.wait_displayed(0);
}

/// The ids in the agent's log lines `MARK id=N ...`.
fn logged_ids(log: &str, mark: &str) -> Vec<i64> {
    log.lines()
        .filter_map(|l| l.split_once(&format!("{mark} id="))?.1.split(' ').next())
        .filter_map(|id| id.parse().ok())
        .collect()
}

/// The last count of the catch-up summary the agent logged.
fn last_summary_count(log: &str) -> Option<u64> {
    log.lines()
        .filter_map(|l| l.split_once("summary shown more=")?.1.split(' ').next())
        .filter_map(|n| n.parse().ok())
        .next_back()
}

/// `Reply::Lagged`: an agent that stops reading while messages pour in is told by the service
/// that its stream skipped some, catches up from the inbox, and accounts for every message:
/// each is shown or counted in the summary, none is skipped or counted twice. The agent is
/// stopped (SIGSTOP) so that the lag is certain, not a race: its socket fills, then the
/// service's follow backlog overflows.
#[test]
fn the_agent_catches_up_from_the_inbox_after_its_stream_lagged() {
    if skip("the_agent_catches_up_from_the_inbox_after_its_stream_lagged") {
        return;
    }
    let _one = ONE_DESKTOP.lock().unwrap_or_else(|e| e.into_inner());
    let desktop = Desktop::start();
    let service = Service::start();
    service.messenger(&["name", "pager", "/ADD"]);
    let agent = desktop.agent(&service);
    wait_for("the agent following", || {
        desktop.agent_log().contains("following the inbox")
    });
    let pid = nix::unistd::Pid::from_raw(agent.0.id() as i32);
    let signal = |sig| nix::sys::signal::kill(pid, sig).expect("signal the agent");
    signal(nix::sys::signal::Signal::SIGSTOP);
    // Enough to fill the socket to the stopped agent (at most the default send buffer; the
    // kernel accounts for well over 512 bytes a message, with its buffer's overhead) and
    // then the service's backlog. Short texts: dunst lays long ones out slowly.
    let socket_buffer: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(212_992);
    let count = messengerd::service::inbox::FOLLOW_BACKLOG + socket_buffer / 512 + 200;
    flood(&service, count);
    signal(nix::sys::signal::Signal::SIGCONT);
    // Every id of the flood, a page at a time.
    let mut client = Client::connect(&service.socket()).unwrap();
    let mut sent = std::collections::BTreeSet::new();
    loop {
        let reply = client
            .call(&Request::InboxList {
                unread_only: true,
                all_users: false,
                after_id: sent.last().copied(),
                limit: None,
                last: None,
            })
            .unwrap();
        let Reply::Messages { messages, more, .. } = reply else {
            panic!("{reply:?}")
        };
        sent.extend(messages.iter().map(|m| m.id));
        if !more {
            break;
        }
    }
    assert_eq!(sent.len(), count);
    // All accounted for: MAX_PENDING shown one by one, the rest counted in the summary.
    let start = Instant::now();
    loop {
        let log = desktop.agent_log();
        let shown = logged_ids(&log, "shown").len() as u64;
        let counted = last_summary_count(&log).unwrap_or(0);
        if shown + counted == count as u64 {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "{shown} shown and {counted} counted of {count}:\n{}",
            log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = desktop.agent_log();
    assert!(
        log.contains("fell behind; resuming from the inbox"),
        "the stream lagged: {}",
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    let shown = logged_ids(&log, "shown");
    let distinct: std::collections::BTreeSet<i64> = shown.iter().copied().collect();
    assert_eq!(distinct.len(), shown.len(), "a message shown twice");
    assert!(distinct.is_subset(&sent));
    assert_eq!(shown.len(), messenger_agent::MAX_PENDING);
    desktop.wait_displayed(messenger_agent::MAX_PENDING + 1);
    // Nothing more trickles in: the count was final.
    std::thread::sleep(Duration::from_millis(500));
    let log = desktop.agent_log();
    assert_eq!(
        logged_ids(&log, "shown").len() as u64 + last_summary_count(&log).unwrap_or(0),
        count as u64
    );
    desktop.screenshot("agent-after-lag.png");
}

#[test]
fn the_agent_survives_restarts_and_floods_and_only_the_user_marks_read() {
    if skip("the_agent_survives_restarts_and_floods_and_only_the_user_marks_read") {
        return;
    }
    let _one = ONE_DESKTOP.lock().unwrap_or_else(|e| e.into_inner());
    let mut desktop = Desktop::start();
    let mut service = Service::start();
    service.messenger(&["name", "pager", "/ADD"]);
    let _agent = desktop.agent(&service);
    wait_for("the agent following", || {
        desktop.agent_log().contains("following the inbox")
    });
    // One agent per user.
    let second = desktop.agent_command(&service).output().unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another messenger agent is running"),
        "{second:?}"
    );

    service.messenger(&["send", "pager", "first"]);
    desktop.wait_displayed(1);
    // The notification server dies with the notification on screen; the new one shows it
    // again, since nobody answered it.
    desktop.stop_dunst();
    assert!(
        desktop.dunstctl(&["count", "displayed"]).is_none(),
        "no notification server"
    );
    desktop.start_dunst();
    desktop.wait_displayed(1);
    // So does a new session bus.
    desktop.restart_bus();
    desktop.wait_displayed(1);

    // The service restarts; what arrives before the agent is back is shown too.
    service.stop();
    service.resume();
    service.messenger(&["send", "pager", "second"]);
    service.messenger(&["send", COMPUTER, "third"]);
    desktop.wait_displayed(3);
    desktop.screenshot("agent-after-restarts.png");
    let mut bodies: Vec<String> = (0..3).map(|_| desktop.dismiss_one().body).collect();
    bodies.sort_by_key(|b| b.lines().last().map(str::to_owned));
    let texts: Vec<&str> = bodies.iter().filter_map(|b| b.lines().last()).collect();
    assert_eq!(texts, ["first", "second", "third"]);
    wait_for("everything read", || service.unread().is_empty());

    // Closed by another program (not by the user): the message stays unread, and is not
    // shown again.
    service.messenger(&["send", "pager", "closed by a call"]);
    desktop.wait_displayed(1);
    let message = service.unread()[0].id;
    let shown = format!("shown id={message} notification=");
    let mut notification = None;
    wait_for("the notification id in the agent's log", || {
        notification = desktop.agent_log().lines().find_map(|l| {
            l.split_once(&shown)
                .and_then(|(_, id)| id.trim().parse::<u32>().ok())
        });
        notification.is_some()
    });
    let status = Command::new("dbus-send")
        .env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus)
        .args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.Notifications",
            "/org/freedesktop/Notifications",
            "org.freedesktop.Notifications.CloseNotification",
        ])
        .arg(format!("uint32:{}", notification.unwrap()))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    desktop.wait_displayed(0);
    wait_for("the agent hearing of it", || {
        desktop
            .agent_log()
            .contains(&format!("closed without being read id={message} reason=3"))
    });
    assert_eq!(service.unread_texts(), ["closed by a call"]);
    assert_eq!(desktop.count("displayed"), 0);

    // A flood: past MAX_PENDING, messages are counted in one summary, updated in place.
    let extra = 5;
    flood(&service, messenger_agent::MAX_PENDING + extra);
    desktop.wait_displayed(messenger_agent::MAX_PENDING + 1);
    wait_for("the summary counting all", || {
        desktop
            .agent_log()
            .contains(&format!("summary shown more={extra}"))
    });
    assert_eq!(desktop.count("displayed"), messenger_agent::MAX_PENDING + 1);
    desktop
        .dunstctl(&["close-all"])
        .expect("dunstctl close-all");
    desktop.wait_displayed(0);
    let history = desktop.history();
    let summaries: Vec<&History> = history
        .iter()
        .filter(|h| h.summary.starts_with("and "))
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    assert_eq!(
        summaries[0].summary,
        format!("and {extra} more unread messages")
    );
    eprintln!("{}", desktop.agent_log());
}

fn whoami() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .map(|u| u.name)
        .unwrap_or_else(|| nix::unistd::geteuid().to_string())
}

/// The agent's resident memory (VmRSS, KiB) from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// When the agent logged each message as shown (the notification server had answered its
/// Notify call), oldest first.
fn shown_times(log: &str) -> Vec<jiff::Timestamp> {
    log.lines()
        .filter(|l| l.contains(" shown id="))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// BENCHMARKS.md section 8: the agent's idle memory, and the time from a sender's
/// acknowledgement (the service answered the send: the message is on disk) to the
/// notification server having taken the notification (its answer to Notify, after which dunst
/// draws it), one message at a time, each dismissed before the next.
#[test]
#[ignore = "benchmark, not a test: cargo test --release -p messenger-cli --test agent -- --ignored --nocapture"]
fn agent_benchmark() {
    /// Messages timed.
    const SAMPLES: usize = 200;
    /// Pause between messages, so that each is timed alone.
    const PAUSE: Duration = Duration::from_millis(20);
    if skip("agent_benchmark") {
        return;
    }
    let _one = ONE_DESKTOP.lock().unwrap_or_else(|e| e.into_inner());
    let desktop = Desktop::start();
    let service = Service::start();
    service.messenger(&["name", "pager", "/ADD"]);
    let agent = desktop.agent(&service);
    let pid = agent.0.id();
    wait_for("the agent following", || {
        desktop.agent_log().contains("following the inbox")
    });
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib(pid);
    let mut client = Client::connect(&service.socket()).unwrap();
    let mut acked = Vec::new();
    for i in 0..SAMPLES {
        let reply = client
            .call(&Request::Send {
                target: messenger_ipc::SendTarget::Name {
                    name: "pager".into(),
                },
                from: None,
                text: format!("benchmark message {i}"),
                allow_long: false,
                wait_secs: None,
                expire_secs: None,
            })
            .unwrap();
        acked.push(jiff::Timestamp::now());
        assert!(matches!(reply, Reply::Sent { .. }), "{reply:?}");
        wait_for("the notification", || {
            shown_times(&desktop.agent_log()).len() > i
        });
        // Read it, as users do: a screen piled with notifications would time dunst's layout
        // of the pile rather than the path to it.
        desktop.dunstctl(&["close"]).expect("dunstctl close");
        std::thread::sleep(PAUSE);
    }
    std::thread::sleep(Duration::from_secs(1));
    let busy = rss_kib(pid);
    let shown = shown_times(&desktop.agent_log());
    let mut latency_us: Vec<i64> = acked
        .iter()
        .zip(&shown)
        .map(|(a, s)| s.as_microsecond() - a.as_microsecond())
        .collect();
    latency_us.sort_unstable();
    let pct = |p: usize| latency_us[(latency_us.len() - 1) * p / 100] as f64 / 1000.0;
    println!(
        "agent idle VmRSS: {:.1} MiB; after {SAMPLES} messages: {:.1} MiB",
        idle as f64 / 1024.0,
        busy as f64 / 1024.0
    );
    println!(
        "acknowledgement -> notification taken by dunst, {SAMPLES} messages: p50 {:.2} ms, \
         p95 {:.2} ms, max {:.2} ms",
        pct(50),
        pct(95),
        pct(100)
    );
}
