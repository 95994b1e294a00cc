//! Turning what the user typed into arguments the clap definition parses: the `net` syntax
//! (`net start messenger`, `NET SEND`) and the Windows switches (`/ADD`, `/DOMAIN:X`,
//! `/USERS`), which are case-insensitive and may be abbreviated as on Windows (`/DEL`).
//!
//! Only positions where a switch can stand are rewritten: the recipient of `send` (a NetBIOS
//! name cannot contain `/`, so there is no ambiguity) and the words of `name`. Message text is
//! never touched, so `messenger send bob see /users` sends "see /users".

use std::ffi::OsStr;
use std::path::Path;

/// Subcommands both modes know, lowercase.
const SUBCOMMANDS: &[&str] = &[
    "send",
    "name",
    "start",
    "stop",
    "status",
    "inbox",
    "helpmsg",
    "deliver",
    "completions",
    "manpage",
    "help",
];

/// Subcommands `net` takes, lowercase. The rest of Windows' `NET` belongs to Samba's `net`.
const NET_SUBCOMMANDS: &[&str] = &["send", "name", "start", "stop", "helpmsg", "help"];

/// The one service `net start` / `net stop` know.
const SERVICE_NAME: &str = "messenger";

/// Global options that take a value, so the value is not mistaken for the subcommand.
const GLOBAL_OPTIONS_WITH_VALUE: &[&str] = &["--socket", "--config"];

/// Options of `send` that take a value.
const SEND_OPTIONS_WITH_VALUE: &[&str] = &["--from"];

/// What to do with the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// Parse these arguments (argv\[0\] included) with clap.
    Args(Vec<String>),
    /// `net` with nothing, `net help`, `net /?`: print the `net` syntax.
    NetHelp {
        /// Whether help was asked for (exit 0) rather than nothing given (exit 2).
        asked: bool,
    },
    /// `net FOO`: a NET command this program does not implement.
    NetUnknownCommand(String),
    /// `net start FOO`, `net stop FOO`: a service other than the Messenger.
    NetBadService(String),
    /// `/FOO` where a switch is expected, but not one we know (or an ambiguous abbreviation).
    BadSwitch(String),
}

/// Whether the program was invoked through a link named `net`.
pub fn is_net_mode(argv0: &OsStr) -> bool {
    Path::new(argv0)
        .file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|n| n.eq_ignore_ascii_case("net"))
}

/// Rewrites `args` (argv\[0\] first) as described in the module documentation.
pub fn prepare(args: &[String], net_mode: bool) -> Prepared {
    let mut out: Vec<String> = Vec::with_capacity(args.len() + 2);
    out.push(if net_mode {
        "messenger".to_owned()
    } else {
        args.first()
            .cloned()
            .unwrap_or_else(|| "messenger".to_owned())
    });
    let rest = args.get(1..).unwrap_or_default();

    // Global options before the subcommand pass through.
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        if !a.starts_with('-') || a == "-" {
            break;
        }
        out.push(a.clone());
        if GLOBAL_OPTIONS_WITH_VALUE.contains(&a.as_str()) {
            if let Some(v) = rest.get(i + 1) {
                out.push(v.clone());
                i += 1;
            }
        }
        i += 1;
    }
    let Some(word) = rest.get(i) else {
        if net_mode && out.len() == 1 {
            return Prepared::NetHelp { asked: false };
        }
        return Prepared::Args(out);
    };
    let lower = word.to_ascii_lowercase();
    let after = &rest[i + 1..];

    if net_mode {
        if lower == "/?" || lower == "/help" || lower == "help" {
            return Prepared::NetHelp { asked: true };
        }
        if !NET_SUBCOMMANDS.contains(&lower.as_str()) {
            return Prepared::NetUnknownCommand(word.clone());
        }
        if lower == "start" || lower == "stop" {
            let Some(service) = after.iter().find(|a| !a.starts_with('-')) else {
                if lower == "start" {
                    out.push("started-services".to_owned());
                    out.extend(after.iter().cloned());
                    return Prepared::Args(out);
                }
                return Prepared::NetHelp { asked: false };
            };
            if !service.eq_ignore_ascii_case(SERVICE_NAME) {
                return Prepared::NetBadService(service.clone());
            }
            out.push(lower);
            out.extend(after.iter().filter(|a| *a != service).cloned());
            return Prepared::Args(out);
        }
    }

    if SUBCOMMANDS.contains(&lower.as_str()) {
        out.push(lower.clone());
    } else {
        out.push(word.clone());
    }
    match lower.as_str() {
        "send" => match rewrite_send(after) {
            Ok(words) => out.extend(words),
            Err(bad) => return Prepared::BadSwitch(bad),
        },
        "name" => match rewrite_name(after) {
            Ok(words) => out.extend(words),
            Err(bad) => return Prepared::BadSwitch(bad),
        },
        _ => out.extend(after.iter().cloned()),
    }
    Prepared::Args(out)
}

/// A Windows switch and its long option; `takes_value` for `/DOMAIN:X`.
struct Switch {
    name: &'static str,
    long: &'static str,
    takes_value: bool,
}

const SEND_SWITCHES: &[Switch] = &[
    Switch {
        name: "DOMAIN",
        long: "--domain",
        takes_value: true,
    },
    Switch {
        name: "USERS",
        long: "--users",
        takes_value: false,
    },
];

const NAME_SWITCHES: &[Switch] = &[
    Switch {
        name: "ADD",
        long: "--add",
        takes_value: false,
    },
    Switch {
        name: "DELETE",
        long: "--delete",
        takes_value: false,
    },
];

/// `/SWITCH[:value]` as a long option, matching unique case-insensitive prefixes as `NET`
/// does. `Err` carries the word when it is not one of `switches`.
fn translate_switch(word: &str, switches: &[Switch]) -> Result<String, String> {
    let body = &word[1..];
    let (key, value) = match body.split_once(':') {
        Some((k, v)) => (k, Some(v)),
        None => (body, None),
    };
    let upper = key.to_ascii_uppercase();
    let matches: Vec<&Switch> = switches
        .iter()
        .filter(|s| !upper.is_empty() && s.name.starts_with(&upper))
        .collect();
    let [switch] = matches.as_slice() else {
        return Err(word.to_owned());
    };
    match (value, switch.takes_value) {
        (Some(v), true) => Ok(format!("{}={v}", switch.long)),
        (None, _) => Ok(switch.long.to_owned()),
        (Some(_), false) => Err(word.to_owned()),
    }
}

/// `send`: options pass through; the first other word, when it is a switch, becomes its long
/// option followed by `--`, so that the message words after it are never read as options.
fn rewrite_send(after: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(after.len() + 1);
    let mut i = 0;
    while i < after.len() {
        let a = &after[i];
        if a == "--" {
            out.extend(after[i..].iter().cloned());
            return Ok(out);
        }
        if a.starts_with("--") || (a.starts_with('-') && a.len() == 2) {
            out.push(a.clone());
            if SEND_OPTIONS_WITH_VALUE
                .iter()
                .chain(GLOBAL_OPTIONS_WITH_VALUE)
                .any(|o| o == a)
            {
                if let Some(v) = after.get(i + 1) {
                    out.push(v.clone());
                    i += 1;
                }
            }
            i += 1;
            continue;
        }
        if a.starts_with('/') && a.len() > 1 {
            out.push(translate_switch(a, SEND_SWITCHES)?);
            out.push("--".to_owned());
            out.extend(after[i + 1..].iter().cloned());
        } else {
            out.extend(after[i..].iter().cloned());
        }
        return Ok(out);
    }
    Ok(out)
}

/// `name`: every `/word` is a switch.
fn rewrite_name(after: &[String]) -> Result<Vec<String>, String> {
    after
        .iter()
        .map(|a| {
            if a.starts_with('/') && a.len() > 1 {
                translate_switch(a, NAME_SWITCHES)
            } else {
                Ok(a.clone())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn prepared(s: &str, net: bool) -> Prepared {
        prepare(&args(s), net)
    }

    fn ok(s: &str) -> String {
        s.to_owned()
    }

    #[test]
    fn net_mode_is_detected_from_the_file_name() {
        assert!(is_net_mode(OsStr::new("net")));
        assert!(is_net_mode(OsStr::new("/usr/local/bin/net")));
        assert!(is_net_mode(OsStr::new("NET")));
        assert!(!is_net_mode(OsStr::new("messenger")));
        assert!(!is_net_mode(OsStr::new("/usr/bin/netstat")));
    }

    #[test]
    fn send_switches_become_long_options() {
        let p = |s| match prepared(s, false) {
            Prepared::Args(a) => a.join(" "),
            other => panic!("{other:?}"),
        };
        assert_eq!(p("m send /USERS hi there"), "m send --users -- hi there");
        assert_eq!(p("m SEND /users hi"), "m send --users -- hi");
        assert_eq!(p("m send /domain hi"), "m send --domain -- hi");
        assert_eq!(p("m send /Domain:Other hi"), "m send --domain=Other -- hi");
        assert_eq!(p("m send /d:X hi"), "m send --domain=X -- hi");
        assert_eq!(
            p("m send /u --not-an-option"),
            "m send --users -- --not-an-option"
        );
        assert_eq!(
            p("m send --from x bob see /users"),
            "m send --from x bob see /users"
        );
        assert_eq!(p("m --config c send * hi"), "m --config c send * hi");
        assert_eq!(
            prepared("m send /bogus hi", false),
            Prepared::BadSwitch(ok("/bogus"))
        );
        assert_eq!(
            prepared("m send /users:x hi", false),
            Prepared::BadSwitch(ok("/users:x"))
        );
    }

    #[test]
    fn name_switches_anywhere_after_name() {
        let p = |s| match prepared(s, false) {
            Prepared::Args(a) => a.join(" "),
            other => panic!("{other:?}"),
        };
        assert_eq!(p("m name pager /ADD"), "m name pager --add");
        assert_eq!(p("m name pager /del"), "m name pager --delete");
        assert_eq!(p("m name /Delete pager"), "m name --delete pager");
        assert_eq!(p("m name"), "m name");
        assert_eq!(
            prepared("m name x /frob", false),
            Prepared::BadSwitch(ok("/frob"))
        );
    }

    #[test]
    fn net_syntax() {
        let p = |s| match prepared(s, true) {
            Prepared::Args(a) => a.join(" "),
            other => panic!("{other:?}"),
        };
        assert_eq!(p("net send * hi"), "messenger send * hi");
        assert_eq!(p("net SEND bob hi"), "messenger send bob hi");
        assert_eq!(p("net start messenger"), "messenger start");
        assert_eq!(p("net stop Messenger"), "messenger stop");
        assert_eq!(p("net helpmsg 2273"), "messenger helpmsg 2273");
        assert_eq!(
            p("net --config c.toml start MESSENGER"),
            "messenger --config c.toml start"
        );
        assert_eq!(p("net name x /add"), "messenger name x --add");
        assert_eq!(prepared("net", true), Prepared::NetHelp { asked: false });
        assert_eq!(
            prepared("net help", true),
            Prepared::NetHelp { asked: true }
        );
        assert_eq!(prepared("net /?", true), Prepared::NetHelp { asked: true });
        assert_eq!(p("net start"), "messenger started-services");
        assert_eq!(
            prepared("net stop", true),
            Prepared::NetHelp { asked: false }
        );
        assert_eq!(
            prepared("net use x", true),
            Prepared::NetUnknownCommand(ok("use"))
        );
        assert_eq!(
            prepared("net status", true),
            Prepared::NetUnknownCommand(ok("status"))
        );
        assert_eq!(
            prepared("net start spooler", true),
            Prepared::NetBadService(ok("spooler"))
        );
    }
}
