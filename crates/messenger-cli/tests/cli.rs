//! The command line as users run it: parsing, every switch spelling, the NET error texts and
//! exit codes, without the service (direct sends to in-test peers on loopback with ephemeral
//! ports, chosen through `--config`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use messenger_net::testing::{DatagramListener, MessageReceiver, NameResponder, ReceiverBehaviour};
use netbios::mailslot::MessengerDatagram;
use netbios::NetbiosName;
use predicates::prelude::*;
use predicates::str::contains;

fn messenger() -> Command {
    let mut c = Command::cargo_bin("messenger").unwrap();
    c.env_remove("MESSENGER_SOCKET")
        .env_remove("MESSENGER_CONFIG");
    c
}

/// The binary through a link named `net`.
fn net(dir: &Path) -> Command {
    let link = dir.join("net");
    if !link.exists() {
        std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("messenger"), &link).unwrap();
    }
    let mut c = Command::new(link);
    c.env_remove("MESSENGER_SOCKET")
        .env_remove("MESSENGER_CONFIG");
    c
}

/// A configuration for a loopback-only network with the given ports and a control socket
/// nobody listens on.
fn config(dir: &Path, name_port: u16, session_port: u16, datagram_port: u16) -> PathBuf {
    let path = dir.join("messenger.toml");
    std::fs::write(
        &path,
        format!(
            "computer_name = \"TESTPC\"\n\
             workgroup = \"TESTWG\"\n\
             control_socket = \"{}\"\n\
             listen_addresses = [\"127.0.0.1\"]\n\
             name_port = {name_port}\n\
             session_port = {session_port}\n\
             datagram_port = {datagram_port}\n",
            dir.join("control.sock").display()
        ),
    )
    .unwrap();
    path
}

fn name(n: &str) -> NetbiosName {
    NetbiosName::messenger(n).unwrap()
}

/// Runs a prepared command off the async runtime, which keeps the in-test peers going.
async fn run(mut cmd: Command) -> assert_cmd::assert::Assert {
    tokio::task::spawn_blocking(move || cmd.assert())
        .await
        .unwrap()
}

/// A name responder holding BOB and the computer PC1, and a receiver, plus a config for them.
struct Peers {
    dir: tempfile::TempDir,
    config: PathBuf,
    receiver: MessageReceiver,
    datagrams: DatagramListener,
    _names: NameResponder,
}

async fn peers() -> Peers {
    let names = NameResponder::start(
        Ipv4Addr::LOCALHOST,
        &[
            name("bob"),
            name("pc1"),
            NetbiosName::new(b"PC1", 0x00).unwrap(),
        ],
    )
    .await;
    let receiver = MessageReceiver::start(ReceiverBehaviour::default()).await;
    let datagrams = DatagramListener::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), names.port, receiver.port, datagrams.port);
    Peers {
        dir,
        config,
        receiver,
        datagrams,
        _names: names,
    }
}

// ----- help, helpmsg, completions, man page -----

#[test]
fn help_documents_the_exit_statuses() {
    messenger()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("Exit status:"))
        .stdout(contains("4  the message reached none of its recipients"));
    messenger().arg("--version").assert().success();
    messenger().assert().code(2);
}

#[test]
fn helpmsg_prints_the_windows_texts() {
    messenger()
        .args(["helpmsg", "2273"])
        .assert()
        .success()
        .stdout("\nThe message alias could not be found on the network.\n\n");
    for code in [
        2136, 2270, 2271, 2272, 2276, 2278, 2281, 2282, 2284, 2285, 2297, 2299,
    ] {
        messenger()
            .args(["helpmsg", &code.to_string()])
            .assert()
            .success()
            .stdout(predicate::str::is_empty().not());
    }
    messenger()
        .args(["helpmsg", "9999"])
        .assert()
        .code(1)
        .stderr(contains("9999 is not a valid network message number."));
    messenger().args(["helpmsg", "abc"]).assert().code(2);
    let dir = tempfile::tempdir().unwrap();
    net(dir.path())
        .args(["HELPMSG", "2278"])
        .assert()
        .success()
        .stdout(contains("The computer name could not be deleted."));
}

#[test]
fn completions_and_man_page_come_from_the_definition() {
    for shell in ["bash", "zsh", "fish"] {
        messenger()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(contains("messenger"));
    }
    messenger()
        .arg("manpage")
        .assert()
        .success()
        .stdout(contains(".TH messenger"))
        .stdout(contains("Exit status"));
}

// ----- usage errors -----

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1, 1, 1);
    let cases: &[&[&str]] = &[
        &["send"],
        &["send", "/bogus", "hi"],
        &["send", "/users:x", "hi"],
        &["send", "--users", "--domain", "hi"],
        &["name", "pager", "/frob"],
        &["name", "--add"],
        &["frobnicate"],
    ];
    for args in cases {
        messenger()
            .arg("--config")
            .arg(&cfg)
            .args(*args)
            .assert()
            .code(2);
    }
    messenger()
        .arg("--config")
        .arg(&cfg)
        .args(["send", "bob"])
        .write_stdin("\n\n")
        .assert()
        .code(2)
        .stderr(contains("the message is empty"));
    messenger()
        .arg("--config")
        .arg(&cfg)
        .args(["send", "bob", &"x".repeat(653)])
        .assert()
        .code(2)
        .stderr(contains("653 bytes"))
        .stderr(contains("--long"));
    messenger()
        .arg("--config")
        .arg(&cfg)
        .args(["send", "*", &"x".repeat(129)])
        .assert()
        .code(2)
        .stderr(contains("128"));
    messenger()
        .arg("--config")
        .arg(&cfg)
        .args(["name", "abcdefghijklmnop", "/add"])
        .assert()
        .code(2)
        .stderr(contains("The parameter is incorrect."));
    messenger()
        .arg("--config")
        .arg(&cfg)
        .args(["name", "a*b", "/add"])
        .assert()
        .code(2)
        .stderr(contains("System error 123 has occurred."));
}

#[test]
fn net_mode_takes_only_the_messenger_commands() {
    let dir = tempfile::tempdir().unwrap();
    net(dir.path())
        .assert()
        .code(2)
        .stdout(contains("NET SEND"));
    net(dir.path()).arg("help").assert().success();
    net(dir.path())
        .args(["use", "x:"])
        .assert()
        .code(2)
        .stderr(contains("NET USE is not a command of this program"));
    net(dir.path())
        .args(["start", "spooler"])
        .assert()
        .code(2)
        .stderr(contains("NET HELPMSG 2185"));
    net(dir.path()).arg("stop").assert().code(2);
}

// ----- without the service -----

#[test]
fn commands_that_need_the_service_say_it_is_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1, 1, 1);
    let not_started = "The Messenger service has not been started.";
    let cases: &[&[&str]] = &[
        &["name"],
        &["name", "pager", "/ADD"],
        &["name", "pager", "--delete"],
        &["inbox"],
        &["inbox", "--unread", "--json"],
        &["send", "/USERS", "hi"],
        &["send", "--users", "hi"],
        &["stop"],
    ];
    for args in cases {
        messenger()
            .arg("--config")
            .arg(&cfg)
            .args(*args)
            .assert()
            .code(3)
            .stderr(contains(not_started))
            .stderr(contains("NET HELPMSG 2284"));
    }
    messenger()
        .arg("--config")
        .arg(&cfg)
        .arg("status")
        .assert()
        .code(3)
        .stdout(contains("not running"));
    // The socket can also be chosen with --socket or MESSENGER_SOCKET.
    messenger()
        .args(["--socket", "/nonexistent/control.sock", "name"])
        .assert()
        .code(3);
    messenger()
        .env("MESSENGER_SOCKET", "/nonexistent/control.sock")
        .arg("name")
        .assert()
        .code(3);
    net(dir.path())
        .env("MESSENGER_CONFIG", &cfg)
        .args(["name", "x", "/add"])
        .assert()
        .code(3);
    net(dir.path())
        .env("MESSENGER_CONFIG", &cfg)
        .arg("start")
        .assert()
        .success()
        .stdout(contains("These services are started:"))
        .stdout(contains("Messenger").count(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_send_to_a_name_with_every_spelling() {
    let mut p = peers().await;
    let mut cmd = messenger();
    cmd.arg("--config")
        .arg(&p.config)
        .args(["send", "--from", "alice", "bob", "hello", "there"]);
    run(cmd)
        .await
        .success()
        .stdout("The message was successfully sent to BOB.\n");
    let m = p.receiver.next_message().await;
    assert_eq!(m.from, b"ALICE");
    assert_eq!(m.to, b"BOB");
    assert_eq!(m.text, b"hello there");

    // Standard input, with its line breaks sent as CRLF and the final one dropped.
    let mut cmd = messenger();
    cmd.arg("--config")
        .arg(&p.config)
        .args(["send", "Bob"])
        .write_stdin("line one\nline two\n");
    run(cmd).await.success();
    assert_eq!(
        p.receiver.next_message().await.text,
        b"line one\r\nline two"
    );

    // Message words that look like switches are text.
    let mut cmd = messenger();
    cmd.arg("--config")
        .arg(&p.config)
        .args(["send", "bob", "see", "/users", "--long"]);
    run(cmd).await.success();
    assert_eq!(p.receiver.next_message().await.text, b"see /users --long");

    // --long allows up to 1600 bytes.
    let mut cmd = messenger();
    cmd.arg("--config")
        .arg(&p.config)
        .args(["send", "--long", "bob", &"y".repeat(1000)]);
    run(cmd).await.success();
    assert_eq!(p.receiver.next_message().await.text.len(), 1000);

    // NET SEND, and the environment variable for the configuration.
    let mut cmd = net(p.dir.path());
    cmd.env("MESSENGER_CONFIG", &p.config)
        .args(["SEND", "bob", "from", "net"]);
    run(cmd).await.success();
    assert_eq!(p.receiver.next_message().await.text, b"from net");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_send_to_an_address_uses_the_hosts_messenger_name() {
    let mut p = peers().await;
    let mut cmd = messenger();
    cmd.arg("--config")
        .arg(&p.config)
        .args(["send", "127.0.0.1", "by", "address"]);
    run(cmd)
        .await
        .success()
        .stdout("The message was successfully sent to 127.0.0.1.\n");
    let m = p.receiver.next_message().await;
    assert_eq!(m.to, b"PC1");
    assert_eq!(m.text, b"by address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_name_is_error_2273_and_exit_4() {
    let p = peers().await;
    let mut cmd = messenger();
    cmd.arg("--config")
        .arg(&p.config)
        .args(["send", "nobody", "hello"]);
    run(cmd)
        .await
        .code(4)
        .stdout("")
        .stderr(contains(
            "An error occurred while sending a message to NOBODY.\n\n\
             The message alias could not be found on the network.",
        ))
        .stderr(contains(
            "More help is available by typing NET HELPMSG 2273.",
        ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_receiver_is_error_2281() {
    let names = NameResponder::start(Ipv4Addr::LOCALHOST, &[name("zoe")]).await;
    let receiver = MessageReceiver::start(ReceiverBehaviour {
        verdict: Err(netbios::smb::DeliveryError::Paused),
        ..ReceiverBehaviour::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), names.port, receiver.port, 1);
    let mut cmd = messenger();
    cmd.arg("--config").arg(&cfg).args(["send", "zoe", "hi"]);
    run(cmd)
        .await
        .code(4)
        .stderr(contains(
            "The message was sent, but the recipient has paused the Messenger service.",
        ))
        .stderr(contains("NET HELPMSG 2281"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_with_every_spelling() {
    let p = peers().await;
    let cases: &[(&[&str], &str)] = &[
        (&["*"], "TESTWG"),
        (&["/DOMAIN"], "TESTWG"),
        (&["/domain"], "TESTWG"),
        (&["--domain"], "TESTWG"),
        (&["/DOMAIN:other"], "OTHER"),
        (&["/Domain:Lab"], "LAB"),
        (&["/d:lab2"], "LAB2"),
        (&["--domain=Third"], "THIRD"),
        (&["FOURTH*"], "FOURTH"),
    ];
    for (target, group) in cases {
        let mut cmd = messenger();
        cmd.arg("--config")
            .arg(&p.config)
            .arg("send")
            .args(*target)
            .args(["lunch", "time"]);
        run(cmd).await.success().stdout(format!(
            "The message was successfully sent to domain {group}.\n"
        ));
        let d = MessengerDatagram::decode(&p.datagrams.next().await)
            .unwrap()
            .unwrap();
        assert_eq!(
            d.destination.name,
            NetbiosName::new(group.as_bytes(), 0).unwrap()
        );
        assert_eq!(d.message.to, group.as_bytes());
        assert_eq!(d.message.text, b"lunch time");
        assert_eq!(d.source.name, NetbiosName::new(b"TESTPC", 0).unwrap());
    }
    let mut cmd = net(p.dir.path());
    cmd.env("MESSENGER_CONFIG", &p.config)
        .args(["send", "/DOMAIN:NETWG", "via", "net"]);
    run(cmd).await.success();
    let d = MessengerDatagram::decode(&p.datagrams.next().await)
        .unwrap()
        .unwrap();
    assert_eq!(d.message.to, b"NETWG");
}

/// Without the service, the command line applies the service's rule itself: broadcasts are
/// for root and the broadcast group. Needs root to run the command as another user.
#[test]
fn other_users_cannot_broadcast_without_the_service_either() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED other_users_cannot_broadcast_without_the_service_either: not root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cfg = config(dir.path(), 1, 1, 1);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("messenger"));
    std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
    std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    cmd.env_remove("MESSENGER_SOCKET")
        .env_remove("MESSENGER_CONFIG")
        .arg("--config")
        .arg(&cfg)
        .args(["send", "*", "everyone, listen"]);
    Command::from_std(cmd)
        .assert()
        .code(1)
        .stderr(contains("System error 5 has occurred."));
}

/// What both the direct path and the service say of a 17-character recipient that no host
/// has either: the rule it breaks, as a usage error.
const TOO_LONG_RECIPIENT: &str = "messenger: \"abcdefghijklmnopq\" is not a messaging name \
     (it has 17 characters; messaging names have at most 15), nor a host name that resolves\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_that_is_neither_a_name_nor_a_host_is_a_usage_error() {
    let p = peers().await;
    let mut cmd = messenger();
    cmd.arg("--config")
        .arg(&p.config)
        .args(["send", "abcdefghijklmnopq", "hello"]);
    run(cmd)
        .await
        .code(2)
        .stdout("")
        .stderr(contains(TOO_LONG_RECIPIENT))
        .stderr(contains("<03>").not())
        .stderr(contains("could not be found").not());
    let mut cmd = messenger();
    cmd.arg("--config")
        .arg(&p.config)
        .args(["send", "a?b", "hello"]);
    run(cmd)
        .await
        .code(2)
        .stderr(contains("\"a?b\" is not a messaging name ("))
        .stderr(contains("may not contain"))
        .stderr(contains("nor a host name that resolves"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_does_not_answer_says_so() {
    // Nothing listens on this port at 127.0.0.9: the node status query gets no answer.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    drop(silent);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), port, 1, 1);
    let mut cmd = messenger();
    cmd.arg("--config")
        .arg(&cfg)
        .args(["send", "127.0.0.9", "anyone?"]);
    run(cmd)
        .await
        .code(4)
        .stderr(contains(
            "An error occurred while sending a message to 127.0.0.9.",
        ))
        .stderr(contains("the computer at 127.0.0.9 did not answer"));
}

/// Runs the command line as `nobody` (uid 65534) with group `gid`; None when not root.
fn as_nobody(gid: u32, config: &Path, args: &[&str]) -> Option<Command> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("messenger"));
    std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
    std::os::unix::process::CommandExt::gid(&mut cmd, gid);
    cmd.env_remove("MESSENGER_SOCKET")
        .env_remove("MESSENGER_CONFIG")
        .arg("--config")
        .arg(config)
        .args(args);
    Some(Command::from_std(cmd))
}

/// A directory `nobody` can read, for configurations it must load.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

/// `--from` with one's own login name in capitals is one's own name, as the service agrees
/// (see messengerd's control tests); another name is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_is_ones_login_name_in_any_case() {
    let mut p = peers().await;
    let dir = open_dir();
    let cfg = dir.path().join("messenger.toml");
    std::fs::copy(&p.config, &cfg).unwrap();
    let Some(cmd) = as_nobody(65534, &cfg, &["send", "--from", "NOBODY", "bob", "hi"]) else {
        eprintln!("SKIPPED from_is_ones_login_name_in_any_case: not root; NOT checked");
        return;
    };
    run(cmd)
        .await
        .success()
        .stdout("The message was successfully sent to BOB.\n");
    assert_eq!(p.receiver.next_message().await.from, b"NOBODY");
    let cmd = as_nobody(65534, &cfg, &["send", "--from", "BOSS", "bob", "hi"]).unwrap();
    run(cmd)
        .await
        .code(1)
        .stderr(contains("System error 5 has occurred."))
        .stderr(contains(
            "Only root may send under another name than the login name.",
        ));
}

/// The broadcast right counts the account's groups, not only the process's: `nobody` runs
/// with group `daemon` (1) here, and the broadcast group is its account's primary group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcast_group_counts_the_accounts_groups() {
    let p = peers().await;
    let Some(group) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534))
        .ok()
        .flatten()
    else {
        eprintln!(
            "SKIPPED the_broadcast_group_counts_the_accounts_groups: no group 65534; NOT checked"
        );
        return;
    };
    let dir = open_dir();
    let cfg = dir.path().join("messenger.toml");
    let mut text = std::fs::read_to_string(&p.config).unwrap();
    text.push_str(&format!("[policy]\nbroadcast_group = \"{}\"\n", group.name));
    std::fs::write(&cfg, text).unwrap();
    let Some(cmd) = as_nobody(1, &cfg, &["send", "*", "from a member"]) else {
        eprintln!("SKIPPED the_broadcast_group_counts_the_accounts_groups: not root; NOT checked");
        return;
    };
    run(cmd)
        .await
        .success()
        .stdout("The message was successfully sent to domain TESTWG.\n");
    let d = MessengerDatagram::decode(&p.datagrams.next().await)
        .unwrap()
        .unwrap();
    assert_eq!(d.message.text, b"from a member");
}
