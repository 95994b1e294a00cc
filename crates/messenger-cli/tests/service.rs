//! The command line against a running service: `messengerd` started in-process on loopback
//! with ephemeral ports, a temporary data directory and control socket.

use std::path::PathBuf;

use assert_cmd::Command;
use messenger_core::config::Config;
use predicates::prelude::*;
use predicates::str::contains;
use tokio_util::sync::CancellationToken;

/// A running service and the configuration file that points at it.
struct Service {
    dir: tempfile::TempDir,
    config: PathBuf,
    shutdown: CancellationToken,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Times the test service's ports are picked again when one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

async fn start_service() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let utmp = dir.path().join("utmp");
    std::fs::write(&utmp, b"").unwrap();
    let config_path = dir.path().join("messenger.toml");
    // The ports are free when picked but may be taken by a parallel test before the bind:
    // pick again then.
    let mut attempt = 0;
    let (settings, sockets) = loop {
        std::fs::write(
            &config_path,
            format!(
                "computer_name = \"SVCPC\"\n\
                 workgroup = \"SVCWG\"\n\
                 data_dir = \"{data}\"\n\
                 control_socket = \"{socket}\"\n\
                 utmp_path = \"{utmp}\"\n\
                 listen_addresses = [\"127.0.0.1\"]\n\
                 name_port = {name}\n\
                 datagram_port = {dgm}\n\
                 session_port = {ssn}\n\
                 [policy]\n\
                 rate_limit = false\n",
                data = dir.path().join("data").display(),
                socket = dir.path().join("control.sock").display(),
                utmp = utmp.display(),
                name = free_udp_port(),
                dgm = free_udp_port(),
                ssn = free_tcp_port(),
            ),
        )
        .unwrap();
        let config = Config::load(&config_path).unwrap();
        let settings = messengerd::Settings::resolve(config).unwrap();
        match messengerd::Sockets::bind(&settings.config, &settings.control_socket) {
            Ok(sockets) => break (settings, sockets),
            Err(e) if attempt < PORT_ATTEMPTS => {
                eprintln!("picking other ports: {e}");
                attempt += 1;
            }
            Err(e) => panic!("cannot bind the service's sockets: {e}"),
        }
    };
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let inbox = messengerd::open_inbox(&settings).unwrap();
    tokio::spawn(async move {
        if let Err(e) = messengerd::run(settings, sockets, inbox, token, |_| {}).await {
            panic!("service failed: {e:#}");
        }
    });
    let service = Service {
        dir,
        config: config_path,
        shutdown,
    };
    // Bounded wait until the control socket answers.
    let mut ok = false;
    for _ in 0..200 {
        let mut cmd = messenger(&service);
        cmd.arg("status");
        if tokio::task::spawn_blocking(move || cmd.output().unwrap().status.success())
            .await
            .unwrap()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok, "the service did not answer");
    // And until the computer name is registered: before that, a send to it is not yet local.
    let socket = service.dir.path().join("control.sock");
    let registered = tokio::task::spawn_blocking(move || {
        for _ in 0..200 {
            let names = messenger_ipc::Client::connect(&socket)
                .and_then(|mut c| c.call(&messenger_ipc::Request::NameList));
            if let Ok(messenger_ipc::Reply::Names { names }) = names {
                if names
                    .iter()
                    .any(|n| n.name.trim() == "SVCPC" && n.state == "registered")
                {
                    return true;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    })
    .await
    .unwrap();
    assert!(registered, "the computer name was not registered");
    service
}

fn messenger(service: &Service) -> Command {
    let mut c = Command::cargo_bin("messenger").unwrap();
    c.env_remove("MESSENGER_SOCKET")
        .env_remove("MESSENGER_CONFIG")
        .arg("--config")
        .arg(&service.config);
    c
}

fn net(service: &Service) -> Command {
    let link = service.dir.path().join("net");
    if !link.exists() {
        std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("messenger"), &link).unwrap();
    }
    let mut c = Command::new(link);
    c.env_remove("MESSENGER_SOCKET")
        .env("MESSENGER_CONFIG", &service.config);
    c
}

async fn run(mut cmd: Command) -> assert_cmd::assert::Assert {
    tokio::task::spawn_blocking(move || cmd.assert())
        .await
        .unwrap()
}

fn socket(service: &Service) -> PathBuf {
    service.dir.path().join("control.sock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_and_start_when_running() {
    let s = start_service().await;
    let mut cmd = messenger(&s);
    cmd.arg("status");
    run(cmd)
        .await
        .success()
        .stdout(contains("The Messenger service is running."))
        .stdout(contains("SVCPC"))
        .stdout(contains("SVCWG"));
    let mut cmd = messenger(&s);
    cmd.arg("start");
    run(cmd)
        .await
        .code(1)
        .stderr(contains("The Messenger service is already started."));
    let mut cmd = net(&s);
    cmd.arg("start");
    run(cmd).await.success().stdout(contains("   Messenger"));
    // --socket alone reaches it too.
    let mut cmd = Command::cargo_bin("messenger").unwrap();
    cmd.env_remove("MESSENGER_CONFIG")
        .arg("--socket")
        .arg(socket(&s))
        .arg("status");
    run(cmd).await.success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_are_listed_added_and_deleted() {
    let s = start_service().await;
    let mut cmd = messenger(&s);
    cmd.arg("name");
    run(cmd)
        .await
        .success()
        .stdout(contains("SVCPC"))
        .stdout(contains("computer"))
        .stdout(contains("The command completed successfully."));

    let mut cmd = messenger(&s);
    cmd.args(["name", "pager", "/ADD"]);
    run(cmd)
        .await
        .success()
        .stdout(contains("The command completed successfully."));
    let mut cmd = messenger(&s);
    cmd.arg("name");
    run(cmd).await.success().stdout(contains("PAGER"));
    let mut cmd = net(&s);
    cmd.args(["name", "PAGER", "/add"]);
    run(cmd).await.code(1).stderr(contains("NET HELPMSG 2276"));

    let mut cmd = messenger(&s);
    cmd.args(["name", "pager", "--delete"]);
    run(cmd).await.success();
    let mut cmd = messenger(&s);
    cmd.arg("name");
    run(cmd).await.success().stdout(contains("PAGER").not());

    let mut cmd = net(&s);
    cmd.args(["name", "svcpc", "/DELETE"]);
    run(cmd)
        .await
        .code(1)
        .stderr(contains("The computer name could not be deleted."))
        .stderr(contains("NET HELPMSG 2278"));
    let mut cmd = messenger(&s);
    cmd.args(["name", "nothere", "/del"]);
    run(cmd).await.code(1).stderr(contains("NET HELPMSG 2285"));
    let mut cmd = messenger(&s);
    cmd.args(["name", "abcdefghijklmnop", "--add"]);
    run(cmd).await.code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_to_this_computer_lands_in_the_inbox() {
    let s = start_service().await;
    let mut cmd = messenger(&s);
    cmd.args(["send", "svcpc", "hello", "\x1b[2Jthere"]);
    run(cmd)
        .await
        .success()
        .stdout(contains("The message was successfully sent to"));
    let mut cmd = messenger(&s);
    cmd.args(["send", "SVCPC"]).write_stdin("from stdin\n");
    run(cmd).await.success();

    let mut cmd = messenger(&s);
    cmd.args(["inbox", "--json", "--keep-unread"]);
    let out = run(cmd).await.success().get_output().stdout.clone();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    let texts: Vec<&str> = lines.iter().map(|v| v["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&"hello \u{1b}[2Jthere"), "{texts:?}");
    assert!(texts.contains(&"from stdin"), "{texts:?}");
    for v in &lines {
        for key in [
            "id",
            "received_at",
            "from",
            "to",
            "text",
            "source",
            "transport",
            "read",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
    }

    // Shown on a terminal: sanitized, and then read.
    let mut cmd = messenger(&s);
    cmd.arg("inbox");
    run(cmd)
        .await
        .success()
        .stdout(contains("Message from"))
        .stdout(contains("^[[2Jthere"))
        .stdout(contains("\x1b").not());
    let mut cmd = messenger(&s);
    cmd.args(["inbox", "--unread"]);
    run(cmd)
        .await
        .success()
        .stdout(contains("Message from").not());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_and_unknown_names_through_the_service() {
    let s = start_service().await;
    let mut cmd = messenger(&s);
    cmd.args(["send", "/USERS", "nobody", "is", "logged", "in"]);
    // The service reports "nobody to send to" as the alias not found.
    run(cmd)
        .await
        .code(4)
        .stderr(contains("An error occurred while sending a message to"))
        .stderr(contains("NET HELPMSG 2273"));
    let mut cmd = messenger(&s);
    cmd.args(["send", "no-such-name", "hi"]);
    run(cmd)
        .await
        .code(4)
        .stderr(contains("An error occurred while sending a message to"))
        .stderr(contains("NET HELPMSG 2273"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follow_prints_messages_as_they_arrive() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let s = start_service().await;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("messenger"))
        .env_remove("MESSENGER_SOCKET")
        .env_remove("MESSENGER_CONFIG")
        .arg("--config")
        .arg(&s.config)
        .args(["inbox", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let mut cmd = messenger(&s);
    cmd.args(["send", "svcpc", "live", "one"]);
    run(cmd).await.success();
    let line = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
        .await
        .expect("a followed message in time")
        .unwrap()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["text"], "live one");
}

/// `start` runs the real `messengerd` in the background, `status` sees it, a second `start`
/// says it is already running, and `stop` ends it. The service binary is the one Cargo built
/// next to this one (`cargo test --workspace` builds both).
#[test]
fn start_and_stop_run_the_real_service() {
    let messenger = assert_cmd::cargo::cargo_bin("messenger");
    let daemon = messenger.with_file_name("messengerd");
    if !daemon.exists() {
        eprintln!(
            "SKIPPED start_and_stop_run_the_real_service: {} is not built \
             (run `cargo test --workspace`)",
            daemon.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // As root the service gives up root; it must still reach its files.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = dir.path().join("messenger.toml");
    std::fs::write(
        &config,
        format!(
            "computer_name = \"STARTPC\"\n\
             data_dir = \"{data}\"\n\
             control_socket = \"{socket}\"\n\
             utmp_path = \"{utmp}\"\n\
             listen_addresses = [\"127.0.0.1\"]\n\
             name_port = {name}\n\
             datagram_port = {dgm}\n\
             session_port = {ssn}\n",
            data = dir.path().join("data").display(),
            socket = dir.path().join("control.sock").display(),
            utmp = dir.path().join("utmp").display(),
            name = free_udp_port(),
            dgm = free_udp_port(),
            ssn = free_tcp_port(),
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let mut c = Command::new(&messenger);
        c.arg("--config").arg(&config).args(args);
        c
    };
    cli(&["status"]).assert().code(3);
    cli(&["start"])
        .assert()
        .success()
        .stdout(contains("The Messenger service was started successfully."));
    cli(&["status"])
        .assert()
        .success()
        .stdout(contains("STARTPC"));
    cli(&["start"])
        .assert()
        .code(1)
        .stderr(contains("NET HELPMSG 2271"));
    cli(&["send", "startpc", "hello"])
        .assert()
        .success()
        .stdout(contains("The message was successfully sent to STARTPC."));
    cli(&["stop"])
        .assert()
        .success()
        .stdout(contains("The Messenger service was stopped successfully."));
    cli(&["status"]).assert().code(3);
}

/// Root sees every user's messages with `inbox --all`; without it only its own. Other users
/// are refused `--all` (Win32 error 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inbox_all_shows_every_users_messages_to_root_only() {
    let s = start_service().await;
    if !nix::unistd::Uid::effective().is_root() {
        let mut cmd = messenger(&s);
        cmd.args(["inbox", "--all"]);
        run(cmd)
            .await
            .code(1)
            .stderr(contains("System error 5 has occurred."));
        return;
    }
    // Log a user in, so that the service registers that user's name.
    let utmp = s.dir.path().join("utmp");
    std::fs::write(
        &utmp,
        messengerd::host::utmp::encode_record("nobody", "pts/77", 1),
    )
    .unwrap();
    let mut registered = false;
    for _ in 0..200 {
        let mut cmd = messenger(&s);
        cmd.arg("name");
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("NOBODY") {
            registered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(registered, "the logged-in user's name was not registered");
    let mut registered_state = false;
    for _ in 0..200 {
        let mut cmd = messenger(&s);
        cmd.args(["send", "nobody", "for nobody only"]);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        if out.status.success() {
            registered_state = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(registered_state, "the message to the user was not accepted");
    let mut own = messenger(&s);
    own.args(["inbox", "--json"]);
    run(own)
        .await
        .success()
        .stdout(contains("for nobody only").not());
    let mut all = messenger(&s);
    all.args(["inbox", "--all", "--json"]);
    run(all).await.success().stdout(contains("for nobody only"));
}

/// `start` (as root, in a run directory the service account may own) never writes its log
/// through a link planted where the log goes.
#[test]
fn start_never_writes_its_log_through_a_planted_link() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    std::os::unix::fs::symlink(&victim, run.join("messengerd.log")).unwrap();
    let config = dir.path().join("messenger.toml");
    std::fs::write(
        &config,
        format!(
            "control_socket = \"{socket}\"\ndata_dir = \"{data}\"\n\
             listen_addresses = [\"127.0.0.1\"]\nname_port = {name}\n\
             datagram_port = {dgm}\nsession_port = {ssn}\n",
            socket = run.join("control.sock").display(),
            data = dir.path().join("data").display(),
            name = free_udp_port(),
            dgm = free_udp_port(),
            ssn = free_tcp_port(),
        ),
    )
    .unwrap();
    let mut cli = Command::cargo_bin("messenger").unwrap();
    cli.env_remove("MESSENGER_SOCKET")
        .arg("--config")
        .arg(&config)
        .arg("start");
    cli.assert().code(1).stderr(contains("messengerd.log"));
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
}

/// The same words as without the service (see the `cli` tests): the rule comes from one place.
const TOO_LONG_RECIPIENT: &str = "messenger: \"abcdefghijklmnopq\" is not a messaging name \
     (it has 17 characters; messaging names have at most 15), nor a host name that resolves\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_recipients_and_silent_addresses_through_the_service() {
    let s = start_service().await;
    let mut cmd = messenger(&s);
    cmd.args(["send", "abcdefghijklmnopq", "hello"]);
    run(cmd)
        .await
        .code(2)
        .stdout("")
        .stderr(contains(TOO_LONG_RECIPIENT))
        .stderr(contains("<03>").not());
    // The service listens on 127.0.0.1 only: nobody answers at 127.0.0.9.
    let mut cmd = messenger(&s);
    cmd.args(["send", "127.0.0.9", "anyone?"]);
    run(cmd)
        .await
        .code(4)
        .stderr(contains(
            "An error occurred while sending a message to 127.0.0.9.",
        ))
        .stderr(contains("the computer at 127.0.0.9 did not answer"));
}

/// Adds `count` messages for everyone straight into the service's inbox file (WAL lets a
/// second connection write beside the service's); each text is `long` characters that JSON
/// escapes to six bytes each, so that a few thousand are more than one reply line may hold.
fn fill_inbox(service: &Service, count: usize, long: usize) -> Vec<i64> {
    let path = service.dir.path().join("data").join(messengerd::INBOX_FILE);
    let mut store = messenger_store::Store::open(path).unwrap();
    let batch: Vec<messenger_store::NewMessage> = (0..count)
        .map(|i| messenger_store::NewMessage {
            received_at: jiff_now_micros(),
            from: "FILLER".into(),
            to: "SVCPC".into(),
            recipients: Vec::new(),
            source: None,
            transport: messenger_store::TransportKind::Local,
            text: format!("#{i} {}", "\u{1}".repeat(long)),
            raw: Vec::new(),
        })
        .collect();
    store.insert_batch(&batch).unwrap()
}

fn jiff_now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn json_ids(out: &[u8]) -> Vec<i64> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// An inbox far larger than one reply line (2,000 messages of about 9.6 KB of JSON each) is
/// listed whole with --json, page by page, without a gap or a repeat; the listing for people
/// shows the newest 100 and says how to see the rest; --limit and --after select pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_inbox_is_listed_in_pages() {
    let s = start_service().await;
    let ids = fill_inbox(&s, 2000, 1600);

    let mut cmd = messenger(&s);
    cmd.args(["inbox", "--json", "--keep-unread"]);
    let out = run(cmd).await.success().get_output().stdout.clone();
    assert_eq!(json_ids(&out), ids);

    let mut cmd = messenger(&s);
    cmd.args(["inbox", "--keep-unread"]);
    let out = run(cmd).await.success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("Message from").count(), 100);
    assert!(
        text.contains(&format!("[#{}, new", ids[1900])),
        "newest 100"
    );
    assert!(!text.contains(&format!("[#{}, new", ids[1899])));
    assert!(
        text.contains("(1900 older messages not shown: `--limit all`"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );

    // The newest 1500: across page boundaries, starting at the right message.
    let mut cmd = messenger(&s);
    cmd.args(["inbox", "--json", "--keep-unread", "--limit", "1500"]);
    let out = run(cmd)
        .await
        .success()
        .stderr(contains("500 older messages not shown"))
        .get_output()
        .stdout
        .clone();
    assert_eq!(json_ids(&out), ids[500..]);

    let mut cmd = messenger(&s);
    let after = ids[10].to_string();
    cmd.args([
        "inbox",
        "--json",
        "--keep-unread",
        "-n",
        "3",
        "--after",
        &after,
    ]);
    let out = run(cmd)
        .await
        .success()
        .stderr(contains(format!("`--after {}`", ids[13])))
        .get_output()
        .stdout
        .clone();
    assert_eq!(json_ids(&out), ids[11..14]);

    // Shown for people without --keep-unread: every page shown is marked read, the rest not.
    let mut cmd = messenger(&s);
    cmd.args(["inbox", "--limit", "1200"]);
    run(cmd).await.success();
    let mut cmd = messenger(&s);
    cmd.args(["inbox", "--unread", "--json", "--keep-unread"]);
    let out = run(cmd).await.success().get_output().stdout.clone();
    assert_eq!(json_ids(&out), ids[..800]);

    for bad in ["0", "1.5", "many"] {
        let mut cmd = messenger(&s);
        cmd.args(["inbox", "--limit", bad]);
        run(cmd)
            .await
            .code(2)
            .stderr(contains("not a number of messages"));
    }
}

/// `send --wait`: a message read with `messenger inbox` while its sender waits ends the wait
/// with "has read"; one nobody reads ends it with exit status 6 and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_wait_returns_once_the_message_is_read() {
    use std::process::Stdio;

    let s = start_service().await;
    let mut cmd = messenger(&s);
    cmd.args(["send", "--wait=2", "svcpc", "nobody reads this"]);
    run(cmd)
        .await
        .code(6)
        .stdout(contains("The message was successfully sent to SVCPC."))
        .stdout(contains("SVCPC has not read the message within 2 seconds."));

    // A waiting sender, and a reader who lists the inbox meanwhile.
    let waiting = std::process::Command::new(env!("CARGO_BIN_EXE_messenger"))
        .env_remove("MESSENGER_SOCKET")
        .env_remove("MESSENGER_CONFIG")
        .arg("--config")
        .arg(&s.config)
        .args(["send", "--wait=60", "svcpc", "please", "read"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut cmd = messenger(&s);
        cmd.args(["inbox", "--unread"]);
        let out = run(cmd).await.success().get_output().stdout.clone();
        if String::from_utf8_lossy(&out).contains("please read") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the message never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let out = tokio::task::spawn_blocking(move || waiting.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SVCPC has read the message."),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `send --time`: a waiting sender learns that the message expired unread (exit 6), the inbox
/// lists it as expired, and bad times are refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_time_expires_the_message_and_tells_a_waiting_sender() {
    let s = start_service().await;
    let mut cmd = messenger(&s);
    cmd.args(["send", "--wait=60", "--time=1", "svcpc", "short-lived"]);
    run(cmd)
        .await
        .code(6)
        .stdout(contains("The message was successfully sent to SVCPC."))
        .stdout(contains(
            "SVCPC has not read the message; it expired unread.",
        ));
    let mut cmd = messenger(&s);
    cmd.args(["inbox", "--keep-unread"]);
    run(cmd)
        .await
        .success()
        .stdout(contains("short-lived"))
        .stdout(contains(", expired "));
    let mut cmd = messenger(&s);
    cmd.args(["inbox", "--json"]);
    run(cmd)
        .await
        .success()
        .stdout(contains("\"expired\":true"));
    for (bad, why) in [
        ("--time=0", "at least 1 second"),
        ("--time=86401", "at most 86400 seconds"),
        ("--time=soon", "not a number of seconds"),
    ] {
        let mut cmd = messenger(&s);
        cmd.args(["send", bad, "svcpc", "never sent"]);
        run(cmd).await.code(2).stderr(contains(why));
    }
    let mut cmd = messenger(&s);
    cmd.args(["inbox", "--keep-unread"]);
    run(cmd)
        .await
        .success()
        .stdout(contains("never sent").not());
}

/// `send @FILE`: every recipient listed gets it; without --verbose a count and the failures
/// are reported, with it every recipient.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_to_the_recipients_of_a_file() {
    let s = start_service().await;
    let list = s.dir.path().join("recipients");
    std::fs::write(
        &list,
        "# this computer, twice, and a name nobody has\nsvcpc\nSVCPC\nno-such-name\n",
    )
    .unwrap();
    let word = format!("@{}", list.display());
    let mut cmd = messenger(&s);
    cmd.args(["send", &word, "to a list"]);
    run(cmd)
        .await
        .code(5)
        .stdout(contains("The message was sent to 2 of 3 recipients."))
        .stdout(contains("successfully sent").not())
        .stderr(contains("NET HELPMSG 2273"));
    let mut cmd = messenger(&s);
    cmd.args(["send", "--verbose", &word, "to a list again"]);
    run(cmd)
        .await
        .code(5)
        .stdout(contains("The message was successfully sent to SVCPC."));
    let mut cmd = messenger(&s);
    cmd.args(["send", "@/nonexistent/list", "hi"]);
    run(cmd).await.code(2).stderr(contains("cannot read"));
}
