//! `/USERS` on a host that runs Samba: besides the users logged in here, every client with an
//! SMB session to smbd, which is whom `NET SEND /USERS` on a Windows file server reaches ("all
//! users who have a session with the server").
//!
//! The sessions come from `smbstatus` (its JSON listing where Samba has `--json`, else the
//! plain one; see `messenger_core::samba`), run with the configuration's `samba_config`.
//! smbstatus works only as root, so only root reaches them. Each session gets one copy, sent
//! straight to the client's address with the client's computer name and the session's user
//! as the recipient (`messenger_net::send_to_session`); sessions from this computer itself
//! are left out, as its users have the message already.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use messenger_core::config::Config;
use messenger_core::nerr;
use messenger_core::samba::{SmbSession, SmbSessions, MAX_SMBSTATUS_OUTPUT, MAX_SMB_SESSIONS};
use messenger_ipc::{IpcError, SendResult};
use messenger_net::{LengthLimit, Settings};
use tokio::io::AsyncReadExt;

/// Where smbstatus is looked for, in order: Debian's and other distributions' place, then
/// the places of a Samba built from source. Never `$PATH`: this runs as root.
const SMBSTATUS_PATHS: [&str; 3] = [
    "/usr/bin/smbstatus",
    "/usr/local/bin/smbstatus",
    "/usr/local/samba/bin/smbstatus",
];
/// Where Samba's file server, smbd, is looked for, in the same places. A host with Samba's
/// client tools only (smbclient's packages bring an smb.conf too) runs no smbd, so it has no
/// SMB sessions to reach.
const SMBD_PATHS: [&str; 3] = [
    "/usr/sbin/smbd",
    "/usr/local/sbin/smbd",
    "/usr/local/samba/sbin/smbd",
];
/// Longest wait for smbstatus. It reads a few local databases; one that takes longer is
/// stuck on a lock, and `/USERS` still reaches the local users.
const SMBSTATUS_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages to session clients in flight at once: enough that clients that do not answer
/// (each costs the connect timeout) do not hold up the others for long, few enough not to
/// flood the network or the file server.
const SEND_CONCURRENCY: usize = 16;

/// What `/USERS` did with the SMB sessions.
#[derive(Debug, Default)]
pub struct SmbOutcome {
    /// One result per session client (or one failure when the sessions could not be listed).
    pub results: Vec<SendResult>,
    /// Sessions not sent to because there were more than [`MAX_SMB_SESSIONS`].
    pub left_out: usize,
}

/// Whether `/USERS` should look for SMB sessions: this host is a Samba file server, with
/// Samba's configuration (`samba_config`) and smbd installed.
pub fn samba_here(config: &Config) -> bool {
    is_samba_server(&config.samba_config(), &SMBD_PATHS)
}

/// Whether `samba_config` is a file and smbd is at one of `smbd_paths`.
fn is_samba_server(samba_config: &Path, smbd_paths: &[&str]) -> bool {
    samba_config.is_file() && smbd_paths.iter().any(|p| Path::new(p).is_file())
}

/// Lists the SMB sessions and sends `text` to each client.
pub async fn send(
    config: &Config,
    computer: &str,
    from: &str,
    text: &str,
    limit: LengthLimit,
) -> SmbOutcome {
    let listing = match list_sessions(&config.samba_config()).await {
        Ok(listing) => listing,
        Err(message) => {
            return SmbOutcome {
                results: vec![SendResult {
                    recipient: "the SMB sessions of this server".to_owned(),
                    error: Some(IpcError {
                        code: nerr::NERR_NETWORK_ERROR,
                        message,
                    }),
                    receipt: None,
                    notice: None,
                }],
                left_out: 0,
            }
        }
    };
    let settings = match Settings::from_config(config, computer) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            return SmbOutcome {
                results: vec![SendResult {
                    recipient: "the SMB sessions of this server".to_owned(),
                    error: Some(IpcError {
                        code: nerr::NERR_NETWORK_ERROR,
                        message: e.to_string(),
                    }),
                    receipt: None,
                    notice: None,
                }],
                left_out: listing.left_out,
            }
        }
    };
    let own = own_addresses(&settings);
    let slots = Arc::new(tokio::sync::Semaphore::new(SEND_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, session) in listing.sessions.into_iter().enumerate() {
        if is_this_computer(session.address, &own) {
            continue;
        }
        let (settings, slots) = (Arc::clone(&settings), Arc::clone(&slots));
        let (from, text) = (from.to_owned(), text.to_owned());
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            (
                index,
                send_one(&settings, &session, &from, &text, limit).await,
            )
        });
    }
    let mut results = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(result) => results.push(result),
            Err(e) => propagate_panic(e),
        }
    }
    results.sort_by_key(|(index, _)| *index);
    SmbOutcome {
        results: results.into_iter().map(|(_, r)| r).collect(),
        left_out: listing.left_out,
    }
}

/// A sending task that panicked is a bug; carry the panic on.
fn propagate_panic(e: tokio::task::JoinError) {
    if e.is_panic() {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn send_one(
    settings: &Settings,
    session: &SmbSession,
    from: &str,
    text: &str,
    limit: LengthLimit,
) -> SendResult {
    let recipient = shown(session);
    let IpAddr::V4(addr) = session.address else {
        return SendResult {
            recipient,
            error: Some(IpcError {
                code: nerr::NERR_NETWORK_ERROR,
                message: "the client is connected over IPv6; NetBIOS messages go over IPv4 only"
                    .to_owned(),
            }),
            receipt: None,
            notice: None,
        };
    };
    let sent = messenger_net::send_to_session(
        settings,
        addr,
        &session.machine,
        &session.user,
        from,
        text,
        limit,
    )
    .await;
    SendResult {
        recipient,
        error: sent.err().map(|e| IpcError {
            code: e.nerr(),
            message: e.to_string(),
        }),
        receipt: None,
        notice: None,
    }
}

/// How a session client is named to the sender: `ALICE on CLIENT1 (10.0.0.11)`, or
/// `BOB at 10.0.0.12` when the client gave no computer name.
pub fn shown(session: &SmbSession) -> String {
    if session.machine.is_empty() {
        format!("{} at {}", session.user, session.address)
    } else {
        format!(
            "{} on {} ({})",
            session.user,
            session.machine.to_uppercase(),
            session.address
        )
    }
}

fn own_addresses(settings: &Settings) -> Vec<Ipv4Addr> {
    settings.interfaces.iter().map(|i| i.addr).collect()
}

/// Whether a session comes from this computer (loopback or one of its addresses).
fn is_this_computer(address: IpAddr, own: &[Ipv4Addr]) -> bool {
    match address {
        IpAddr::V4(a) => a.is_loopback() || own.contains(&a),
        IpAddr::V6(a) => a.is_loopback(),
    }
}

/// Runs smbstatus for the sessions of the smbd configured by `samba_config`: the JSON listing,
/// else (Samba before 4.16 has no `--json`) the plain one.
async fn list_sessions(samba_config: &Path) -> Result<SmbSessions, String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(
            "only root can reach the SMB sessions of this server (smbstatus works \
                    only as root)"
                .to_owned(),
        );
    }
    let Some(program) = SMBSTATUS_PATHS.iter().map(Path::new).find(|p| p.is_file()) else {
        return Err(format!(
            "smbstatus is not installed (looked in {}); package samba has it",
            SMBSTATUS_PATHS.join(", ")
        ));
    };
    let configfile = format!("--configfile={}", samba_config.display());
    let json = run(program, &[&configfile, "--json", "-b"]).await?;
    if let Ok(listing) = SmbSessions::from_json(&json) {
        return Ok(listing);
    }
    let plain = run(program, &[&configfile, "-b"]).await?;
    Ok(SmbSessions::from_plain(&plain))
}

/// Runs `program ARGS` with a clean environment and returns what it printed, at most
/// [`MAX_SMBSTATUS_OUTPUT`] bytes, within [`SMBSTATUS_TIMEOUT`]. A non-zero exit status is
/// not an error by itself: older smbstatus exits 1 on an unknown option, which the caller
/// recognises from the output.
async fn run(program: &Path, args: &[&str]) -> Result<String, String> {
    let failed = |what: String| format!("{} {}: {what}", program.display(), args.join(" "));
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let read = async {
        let mut bytes = Vec::new();
        (&mut stdout)
            .take(MAX_SMBSTATUS_OUTPUT as u64)
            .read_to_end(&mut bytes)
            .await?;
        drop(stdout);
        child.wait().await?;
        Ok::<_, std::io::Error>(bytes)
    };
    let bytes = match tokio::time::timeout(SMBSTATUS_TIMEOUT, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Err(_) => return Err(failed(format!("no answer in {SMBSTATUS_TIMEOUT:?}"))),
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The line saying how many sessions were left out, if any.
pub fn left_out_note(left_out: usize) -> Option<String> {
    (left_out > 0).then(|| {
        format!(
            "{left_out} more SMB sessions were not sent to: /USERS reaches at most \
             {MAX_SMB_SESSIONS}."
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host with Samba's client tools has an smb.conf but no smbd: `/USERS` there reaches
    /// the local users and looks for no SMB sessions (whose listing would fail without the
    /// server's smbstatus).
    #[test]
    fn only_a_host_with_smbd_and_its_configuration_is_a_samba_server() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("smb.conf");
        let smbd = dir.path().join("smbd");
        let smbd = smbd.to_str().unwrap();
        std::fs::write(&conf, "[global]\n").unwrap();
        assert!(!is_samba_server(&conf, &[smbd]), "client tools only");
        std::fs::write(smbd, "").unwrap();
        assert!(is_samba_server(&conf, &["/nonexistent/smbd", smbd]));
        std::fs::remove_file(&conf).unwrap();
        assert!(!is_samba_server(&conf, &[smbd]), "no configuration");
        std::fs::create_dir(&conf).unwrap();
        assert!(
            !is_samba_server(&conf, &[smbd]),
            "a directory is no configuration"
        );
    }

    fn session(addr: &str, machine: &str, user: &str) -> SmbSession {
        SmbSession {
            address: addr.parse().unwrap(),
            machine: machine.to_owned(),
            user: user.to_owned(),
        }
    }

    #[test]
    fn clients_are_shown_with_user_machine_and_address() {
        assert_eq!(
            shown(&session("10.0.0.11", "client1", "alice")),
            "alice on CLIENT1 (10.0.0.11)"
        );
        assert_eq!(shown(&session("10.0.0.12", "", "bob")), "bob at 10.0.0.12");
    }

    #[test]
    fn sessions_from_this_computer_are_not_sent_to() {
        let own = [Ipv4Addr::new(10, 0, 0, 1)];
        assert!(is_this_computer("127.0.0.1".parse().unwrap(), &own));
        assert!(is_this_computer("10.0.0.1".parse().unwrap(), &own));
        assert!(is_this_computer("::1".parse().unwrap(), &own));
        assert!(!is_this_computer("10.0.0.2".parse().unwrap(), &own));
    }

    #[tokio::test]
    async fn an_ipv6_client_is_a_failed_recipient() {
        let settings = Settings::from_config(&Config::default(), "SERVER").unwrap();
        let r = send_one(
            &settings,
            &session("2001:db8::5", "PC", "carol"),
            "admin",
            "x",
            LengthLimit::Windows,
        )
        .await;
        assert_eq!(r.recipient, "carol on PC (2001:db8::5)");
        assert!(r.error.unwrap().message.contains("IPv4 only"));
    }
}
