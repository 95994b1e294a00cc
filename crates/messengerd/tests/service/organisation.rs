//! Organisation-wide delivery over NATS JetStream, with a real nats-server (JetStream on, one
//! node; the 3-node cluster, fail-over and de-duplication are tested in messenger-nats).
//! Two services on loopback with different name service ports cannot hear each other's
//! broadcasts, as two subnets without WINS cannot: only the organisation's directory joins
//! them.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use messenger_core::config::NatsTable;
use messenger_core::message::TransportKind;
use messenger_ipc::{Reply, Request, SendTarget};
use messenger_nats::subject::EncodedName;
use messenger_nats::{Directory, Nats, NatsSettings};

use crate::control::skip_unless_root;
use crate::harness::*;

struct NatsServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

impl NatsServer {
    /// One JetStream server on loopback, or `None` (said loudly) without nats-server (see
    /// [`messenger_nats::testing::nats_server`]).
    fn start() -> Option<Self> {
        Self::start_with("")
    }

    /// [`NatsServer::start`] with `config` as the server's configuration file (its log goes
    /// to `server.log` beside it).
    fn start_with(config: &str) -> Option<Self> {
        let server = messenger_nats::testing::nats_server()?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("server.conf");
        std::fs::write(&conf, config).unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(server)
            .args(["-c"])
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        })
    }
}

fn on_nats(computer: &'static str, url: String) -> Options {
    Options::configured(move |c| {
        c.computer_name = Some(computer.into());
        c.nats = Some(NatsTable {
            servers: vec![url],
            replicas: Some(1),
            ..NatsTable::default()
        });
    })
}

/// A connection to the cluster at `url` with the directory, as a program watching it.
async fn observe(url: &str) -> (Nats, Directory) {
    let mut settings = NatsSettings::new(vec![url.to_owned()]);
    settings.replicas = 1;
    let nats = Nats::connect(settings).await.expect("connect to nats");
    let directory = Directory::open(&nats, EncodedName::new("OBSERVER").unwrap())
        .await
        .expect("open the directory");
    (nats, directory)
}

/// Waits until the directory places `name` on the host `host`.
async fn wait_until_held(url: &str, name: &str, host: &str) {
    let (_nats, directory) = observe(url).await;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Some(holder)) = directory.holder(name).await {
            if holder.display() == host {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name} never appeared in the directory"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn send_to(name: &str, text: &str) -> Request {
    Request::Send {
        target: SendTarget::Name { name: name.into() },
        from: None,
        text: text.into(),
        allow_long: false,
        wait_secs: None,
        expire_secs: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_on_another_subnet_is_reached_through_the_organisations_network() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let a = TestService::start(on_nats("SITEA", nats.url.clone())).await;
    let b = TestService::start(on_nats("SITEB", nats.url.clone())).await;
    wait_until_held(&nats.url, "SITEB", "SITEB").await;
    wait_until_held(&nats.url, "SITEA", "SITEA").await;

    let reply = control_call(&a.control(), send_to("siteb", "across subnets")).await;
    let Reply::Sent { results } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(results[0].recipient, "SITEB");
    assert_eq!(results[0].error, None, "JetStream stored it");
    let stored = b.wait_for_message("across subnets").await;
    assert_eq!(stored.message.transport, TransportKind::Nats);
    assert_eq!(stored.message.to, "SITEB");
    assert!(
        !a.messages()
            .await
            .iter()
            .any(|m| m.message.text == "across subnets"),
        "the sender's own host does not keep a copy"
    );
}

/// A name that is on neither the LAN nor the directory is not found, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_in_no_directory_is_still_not_found() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let a = TestService::start(on_nats("SITEA", nats.url.clone())).await;
    wait_until_held(&nats.url, "SITEA", "SITEA").await;
    let reply = control_call(&a.control(), send_to("NOWHERE", "lost")).await;
    let Reply::Sent { results } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(messenger_core::nerr::NERR_NAME_NOT_FOUND)
    );
}

/// With the cluster unreachable the service starts, and delivery on this computer works as
/// without `[nats]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_reachable_cluster_the_lan_works_as_before() {
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let a = TestService::start(on_nats("SITEA", nowhere)).await;
    let reply = control_call(&a.control(), send_to("SITEA", "still here")).await;
    let Reply::Sent { results } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(results[0].error, None);
    a.wait_for_message("still here").await;
    // A name the LAN does not know may be on another subnet: the sender is told why it
    // cannot be found now.
    let reply = control_call(&a.control(), send_to("ELSEWHERE", "lost")).await;
    let Reply::Sent { results } = reply else {
        panic!("{reply:?}")
    };
    let error = results[0].error.as_ref().expect("not sent");
    assert_eq!(error.code, messenger_core::nerr::NERR_NETWORK_ERROR);
    assert!(error.message.contains("(NATS) is unreachable"), "{error:?}");
}

/// Waits until the directory has no holder for `name`.
async fn wait_until_released(url: &str, name: &str) {
    let (_nats, directory) = observe(url).await;
    let deadline = Instant::now() + WAIT;
    while !matches!(directory.holder(name).await, Ok(None)) {
        assert!(Instant::now() < deadline, "{name} was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A user who has logged out everywhere gets the message at their next login, on another
/// computer of the organisation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_for_a_user_logged_in_nowhere_reaches_them_at_their_next_login() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let a = TestService::start(on_nats("SITEA", nats.url.clone())).await;
    let b = TestService::start(on_nats("SITEB", nats.url.clone())).await;
    let c = TestService::start(on_nats("SITEC", nats.url.clone())).await;
    // nobody logs in on B (which creates their queue), then out again.
    write_utmp(&b.utmp(), &["nobody"]);
    wait_until_held(&nats.url, "NOBODY", "SITEB").await;
    // B created nobody's queue at the login.
    let (observer, _directory) = observe(&nats.url).await;
    let nobody = EncodedName::new("nobody").unwrap();
    let deadline = Instant::now() + WAIT;
    while !matches!(
        messenger_nats::consumer::user_has_queue(&observer, &nobody).await,
        Ok(true)
    ) {
        assert!(
            Instant::now() < deadline,
            "nobody's queue was never created"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    write_utmp(&b.utmp(), &[]);
    wait_until_released(&nats.url, "NOBODY").await;

    let reply = control_call(&a.control(), send_to("nobody", "while you were out")).await;
    let Reply::Sent { results } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(results[0].error, None, "stored in nobody's queue");
    assert_eq!(
        results[0].notice.as_deref(),
        Some("NOBODY is not logged on; the message will be delivered when NOBODY logs on.")
    );

    // nobody logs in on C: the message is there, for nobody.
    write_utmp(&c.utmp(), &["nobody"]);
    let stored = c.wait_for_message("while you were out").await;
    assert_eq!(stored.message.recipients, vec!["nobody".to_owned()]);
    assert_eq!(stored.message.transport, TransportKind::Nats);
    assert!(
        !b.messages()
            .await
            .iter()
            .any(|m| m.message.text == "while you were out"),
        "not delivered where nobody was no longer logged in"
    );
}

fn broadcast(workgroup: Option<&str>, from: Option<&str>, text: &str) -> Request {
    Request::Send {
        target: SendTarget::Workgroup {
            name: workgroup.map(str::to_owned),
        },
        from: from.map(str::to_owned),
        text: text.into(),
        allow_long: false,
        wait_secs: None,
        expire_secs: None,
    }
}

/// Waits until the host `host` receives its workgroup's broadcasts from the cluster (its
/// durable consumer exists; broadcasts sent before it existed are not for it).
async fn wait_until_listening(url: &str, host: &str) {
    let (nats, _directory) = observe(url).await;
    let durable = EncodedName::new(host).unwrap().broadcast_consumer();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(stream) = nats
            .jetstream()
            .get_stream(messenger_nats::subject::BROADCAST_STREAM)
            .await
        {
            if stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&durable)
                .await
                .is_ok()
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{host} never started receiving broadcasts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn copies(service: &TestService, text: &str) -> usize {
    service
        .messages()
        .await
        .iter()
        .filter(|m| m.message.text == text)
        .count()
}

fn sent_ok(reply: &Reply) -> &messenger_ipc::SendResult {
    let Reply::Sent { results } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(results[0].error, None, "{reply:?}");
    &results[0]
}

/// `*` and `/DOMAIN:X` reach every host of the workgroup on every subnet, once each, and no
/// host of another workgroup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_every_host_of_the_workgroup_on_every_subnet() {
    if skip_unless_root("a_broadcast_reaches_every_host_of_the_workgroup_on_every_subnet") {
        return;
    }
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let a = TestService::start(on_nats("SITEA", nats.url.clone())).await;
    let b = TestService::start(on_nats("SITEB", nats.url.clone())).await;
    let c = TestService::start(on_nats("SITEC", nats.url.clone())).await;
    let url = nats.url.clone();
    let other = TestService::start(Options::configured(move |c| {
        c.computer_name = Some("ELSEWHERE".into());
        c.workgroup = Some("OTHERWG".into());
        c.nats = Some(NatsTable {
            servers: vec![url],
            replicas: Some(1),
            ..NatsTable::default()
        });
    }))
    .await;
    for host in ["SITEA", "SITEB", "SITEC", "ELSEWHERE"] {
        wait_until_listening(&nats.url, host).await;
    }

    let reply = control_call(&a.control(), broadcast(None, None, "going down in 5")).await;
    assert_eq!(sent_ok(&reply).recipient, WORKGROUP);
    for host in [&b, &c] {
        let m = host.wait_for_message("going down in 5").await;
        assert_eq!(m.message.transport, TransportKind::Nats);
        assert_eq!(m.message.to, WORKGROUP);
        assert!(m.message.recipients.is_empty(), "for everyone there");
    }
    // The sender's host has its local copy only; its own broadcast is not delivered back.
    a.wait_for_message("going down in 5").await;

    let reply = control_call(
        &a.control(),
        broadcast(Some("OTHERWG"), None, "to the other domain"),
    )
    .await;
    assert_eq!(sent_ok(&reply).recipient, "OTHERWG");
    other.wait_for_message("to the other domain").await;
    // Ordered per consumer: once later broadcasts are in, the earlier ones were handled.
    control_call(&a.control(), broadcast(None, None, "marker")).await;
    b.wait_for_message("marker").await;
    c.wait_for_message("marker").await;
    for host in [&a, &b, &c] {
        assert_eq!(copies(host, "going down in 5").await, 1);
        assert_eq!(copies(host, "to the other domain").await, 0);
    }
    assert_eq!(copies(&other, "going down in 5").await, 0);

    // The Windows rule: 128 characters at most, whichever way it goes.
    let reply = control_call(&a.control(), broadcast(None, None, &"x".repeat(129))).await;
    assert!(
        matches!(reply, Reply::Error(_)),
        "a broadcast over 128 characters is refused: {reply:?}"
    );
}

/// A host on the sender's subnet hears a broadcast by mailslot and over NATS: it stores it
/// once, whichever copy comes first; a mailslot broadcast with no NATS twin (from a Windows
/// host) is stored as always.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_heard_both_ways_is_stored_once() {
    if skip_unless_root("a_broadcast_heard_both_ways_is_stored_once") {
        return;
    }
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let a = TestService::start(on_nats("SITEA", nats.url.clone())).await;
    let b = TestService::start(on_nats("SITEB", nats.url.clone())).await;
    wait_until_listening(&nats.url, "SITEB").await;
    let mut lan = crate::datagram::Peer::new().await;
    let group = crate::datagram::workgroup(WORKGROUP);

    // The mailslot copy first, then the same broadcast over NATS.
    lan.send(&b, group, true, WORKGROUP, "mailslot first").await;
    b.wait_for_message("mailslot first").await;
    let reply = control_call(
        &a.control(),
        broadcast(None, Some("PEERUSER"), "mailslot first"),
    )
    .await;
    sent_ok(&reply);
    // Then NATS first, and the mailslot copy after it.
    let reply = control_call(
        &a.control(),
        broadcast(None, Some("PEERUSER"), "nats first"),
    )
    .await;
    sent_ok(&reply);
    let m = b.wait_for_message("nats first").await;
    assert_eq!(m.message.transport, TransportKind::Nats);
    lan.send(&b, group, true, WORKGROUP, "nats first").await;
    // A Windows host's broadcast, by mailslot only, after both: once it is in, the mailslot
    // copy before it was handled.
    lan.send(&b, group, true, WORKGROUP, "from windows").await;
    b.wait_for_message("from windows").await;
    control_call(&a.control(), broadcast(None, Some("PEERUSER"), "marker")).await;
    b.wait_for_message("marker").await;

    assert_eq!(copies(&b, "mailslot first").await, 1);
    assert_eq!(copies(&b, "nats first").await, 1);
    assert_eq!(copies(&b, "from windows").await, 1);
}

/// The gateway for NetBIOS senders: a Windows or Samba sender on one subnet reaches a name
/// held on another through the service on its own subnet; a name in no directory is still
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netbios_sender_reaches_a_name_held_on_another_subnet_through_the_gateway() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let a = TestService::start(Options {
        session_request_required: true,
        ..on_nats("SITEA", nats.url.clone())
    })
    .await;
    let b = TestService::start(on_nats("SITEB", nats.url.clone())).await;
    wait_until_held(&nats.url, "SITEB", "SITEB").await;

    // As smbclient -M SITEB -I <A's address>: the session request names SITEB<03>.
    let mut session = a.connect().await;
    session.establish("SITEB").await;
    let r = session
        .call(&d0("WINUSER", "SITEB", "through the gateway"))
        .await;
    assert!(r.header.status.is_success(), "{r:?}");
    let m = b.wait_for_message("through the gateway").await;
    assert_eq!(m.message.transport, TransportKind::Nats);
    assert_eq!(m.message.from, "WINUSER");
    assert_eq!(m.message.to, "SITEB");
    assert_eq!(copies(&a, "through the gateway").await, 0);

    // A name nobody holds: the session request is refused, as without the gateway.
    let mut nowhere = a.connect().await;
    let called = netbios::NetbiosName::messenger("NOWHERE").unwrap();
    assert_ne!(
        nowhere.request_session(called).await,
        Some(netbios::nbss::SessionPacket::PositiveResponse)
    );
}

/// `messenger send --wait` across the organisation: the receiving host reports the read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_on_another_host_learns_when_the_message_is_read() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let a = TestService::start(on_nats("SITEA", nats.url.clone())).await;
    let b = TestService::start(on_nats("SITEB", nats.url.clone())).await;
    wait_until_held(&nats.url, "SITEB", "SITEB").await;
    let waiting = |text: &str, wait_secs| Request::Send {
        target: SendTarget::Name {
            name: "SITEB".into(),
        },
        from: None,
        text: text.into(),
        allow_long: false,
        wait_secs: Some(wait_secs),
        expire_secs: None,
    };

    let socket = a.control();
    let send = control_call(&socket, waiting("read me, far away", 30));
    let read = crate::receipts::read_when_stored(&b, "read me, far away");
    let (reply, ()) = tokio::join!(send, read);
    let result = sent_ok(&reply);
    assert_eq!(result.receipt, Some(messenger_ipc::Receipt::Read));

    // Nobody reads this one: the wait ends, and the sender says so.
    let reply = control_call(&a.control(), waiting("nobody reads me", 1)).await;
    let result = sent_ok(&reply);
    assert_eq!(result.receipt, Some(messenger_ipc::Receipt::NotReadInTime));
    assert!(!b.wait_for_message("nobody reads me").await.read);
}

/// Under the documented account configuration (`messengerd --nats-permissions`), hosts
/// deliver to each other as before, and one host cannot read another's messages: not
/// through the other's consumer, not through a consumer of its own over the other's subject,
/// not by subscribing to the subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_cannot_read_another_hosts_messages_under_the_documented_permissions() {
    use messenger_nats::permissions::host_permissions;
    let (a, b) = (
        EncodedName::new("SITEA").unwrap(),
        EncodedName::new("SITEB").unwrap(),
    );
    let workgroup = EncodedName::new(WORKGROUP).unwrap();
    let users = [("sitea", "pw-a", &a), ("siteb", "pw-b", &b)]
        .map(|(user, password, host)| {
            host_permissions(host, &workgroup).server_user_entry(user, password)
        })
        .join(",\n");
    let Some(nats) =
        NatsServer::start_with(&format!("authorization {{ users = [\n{users}\n] }}\n"))
    else {
        return;
    };
    let as_user = |computer: &'static str, user: &'static str, password: &'static str| {
        let url = nats.url.clone();
        Options::configured(move |c| {
            c.computer_name = Some(computer.into());
            c.nats = Some(NatsTable {
                servers: vec![url],
                replicas: Some(1),
                user: Some(user.into()),
                password: Some(password.into()),
                ..NatsTable::default()
            });
        })
    };
    let site_a = TestService::start(as_user("SITEA", "sitea", "pw-a")).await;
    let site_b = TestService::start(as_user("SITEB", "siteb", "pw-b")).await;

    // SITEA's credentials, in another program, trying to listen in on SITEB.
    let mut settings = NatsSettings::new(vec![nats.url.clone()]);
    settings.replicas = 1;
    settings.credentials = messenger_nats::config::Credentials::UserPassword {
        user: "sitea".into(),
        password: "pw-a".into(),
    };
    let snoop = Nats::connect_host(settings, &a)
        .await
        .expect("connect as sitea");
    let mut tap = snoop
        .client()
        .subscribe(b.host_subject())
        .await
        .expect("the subscription is sent");

    let directory = {
        let (_nats, directory) = observe_as(&nats.url, "sitea", "pw-a", &a).await;
        directory
    };
    let deadline = Instant::now() + WAIT;
    while !matches!(directory.holder("SITEB").await, Ok(Some(_))) {
        assert!(Instant::now() < deadline, "SITEB never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = control_call(&site_a.control(), send_to("SITEB", "for siteb only")).await;
    sent_ok(&reply);
    assert_eq!(
        site_b
            .wait_for_message("for siteb only")
            .await
            .message
            .transport,
        TransportKind::Nats
    );
    let reply = control_call(
        &site_a.control(),
        broadcast(None, None, "for the workgroup"),
    )
    .await;
    sent_ok(&reply);
    site_b.wait_for_message("for the workgroup").await;

    // Published, stored and delivered: a subscription that could see it would have by now.
    assert!(
        tokio::time::timeout(
            Duration::from_millis(500),
            futures_lite::StreamExt::next(&mut tap)
        )
        .await
        .is_err(),
        "a core subscription to another host's subject received its message"
    );
    let js = snoop.jetstream();
    assert!(
        js.get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
            b.host_consumer(),
            messenger_nats::subject::STREAM,
        )
        .await
        .is_err(),
        "SITEA reached SITEB's consumer"
    );
    let stream = js.get_stream(messenger_nats::subject::STREAM).await;
    if let Ok(stream) = stream {
        let stolen = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                durable_name: Some(a.host_consumer()),
                filter_subject: b.host_subject(),
                ..Default::default()
            })
            .await;
        assert!(
            stolen.is_err(),
            "SITEA made a consumer over SITEB's subject"
        );
    }
    drop(site_a);
}

/// A connection to the cluster at `url` as `user`, with the directory, as the host `host`.
async fn observe_as(
    url: &str,
    user: &str,
    password: &str,
    host: &EncodedName,
) -> (Nats, Directory) {
    let mut settings = NatsSettings::new(vec![url.to_owned()]);
    settings.replicas = 1;
    settings.credentials = messenger_nats::config::Credentials::UserPassword {
        user: user.into(),
        password: password.into(),
    };
    let nats = Nats::connect_host(settings, host).await.expect("connect");
    let directory = Directory::open(&nats, host.clone())
        .await
        .expect("open the directory");
    (nats, directory)
}

/// `messenger send --time` across the organisation: the message expires on the receiving
/// host, and a sender who waits learns that it expired unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_with_an_expiry_expires_on_the_receiving_host() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let a = TestService::start(on_nats("SITEA", nats.url.clone())).await;
    let b = TestService::start(on_nats("SITEB", nats.url.clone())).await;
    wait_until_held(&nats.url, "SITEB", "SITEB").await;
    let reply = control_call(
        &a.control(),
        Request::Send {
            target: SendTarget::Name {
                name: "SITEB".into(),
            },
            from: None,
            text: "read me within a second".into(),
            allow_long: false,
            wait_secs: Some(30),
            expire_secs: Some(1),
        },
    )
    .await;
    let result = sent_ok(&reply);
    assert_eq!(result.receipt, Some(messenger_ipc::Receipt::Expired));
    assert_eq!(result.notice, None, "the expiry went with the message");
    let stored = b.wait_for_message("read me within a second").await;
    assert!(stored.expires_at.is_some());
    assert!(stored.expired, "marked expired on the receiving host");
    assert!(!stored.read);
}
