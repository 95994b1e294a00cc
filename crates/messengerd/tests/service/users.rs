//! `/USERS` as Windows did it, one copy per login session: the sender's outcome has a line
//! for every session reached (user, terminal, remote host), while each user's inbox holds the
//! message once. Sessions come from utmp here; `logind` tests the same with desktop sessions.

use messenger_ipc::{Reply, Request, SendTarget};

use crate::control::skip_unless_root;
use crate::harness::*;

/// `ut_host` of a utmp record (utmp(5)): `encode_record` leaves it empty.
const UTMP_HOST_OFFSET: usize = 76;

/// Writes a utmp file with the sessions `(user, terminal, remote host)`. The terminals are
/// ones no machine has, so that nothing is written on a real terminal.
fn write_sessions(path: &std::path::Path, sessions: &[(&str, &str, &str)]) {
    let mut data = Vec::new();
    for (i, (user, line, host)) in sessions.iter().enumerate() {
        let mut record = messengerd::host::utmp::encode_record(user, line, 2000 + i as i32);
        record[UTMP_HOST_OFFSET..UTMP_HOST_OFFSET + host.len()].copy_from_slice(host.as_bytes());
        data.extend_from_slice(&record);
    }
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The recipients of a send's reply, sorted, with whether each got it.
pub(crate) fn sent_to(reply: Reply) -> Vec<(String, bool)> {
    let Reply::Sent { results } = reply else {
        panic!("expected a send result, got {reply:?}")
    };
    let mut lines: Vec<(String, bool)> = results
        .into_iter()
        .map(|r| (r.recipient, r.error.is_none()))
        .collect();
    lines.sort();
    lines
}

pub(crate) fn to_users(text: &str) -> Request {
    Request::Send {
        target: SendTarget::Users,
        from: None,
        text: text.into(),
        allow_long: false,
        wait_secs: None,
        expire_secs: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_reports_every_session_and_stores_one_copy_per_user() {
    if skip_unless_root("users_reports_every_session_and_stores_one_copy_per_user") {
        return;
    }
    let svc = TestService::start(Options::default()).await;
    write_sessions(
        &svc.utmp(),
        &[
            ("nobody", "pts/9901", ""),
            ("daemon", "pts/9903", ""),
            ("nobody", "pts/9902", "192.0.2.7"),
        ],
    );
    svc.wait_for_name("NOBODY").await;
    svc.wait_for_name("DAEMON").await;
    let reply = control_call(&svc.control(), to_users("log off now, please")).await;
    assert_eq!(
        sent_to(reply),
        vec![
            ("daemon on pts/9903".to_owned(), true),
            ("nobody on pts/9901".to_owned(), true),
            ("nobody on pts/9902 (from 192.0.2.7)".to_owned(), true),
        ]
    );
    // One message, one copy in each user's inbox.
    let stored: Vec<_> = svc
        .messages()
        .await
        .into_iter()
        .filter(|m| m.message.text == "log off now, please")
        .collect();
    assert_eq!(stored.len(), 1);
    let mut recipients = stored[0].message.recipients.clone();
    recipients.sort();
    assert_eq!(recipients, vec!["daemon", "nobody"]);
}
