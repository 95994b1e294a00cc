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

use std::path::Path;

/// Where Samba keeps its configuration on Debian and most other systems.
pub const DEFAULT_SAMBA_CONFIG: &str = "/etc/samba/smb.conf";
/// The account smbd runs `message command` as when smb.conf names none (smb.conf(5),
/// `guest account`).
pub const DEFAULT_SAMBA_GUEST_ACCOUNT: &str = "nobody";
/// Longest smb.conf read. Real ones are a few kilobytes; a larger file is not a Samba
/// configuration we should be parsing at all.
pub const MAX_SAMBA_CONFIG_LEN: u64 = 1024 * 1024;

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
}
