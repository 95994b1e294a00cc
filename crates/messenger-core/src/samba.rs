//! What this service needs to know of a Samba installation on the same host: the `[global]`
//! parameters of its `smb.conf` that decide the workgroup and which account runs smbd's
//! `message command`.
//!
//! The reader follows smb.conf(5) as far as those parameters need: `#` and `;` start comment
//! lines, a line ending in `\` continues on the next, section names and parameter names are
//! case-insensitive and spaces inside parameter names do not count (`guest account` and
//! `guestaccount` are one parameter), parameters before the first section are global, and a
//! later setting of a parameter overrides an earlier one. `include =` is not followed: the
//! parameters read here are set in the main file on every installation we know of, and a
//! configuration reader that opens paths named inside a file is one more thing that can be
//! pointed somewhere it should not.
//!
//! It also reads `smbstatus`, which lists the clients holding an SMB session with smbd: the
//! recipients `NET SEND /USERS` reaches besides the users logged in here. Its output is
//! hostile input (user and machine names are whatever a client sent), read within bounds:
//! [`MAX_SMBSTATUS_OUTPUT`] bytes, [`MAX_SMB_SESSIONS`] sessions, [`MAX_SMB_NAME_LEN`]
//! characters a name.

use std::net::IpAddr;
use std::path::Path;

/// Where Samba keeps its configuration on Debian and most other systems.
pub const DEFAULT_SAMBA_CONFIG: &str = "/etc/samba/smb.conf";
/// The account smbd runs `message command` as when smb.conf names none (smb.conf(5),
/// `guest account`).
pub const DEFAULT_SAMBA_GUEST_ACCOUNT: &str = "nobody";
/// Longest smb.conf read. Real ones are a few kilobytes; a larger file is not a Samba
/// configuration we should be parsing at all.
pub const MAX_SAMBA_CONFIG_LEN: u64 = 1024 * 1024;

/// Most SMB sessions `/USERS` sends to. Each is one directed message over its own
/// connection; a file server with more clients than this is not one to announce to a
/// session at a time, and the bound keeps a hostile or broken listing from making the
/// sender open connections without end.
pub const MAX_SMB_SESSIONS: usize = 1024;
/// Longest `smbstatus` output read. A session takes about 600 bytes of JSON (identifiers,
/// dialect, encryption and signing) and 150 of plain text, so [`MAX_SMB_SESSIONS`] fit
/// several times over; anything longer is cut there, and a cut JSON listing does not parse.
pub const MAX_SMBSTATUS_OUTPUT: usize = 4 * 1024 * 1024;
/// Longest user or machine name taken from `smbstatus`, in characters. Windows account
/// names are at most 256 characters (with the domain, `DOMAIN\user` fits), NetBIOS names
/// 15; a session with a longer name is not a real one and is skipped.
pub const MAX_SMB_NAME_LEN: usize = 256;

/// One client's SMB session with smbd, as `smbstatus` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SmbSession {
    /// The client's address.
    pub address: IpAddr,
    /// The client's NetBIOS name, when it gave one (`smbstatus` shows its address otherwise;
    /// then this is empty and the name must be asked of the client).
    pub machine: String,
    /// The account the session is authenticated as (`nobody` or the guest account for guests).
    pub user: String,
}

/// The sessions of an `smbstatus` listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmbSessions {
    /// The sessions: one per client address, machine and user (two sessions of one user from
    /// one machine are one recipient), sorted, at most [`MAX_SMB_SESSIONS`].
    pub sessions: Vec<SmbSession>,
    /// Sessions left out because there were more than [`MAX_SMB_SESSIONS`].
    pub left_out: usize,
    /// Entries that were not a usable session (no address, a name too long or with control
    /// characters).
    pub skipped: usize,
}

/// Why an `smbstatus --json` listing could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmbstatusError {
    /// Not JSON (an older Samba without `--json` prints its usage or plain text).
    #[error("smbstatus output is not JSON: {0}")]
    NotJson(String),
    /// JSON without a `sessions` object.
    #[error("smbstatus output has no sessions object")]
    NoSessions,
}

impl SmbSessions {
    /// Reads `smbstatus --json -b` output (Samba 4.16 and later): the `sessions` object, each
    /// value with `username`, `remote_machine` and `hostname` (`ipv4:ADDR:PORT`).
    pub fn from_json(text: &str) -> Result<Self, SmbstatusError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SmbstatusError::NotJson(e.to_string()))?;
        let sessions = value
            .get("sessions")
            .and_then(serde_json::Value::as_object)
            .ok_or(SmbstatusError::NoSessions)?;
        let mut listing = Collector::default();
        for session in sessions.values() {
            let field = |name| session.get(name).and_then(serde_json::Value::as_str);
            let parsed = match (
                field("username"),
                field("remote_machine"),
                field("hostname"),
            ) {
                (Some(user), Some(machine), Some(host)) => session_of(user, machine, host),
                _ => None,
            };
            listing.push(parsed);
        }
        Ok(listing.finish())
    }

    /// Reads plain `smbstatus -b` output, for Samba without `--json`: after the dashed line,
    /// one session a line as `PID USERNAME GROUP MACHINE (ipv4:ADDR:PORT) ...`, where MACHINE
    /// is the client's NetBIOS name or its address. Columns are separated by spaces, so a
    /// user name with a space in it cannot be told from the group: such lines are skipped
    /// (the JSON listing has no such ambiguity).
    pub fn from_plain(text: &str) -> Self {
        let mut listing = Collector::default();
        let mut in_table = false;
        for line in text.lines() {
            let line = line.trim();
            if !in_table {
                in_table = !line.is_empty() && line.chars().all(|c| c == '-');
                continue;
            }
            if line.is_empty() {
                // The sessions table ends at the first blank line after it.
                break;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(at) = words
                .iter()
                .position(|w| w.starts_with("(ipv4:") || w.starts_with("(ipv6:"))
            else {
                listing.push(None);
                continue;
            };
            // PID, user, group, machine: exactly four words before the address.
            let parsed = match words[..at] {
                [pid, user, _group, machine] if pid.bytes().all(|b| b.is_ascii_digit()) => {
                    let host = words[at]
                        .strip_prefix('(')
                        .and_then(|h| h.strip_suffix(')'))
                        .unwrap_or("");
                    session_of(user, machine, host)
                }
                _ => None,
            };
            listing.push(parsed);
        }
        listing.finish()
    }
}

/// Gathers sessions within [`MAX_SMB_SESSIONS`].
#[derive(Default)]
struct Collector {
    sessions: std::collections::BTreeSet<SmbSession>,
    left_out: usize,
    skipped: usize,
}

impl Collector {
    fn push(&mut self, session: Option<SmbSession>) {
        match session {
            None => self.skipped += 1,
            Some(s) if self.sessions.contains(&s) => {}
            Some(_) if self.sessions.len() >= MAX_SMB_SESSIONS => self.left_out += 1,
            Some(s) => {
                self.sessions.insert(s);
            }
        }
    }

    fn finish(self) -> SmbSessions {
        SmbSessions {
            sessions: self.sessions.into_iter().collect(),
            left_out: self.left_out,
            skipped: self.skipped,
        }
    }
}

/// A session from its user, machine and `hostname` (`ipv4:ADDR:PORT` or `ipv6:ADDR:PORT`),
/// or `None` if any of them is not usable.
fn session_of(user: &str, machine: &str, host: &str) -> Option<SmbSession> {
    let address = host_address(host)?;
    let usable = |name: &str| {
        !name.is_empty()
            && name.chars().count() <= MAX_SMB_NAME_LEN
            && !name.chars().any(char::is_control)
    };
    if !usable(user) || !(machine.is_empty() || usable(machine)) {
        return None;
    }
    // smbstatus shows the address where the client gave no NetBIOS name.
    let machine = if machine.parse::<IpAddr>().is_ok() {
        String::new()
    } else {
        machine.to_owned()
    };
    Some(SmbSession {
        address,
        machine,
        user: user.to_owned(),
    })
}

/// The address of a `hostname` field: `ipv4:192.0.2.5:50000`, `ipv6:[2001:db8::5]:50000`
/// or `ipv6:2001:db8::5:50000` (the port is the last colon's).
fn host_address(host: &str) -> Option<IpAddr> {
    let (family, rest) = host.split_once(':')?;
    let (addr, port) = rest.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    match family {
        "ipv4" => addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
        "ipv6" => addr.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        _ => None,
    }
}

/// The `[global]` parameters of an smb.conf that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SambaGlobals {
    /// `workgroup`: the workgroup or domain Samba's hosts belong to.
    pub workgroup: Option<String>,
    /// `guest account`: the account smbd runs `message command` as.
    pub guest_account: Option<String>,
    /// `netbios name`: the host's NetBIOS name as Samba registers it.
    pub netbios_name: Option<String>,
}

impl SambaGlobals {
    /// Reads the globals of the smb.conf at `path`; `None` when there is no such file or it
    /// cannot be read (no Samba here, as far as we are concerned).
    pub fn read(path: &Path) -> Option<Self> {
        use std::io::Read;
        let file = std::fs::File::open(path).ok()?;
        let mut text = String::new();
        file.take(MAX_SAMBA_CONFIG_LEN)
            .read_to_string(&mut text)
            .ok()?;
        Some(Self::parse(&text))
    }

    /// Parses the text of an smb.conf.
    pub fn parse(text: &str) -> Self {
        let mut globals = Self::default();
        let mut in_global = true;
        for line in logical_lines(text) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let section = rest.split(']').next().unwrap_or("").trim();
                in_global = section.eq_ignore_ascii_case("global");
                continue;
            }
            if !in_global {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key: String = key
                .chars()
                .filter(|c| !c.is_whitespace())
                .flat_map(char::to_lowercase)
                .collect();
            let value = value.trim();
            let value = (!value.is_empty()).then(|| value.to_owned());
            match key.as_str() {
                "workgroup" => globals.workgroup = value,
                "guestaccount" => globals.guest_account = value,
                "netbiosname" => globals.netbios_name = value,
                _ => {}
            }
        }
        globals
    }

    /// The account smbd runs `message command` as.
    pub fn guest_account(&self) -> &str {
        self.guest_account
            .as_deref()
            .unwrap_or(DEFAULT_SAMBA_GUEST_ACCOUNT)
    }
}

/// The file's lines with `\`-continuations joined, as smb.conf(5) reads them.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match raw.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(raw);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// The invariants of every listing, whatever the input: bounded, sorted and unique, every
/// name usable (for the fuzz target and the tests).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn check_listing(listing: &SmbSessions) {
    assert!(listing.sessions.len() <= MAX_SMB_SESSIONS);
    assert!(listing.sessions.windows(2).all(|w| w[0] < w[1]));
    for s in &listing.sessions {
        for name in [&s.user, &s.machine] {
            assert!(name.chars().count() <= MAX_SMB_NAME_LEN);
            assert!(!name.chars().any(char::is_control), "{name:?}");
        }
        assert!(!s.user.is_empty());
        assert!(s.machine.parse::<IpAddr>().is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_global_section_as_smbd_does() {
        let conf = "\
# a comment = ignored
; another = ignored
   workgroup = OUTSIDE_GLOBAL
[Global]
  Work Group = SALES
  guest account = smbguest
  netbios name = FILESRV
[homes]
  workgroup = NOT_GLOBAL
  guest account = homeguest
";
        let g = SambaGlobals::parse(conf);
        assert_eq!(g.workgroup.as_deref(), Some("SALES"));
        assert_eq!(g.guest_account(), "smbguest");
        assert_eq!(g.netbios_name.as_deref(), Some("FILESRV"));
    }

    #[test]
    fn parameters_before_any_section_are_global_and_later_ones_win() {
        let g = SambaGlobals::parse("workgroup = FIRST\n[global]\nworkgroup = SECOND\n");
        assert_eq!(g.workgroup.as_deref(), Some("SECOND"));
        let g = SambaGlobals::parse("workgroup = ONLY\n");
        assert_eq!(g.workgroup.as_deref(), Some("ONLY"));
    }

    #[test]
    fn continuation_lines_and_crlf_are_joined() {
        let g = SambaGlobals::parse("[global]\r\nwork\\\ngroup = JOINED\r\n");
        assert_eq!(g.workgroup.as_deref(), Some("JOINED"));
    }

    #[test]
    fn no_guest_account_means_nobody_and_empty_values_are_unset() {
        let g = SambaGlobals::parse("[global]\nworkgroup =\n");
        assert_eq!(g.workgroup, None);
        assert_eq!(g.guest_account(), "nobody");
    }

    #[test]
    fn a_missing_file_is_no_samba() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SambaGlobals::read(&dir.path().join("smb.conf")), None);
        let path = dir.path().join("smb.conf");
        std::fs::write(&path, "[global]\nworkgroup = TESTGROUP\n").unwrap();
        assert_eq!(
            SambaGlobals::read(&path).unwrap().workgroup.as_deref(),
            Some("TESTGROUP")
        );
    }

    /// `smbstatus --json -b` of Samba 4.17 with two clients, one of which gave no NetBIOS
    /// name, one session twice, and entries that are not usable sessions.
    const JSON: &str = r#"{"timestamp": "2026-12-04T15:00:00.000000+0000",
      "version": "4.17.12-Debian", "smb_conf": "/etc/samba/smb.conf",
      "sessions": {
        "3781012337": {"session_id": "3781012337",
          "server_id": {"pid": "4242", "task_id": "0", "vnn": "4294967295", "unique_id": "1"},
          "uid": 1000, "gid": 1000, "username": "alice", "groupname": "alice",
          "remote_machine": "CLIENT1", "hostname": "ipv4:10.0.0.11:49152",
          "session_dialect": "SMB3_11",
          "encryption": {"cipher": "", "degree": "none"},
          "signing": {"cipher": "AES-128-GMAC", "degree": "partial"}},
        "3781012338": {"session_id": "3781012338", "username": "alice",
          "remote_machine": "CLIENT1", "hostname": "ipv4:10.0.0.11:49153"},
        "12": {"username": "bob", "remote_machine": "10.0.0.12",
          "hostname": "ipv4:10.0.0.12:40000"},
        "13": {"username": "eve\u001b]0;pwned\u0007", "remote_machine": "X",
          "hostname": "ipv4:10.0.0.13:1"},
        "14": {"username": "nohost", "remote_machine": "Y"},
        "15": {"username": 7, "remote_machine": "Z", "hostname": "ipv4:10.0.0.15:1"},
        "16": {"username": "v6", "remote_machine": "V6PC", "hostname": "ipv6:[2001:db8::5]:445"}
      }}"#;

    fn session(addr: &str, machine: &str, user: &str) -> SmbSession {
        SmbSession {
            address: addr.parse().unwrap(),
            machine: machine.to_owned(),
            user: user.to_owned(),
        }
    }

    #[test]
    fn json_sessions_are_read_once_per_client_and_user() {
        let listing = SmbSessions::from_json(JSON).unwrap();
        assert_eq!(
            listing.sessions,
            vec![
                session("10.0.0.11", "CLIENT1", "alice"),
                // No NetBIOS name given: smbstatus shows the address, which is not a name.
                session("10.0.0.12", "", "bob"),
                session("2001:db8::5", "V6PC", "v6"),
            ]
        );
        // Control characters, no hostname, a user that is not a string.
        assert_eq!(listing.skipped, 3);
        assert_eq!(listing.left_out, 0);
    }

    #[test]
    fn json_without_sessions_or_not_json_is_an_error() {
        // Samba before 4.16 does not know --json and prints its usage.
        assert!(matches!(
            SmbSessions::from_json("smbstatus: unrecognized option '--json'\nUsage: ..."),
            Err(SmbstatusError::NotJson(_))
        ));
        // smbstatus as a user other than root prints the header only.
        assert_eq!(
            SmbSessions::from_json(r#"{"version": "4.17.12-Debian"}"#),
            Err(SmbstatusError::NoSessions)
        );
        assert_eq!(
            SmbSessions::from_json(r#"{"sessions": {}}"#).unwrap(),
            SmbSessions::default()
        );
    }

    /// `smbstatus -b` of Samba 4.17.
    const PLAIN: &str = "
Samba version 4.17.12-Debian
PID     Username     Group        Machine                                   Protocol Version  Encryption           Signing              
----------------------------------------------------------------------------------------------------------------------------------------
4242    alice        alice        CLIENT1 (ipv4:10.0.0.11:49152)            SMB3_11           -                    partial(AES-128-GMAC)
4243    bob          users        10.0.0.12 (ipv4:10.0.0.12:40000)          NT1               -                    -                    
4244    john smith   users        PC3 (ipv4:10.0.0.13:40000)                SMB3_11           -                    -                    
garbage line

Service      pid     Machine       Connected at                     Encryption   Signing     
4245    carol        carol        PC4 (ipv4:10.0.0.14:40000)                SMB3_11           -                    -                    
";

    #[test]
    fn plain_sessions_are_read_from_the_first_table_only() {
        let listing = SmbSessions::from_plain(PLAIN);
        assert_eq!(
            listing.sessions,
            vec![
                session("10.0.0.11", "CLIENT1", "alice"),
                session("10.0.0.12", "", "bob"),
            ]
        );
        // A user name with a space, and a line that is no session.
        assert_eq!(listing.skipped, 2);
        assert_eq!(SmbSessions::from_plain(""), SmbSessions::default());
    }

    #[test]
    fn no_more_than_max_sessions_are_taken() {
        let mut json = String::from(r#"{"sessions": {"#);
        for i in 0..MAX_SMB_SESSIONS + 5 {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!(
                r#""{i}": {{"username": "u{i}", "remote_machine": "PC", "hostname": "ipv4:10.1.{}.{}:1"}}"#,
                i / 256,
                i % 256
            ));
        }
        json.push_str("}}");
        let listing = SmbSessions::from_json(&json).unwrap();
        assert_eq!(listing.sessions.len(), MAX_SMB_SESSIONS);
        assert_eq!(listing.left_out, 5);
    }

    #[test]
    fn names_too_long_and_odd_hostnames_are_skipped() {
        let long = "a".repeat(MAX_SMB_NAME_LEN + 1);
        assert_eq!(session_of(&long, "PC", "ipv4:10.0.0.1:1"), None);
        assert!(session_of(&long[1..], "PC", "ipv4:10.0.0.1:1").is_some());
        for host in [
            "",
            "ipv4",
            "ipv4:10.0.0.1",
            "ipv4:10.0.0.1:port",
            "ipv4:300.0.0.1:1",
            "unix:/tmp/x:1",
            "ipv6:10.0.0.1:1",
        ] {
            assert_eq!(session_of("u", "PC", host), None, "{host:?}");
        }
        assert_eq!(
            host_address("ipv6:2001:db8::5:445"),
            Some("2001:db8::5".parse().unwrap())
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_read_without_panic_and_within_bounds(text in ".{0,400}") {
            for listing in [SmbSessions::from_plain(&text), SmbSessions::from_json(&text).unwrap_or_default()] {
                crate::samba::check_listing(&listing);
            }
        }
    }
}
