//! The control socket's permission rules, checked with a caller that really is another user:
//! this test binary runs itself again as `nobody` (uid 65534) to make the calls, so the
//! service sees that uid in SO_PEERCRED. Needs root to switch users; without it the tests
//! say so and pass without checking anything.

use std::os::unix::process::CommandExt;
use std::path::Path;

use messenger_ipc::{Client, Reply, Request, SendTarget};

use crate::harness::*;

/// The user the calls are made as.
const NOBODY_UID: u32 = 65534;
/// Its group (`nogroup` on Debian, `nobody` elsewhere).
const NOBODY_GID: u32 = 65534;
/// Environment variable carrying the socket and the requests to the child.
const CHILD_ENV: &str = "MESSENGERD_TEST_CONTROL_CALLS";
/// Prefix of each reply line the child prints.
const REPLY_PREFIX: &str = "CONTROL-REPLY ";

/// The child's side: connects to the socket named in [`CHILD_ENV`], makes each request of the
/// following lines, and prints each reply. Does nothing when run as an ordinary test.
#[test]
#[ignore = "run by the other control tests as another user"]
fn control_client_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut lines = spec.lines();
    let socket = lines.next().expect("socket path");
    let mut client = Client::connect(Path::new(socket)).expect("connect as another user");
    for line in lines {
        let request: Request = serde_json::from_str(line).expect("request");
        let reply = client.call(&request).expect("reply");
        println!("{REPLY_PREFIX}{}", serde_json::to_string(&reply).unwrap());
    }
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Makes `requests` as `nobody` over one connection and returns the replies.
pub(crate) async fn as_nobody(socket: &Path, requests: Vec<Request>) -> Vec<Reply> {
    as_nobody_in_group(socket, NOBODY_GID, requests).await
}

/// Makes `requests` as `nobody` running with group `gid` over one connection and returns the
/// replies.
async fn as_nobody_in_group(socket: &Path, gid: u32, requests: Vec<Request>) -> Vec<Reply> {
    let mut spec = socket.display().to_string();
    for r in &requests {
        spec.push('\n');
        spec.push_str(&serde_json::to_string(r).unwrap());
    }
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "control::control_client_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, spec)
            .uid(NOBODY_UID)
            .gid(gid)
            .output()
            .expect("run the client as nobody")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client as nobody failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let replies: Vec<Reply> = stdout
        .lines()
        // The test harness may print its own words in front on the same line.
        .filter_map(|l| l.find(REPLY_PREFIX).map(|i| &l[i + REPLY_PREFIX.len()..]))
        .map(|l| serde_json::from_str(l).expect("reply json"))
        .collect();
    assert_eq!(replies.len(), requests.len(), "{stdout}");
    replies
}

async fn nobody_one(socket: &Path, request: Request) -> Reply {
    as_nobody(socket, vec![request]).await.remove(0)
}

fn error_code(reply: &Reply) -> Option<u32> {
    match reply {
        Reply::Error(e) => Some(e.code),
        Reply::Sent { results } => results
            .iter()
            .find_map(|r| r.error.as_ref().map(|e| e.code)),
        _ => None,
    }
}

pub(crate) fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!(
        "SKIPPED {test}: switching to another user needs root; the permission rules were NOT checked"
    );
    true
}

fn add(name: &str) -> Request {
    Request::NameAdd { name: name.into() }
}

fn delete(name: &str) -> Request {
    Request::NameDelete { name: name.into() }
}

fn send(target: SendTarget, from: Option<&str>, text: &str) -> Request {
    Request::Send {
        target,
        from: from.map(str::to_owned),
        text: text.into(),
        allow_long: false,
        wait_secs: None,
        expire_secs: None,
    }
}

fn to_name(name: &str) -> SendTarget {
    SendTarget::Name { name: name.into() }
}

fn inbox(all_users: bool) -> Request {
    Request::InboxList {
        unread_only: false,
        all_users,
        after_id: None,
        limit: None,
        last: None,
    }
}

fn listed(reply: Reply) -> Vec<String> {
    match reply {
        Reply::Messages { messages, .. } => messages.into_iter().map(|m| m.text).collect(),
        other => panic!("expected messages, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_manage_only_their_own_names() {
    if skip_unless_root("other_users_manage_only_their_own_names") {
        return;
    }
    let svc = TestService::start(Options::default()).await;
    let socket = svc.control();
    assert_eq!(nobody_one(&socket, add("nobodys")).await, Reply::Done);
    assert_eq!(control_call(&socket, add("rootonly")).await, Reply::Done);
    let names = control_call(&socket, Request::NameList).await;
    let Reply::Names { names } = names else {
        panic!("{names:?}")
    };
    let owner = |n: &str| {
        names
            .iter()
            .find(|i| i.name.trim() == n)
            .and_then(|i| i.owner.clone())
    };
    assert_eq!(owner("NOBODYS").as_deref(), Some("nobody"));
    assert_eq!(owner("ROOTONLY").as_deref(), Some("root"));

    let replies = as_nobody(
        &socket,
        vec![
            delete("rootonly"),
            delete(COMPUTER),
            add("nobody2"),
            delete("nobody2"),
        ],
    )
    .await;
    assert_eq!(error_code(&replies[0]), Some(5), "{:?}", replies[0]);
    assert_eq!(error_code(&replies[1]), Some(2278), "{:?}", replies[1]);
    assert_eq!(replies[2], Reply::Done);
    assert_eq!(replies[3], Reply::Done);
    assert!(svc.has_name("ROOTONLY"));
    assert!(!svc.has_name("NOBODY2"));

    // Root may delete anyone's alias.
    assert_eq!(control_call(&socket, delete("nobodys")).await, Reply::Done);
    assert!(!svc.has_name("NOBODYS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_read_only_their_own_inbox() {
    if skip_unless_root("other_users_read_only_their_own_inbox") {
        return;
    }
    let svc = TestService::start(Options::default()).await;
    let socket = svc.control();
    assert_eq!(nobody_one(&socket, add("nobodys")).await, Reply::Done);
    assert_eq!(control_call(&socket, add("rootonly")).await, Reply::Done);
    let mut s = svc.connect().await;
    for (to, text) in [
        (COMPUTER, "for everyone"),
        ("ROOTONLY", "for root"),
        ("NOBODYS", "for nobody"),
    ] {
        let r = s.call(&d0("ALICE", to, text)).await;
        assert!(r.header.status.is_success(), "{to}: {r:?}");
    }

    let replies = as_nobody(&socket, vec![inbox(false), inbox(true)]).await;
    let mut seen = listed(replies[0].clone());
    seen.sort();
    assert_eq!(seen, vec!["for everyone", "for nobody"]);
    assert_eq!(error_code(&replies[1]), Some(5), "{:?}", replies[1]);

    let mut root_own = listed(control_call(&socket, inbox(false)).await);
    root_own.sort();
    assert_eq!(root_own, vec!["for everyone", "for root"]);
    assert_eq!(listed(control_call(&socket, inbox(true)).await).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_cannot_send_as_someone_else_or_broadcast() {
    if skip_unless_root("other_users_cannot_send_as_someone_else_or_broadcast") {
        return;
    }
    let svc = TestService::start(Options::default()).await;
    write_utmp(&svc.utmp(), &["alice"]);
    svc.wait_for_name("ALICE").await;
    let socket = svc.control();
    let replies = as_nobody(
        &socket,
        vec![
            send(to_name(COMPUTER), Some("BOSS"), "forged"),
            send(SendTarget::Workgroup { name: None }, None, "to all"),
            send(
                SendTarget::Workgroup {
                    name: Some("OTHERWG".into()),
                },
                None,
                "to another domain",
            ),
            send(SendTarget::Users, None, "to every user"),
            send(to_name(COMPUTER), None, "honest"),
            send(to_name(COMPUTER), Some("nobody"), "honest, named"),
            // One's own name in capitals is one's own name: the command line agrees.
            send(to_name(COMPUTER), Some("NOBODY"), "honest, in capitals"),
        ],
    )
    .await;
    for (i, r) in replies[..4].iter().enumerate() {
        assert_eq!(error_code(r), Some(5), "request {i}: {r:?}");
    }
    assert_eq!(error_code(&replies[4]), None, "{:?}", replies[4]);
    assert_eq!(error_code(&replies[5]), None, "{:?}", replies[5]);
    assert_eq!(error_code(&replies[6]), None, "{:?}", replies[6]);
    svc.wait_for_message("honest, in capitals").await;
    let m = svc.wait_for_message("honest").await;
    assert_eq!(m.message.from, "NOBODY");
    svc.wait_for_message("honest, named").await;
    let all = texts_of(&svc).await;
    for refused in ["forged", "to all", "to another domain", "to every user"] {
        assert!(!all.contains(&refused.to_string()), "{refused} got through");
    }

    // Root may do both.
    let r = control_call(
        &socket,
        send(to_name(COMPUTER), Some("BOSS"), "from the boss"),
    )
    .await;
    assert_eq!(error_code(&r), None, "{r:?}");
    assert_eq!(
        svc.wait_for_message("from the boss").await.message.from,
        "BOSS"
    );
    let r = control_call(&socket, send(SendTarget::Users, None, "everybody")).await;
    assert_eq!(error_code(&r), None, "{r:?}");
    let m = svc.wait_for_message("everybody").await;
    assert_eq!(m.message.recipients, vec!["alice".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcast_group_may_broadcast() {
    if skip_unless_root("the_broadcast_group_may_broadcast") {
        return;
    }
    let Some(group) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(NOBODY_GID))
        .ok()
        .flatten()
    else {
        eprintln!("SKIPPED the_broadcast_group_may_broadcast: no group {NOBODY_GID}");
        return;
    };
    let name = group.name.clone();
    let svc = TestService::start(Options::configured(move |c| {
        c.policy.broadcast_group = Some(name);
    }))
    .await;
    write_utmp(&svc.utmp(), &["alice"]);
    svc.wait_for_name("ALICE").await;
    let replies = as_nobody(
        &svc.control(),
        vec![
            send(SendTarget::Users, None, "users, from the group"),
            send(
                SendTarget::Workgroup { name: None },
                None,
                "all, from the group",
            ),
        ],
    )
    .await;
    assert_eq!(error_code(&replies[0]), None, "{:?}", replies[0]);
    assert_ne!(error_code(&replies[1]), Some(5), "{:?}", replies[1]);
    svc.wait_for_message("users, from the group").await;
    // A broadcast to our own workgroup reaches our own users too.
    svc.wait_for_message("all, from the group").await;
}

/// The name of group `gid`, if it has one.
fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// Membership counts the account's groups, not only the group the process runs with: here
/// `nobody` runs with group `daemon` (1), and the broadcast group is its account's primary
/// group, which the kernel's credentials do not show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcast_group_counts_the_accounts_groups() {
    if skip_unless_root("the_broadcast_group_counts_the_accounts_groups") {
        return;
    }
    let (Some(group), Some(nobody)) = (
        group_name(NOBODY_GID),
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(NOBODY_UID))
            .ok()
            .flatten(),
    ) else {
        eprintln!("SKIPPED the_broadcast_group_counts_the_accounts_groups: no nobody account or group {NOBODY_GID}; NOT checked");
        return;
    };
    assert_eq!(nobody.gid.as_raw(), NOBODY_GID, "nobody's primary group");
    let svc = TestService::start(Options::configured(move |c| {
        c.policy.broadcast_group = Some(group);
    }))
    .await;
    write_utmp(&svc.utmp(), &["alice"]);
    svc.wait_for_name("ALICE").await;
    let replies = as_nobody_in_group(
        &svc.control(),
        1,
        vec![send(SendTarget::Users, None, "users, from a member")],
    )
    .await;
    assert_eq!(error_code(&replies[0]), None, "{:?}", replies[0]);
    svc.wait_for_message("users, from a member").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_accounts_login_names_are_not_aliases() {
    if skip_unless_root("other_accounts_login_names_are_not_aliases") {
        return;
    }
    let svc = TestService::start(Options::default()).await;
    write_utmp(&svc.utmp(), &["alice"]);
    svc.wait_for_name("ALICE").await;
    let socket = svc.control();
    let replies = as_nobody(
        &socket,
        vec![add("root"), add("ROOT"), add("alice"), add("nobody")],
    )
    .await;
    for r in &replies[..2] {
        let Reply::Error(e) = r else {
            panic!("root's name was given away: {r:?}")
        };
        assert_eq!(e.code, 5, "{e:?}");
        assert!(e.message.contains("login name of another user"), "{e:?}");
    }
    // A logged-in user's name is theirs, account or not.
    let Reply::Error(e) = &replies[2] else {
        panic!("alice's name was given away: {:?}", replies[2])
    };
    assert_eq!(e.code, 5, "{e:?}");
    assert!(e.message.contains("logged in"), "{e:?}");
    // One's own login name is fine.
    assert_eq!(replies[3], Reply::Done);
    assert!(!svc.has_name("ROOT"));
    // Root may add any name.
    assert_eq!(control_call(&socket, add("daemon")).await, Reply::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_cannot_exceed_the_per_user_cap() {
    if skip_unless_root("concurrent_adds_cannot_exceed_the_per_user_cap") {
        return;
    }
    const CAP: usize = 2;
    const CALLERS: usize = 6;
    let svc = TestService::start(Options::configured(|c| {
        c.limits.max_names_per_user = CAP;
    }))
    .await;
    let socket = svc.control();
    let calls: Vec<_> = (0..CALLERS)
        .map(|i| {
            let socket = socket.clone();
            tokio::spawn(async move { nobody_one(&socket, add(&format!("many{i}"))).await })
        })
        .collect();
    let mut done = 0;
    for call in calls {
        match call.await.unwrap() {
            Reply::Done => done += 1,
            other => assert_eq!(error_code(&other), Some(2277), "{other:?}"),
        }
    }
    assert_eq!(done, CAP);
    assert_eq!(svc.service.names().aliases_owned_by(NOBODY_UID), CAP);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_sends_are_rate_limited_per_user_and_root_is_not() {
    if skip_unless_root("local_sends_are_rate_limited_per_user_and_root_is_not") {
        return;
    }
    let svc = TestService::start(Options::configured(|c| {
        c.policy.rate_limit = true;
        c.policy.message_burst = 2;
        // One message in a thousand seconds: nothing refills while the test runs.
        c.policy.messages_per_second = 0.001;
    }))
    .await;
    let socket = svc.control();
    let replies = as_nobody(
        &socket,
        (0..4)
            .map(|i| send(to_name(COMPUTER), None, &format!("flood {i}")))
            .collect(),
    )
    .await;
    let codes: Vec<Option<u32>> = replies.iter().map(error_code).collect();
    assert_eq!(
        codes,
        vec![None, None, Some(1816), Some(1816)],
        "{replies:?}"
    );
    for i in 0..5 {
        let r = control_call(&socket, send(to_name(COMPUTER), None, &format!("root {i}"))).await;
        assert_eq!(error_code(&r), None, "{r:?}");
    }
    let texts = texts_of(&svc).await;
    assert!(!texts.contains(&"flood 2".to_string()), "{texts:?}");
}

async fn texts_of(svc: &TestService) -> Vec<String> {
    svc.messages()
        .await
        .into_iter()
        .map(|m| m.message.text)
        .collect()
}
