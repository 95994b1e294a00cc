//! What the user sees: exit statuses and messages in Windows' wording.
//!
//! NET errors print as `NET` prints them: the text of the error, a blank line, and
//! `More help is available by typing NET HELPMSG n.` (for NERR numbers, 2100 and up), or
//! `System error n has occurred.` before the text (for Win32 numbers). Anything that came from
//! the network or the service is passed through the sanitizer before it reaches a terminal.

use std::borrow::Cow;
use std::process::ExitCode;

use messenger_core::nerr;
use messenger_core::sanitize::sanitize_line;
use messenger_ipc::{ClientError, Reply};

/// `NERR_BadServiceName` (2185, [MS-ERREF] 2.2): `net start` / `net stop` of a service other
/// than the Messenger.
pub const NERR_BAD_SERVICE_NAME: u32 = 2185;

/// First NERR number ([MS-ERREF] 2.2, NERR_BASE); smaller numbers are Win32 errors.
const NERR_BASE: u32 = 2100;

/// The exit statuses; see the crate documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Ok = 0,
    /// 1: the command failed.
    Failed = 1,
    /// 2: usage error.
    Usage = 2,
    /// 3: the service is not running.
    NotRunning = 3,
    /// 4: no recipient got the message.
    NotDelivered = 4,
    /// 5: some recipients got it, some did not.
    Partial = 5,
    /// 6: delivered, but not read in time by every recipient (`send --wait`).
    NotRead = 6,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

impl Exit {
    /// The exit status for a command that failed with NET error `code`.
    pub fn for_code(code: u32) -> Exit {
        match code {
            nerr::NERR_MSG_NOT_STARTED => Exit::NotRunning,
            nerr::ERROR_INVALID_PARAMETER | nerr::ERROR_INVALID_NAME => Exit::Usage,
            _ => Exit::Failed,
        }
    }
}

/// `text` made safe for a terminal, on one line.
pub fn safe(text: &str) -> Cow<'_, str> {
    sanitize_line(text)
}

/// Reports a reply that is not the one a command waited for: the service's NET error, or a
/// failure to talk to it; returns the exit status for it.
pub fn failed_reply(reply: Result<Reply, ClientError>) -> Exit {
    match reply {
        Ok(Reply::Error(e)) => {
            net_error_with_detail(e.code, Some(&e.message));
            Exit::for_code(e.code)
        }
        Ok(other) => {
            error(&format!("unexpected reply from the service: {other:?}"));
            Exit::Failed
        }
        Err(e) => {
            error(&e.to_string());
            Exit::Failed
        }
    }
}

/// Prints NET error `code` to stderr.
pub fn net_error(code: u32) {
    net_error_with_detail(code, None);
}

/// Prints NET error `code` to stderr, with `detail` (already in words) when it says more than
/// the catalogue text, or in its place when the catalogue does not know the number.
pub fn net_error_with_detail(code: u32, detail: Option<&str>) {
    eprint!("{}", format_net_error(code, detail));
}

/// The text [`net_error_with_detail`] prints.
pub fn format_net_error(code: u32, detail: Option<&str>) -> String {
    let known = nerr::text(code);
    let mut out = String::new();
    if code < NERR_BASE && code != nerr::NERR_SUCCESS {
        out.push_str(&format!("System error {code} has occurred.\n\n"));
    }
    match (known, detail) {
        (Some(text), Some(d)) if !d.trim().is_empty() && d.trim() != text => {
            out.push_str(&format!("{text}\n{}\n", safe(d)));
        }
        (Some(text), _) => out.push_str(&format!("{text}\n")),
        (None, Some(d)) => out.push_str(&format!("{}\n", safe(d))),
        (None, None) => out.push_str(&format!("Error {code} occurred.\n")),
    }
    if code >= NERR_BASE {
        out.push_str(&format!(
            "\nMore help is available by typing NET HELPMSG {code}.\n"
        ));
    }
    out
}

/// A usage error: the message, then where to find the syntax.
pub fn usage_error(message: &str) {
    eprintln!("messenger: {}", safe(message));
    eprintln!("Try 'messenger --help' for the syntax.");
}

/// Any other error without a NET number.
pub fn error(message: &str) {
    eprintln!("messenger: {}", safe(message));
}

/// The closing line of a NET command that worked.
pub fn completed() {
    println!("The command completed successfully.");
}

/// The syntax `net` prints for `net`, `net help`, `net /?`.
pub fn net_syntax() {
    println!(
        "The syntax of this command is:\n\n\
         NET\n    [ HELPMSG | NAME | SEND | START | STOP ]\n\n\
         NET SEND {{name | * | /DOMAIN[:name] | /USERS}} message\n\
         NET NAME [name [/ADD | /DELETE]]\n\
         NET START MESSENGER\n\
         NET STOP MESSENGER\n\
         NET HELPMSG message#"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nerr_errors_end_with_the_helpmsg_hint() {
        let s = format_net_error(2273, None);
        assert_eq!(
            s,
            "The message alias could not be found on the network.\n\n\
             More help is available by typing NET HELPMSG 2273.\n"
        );
        let s = format_net_error(2136, Some("no answer from 10.0.0.1:139"));
        assert!(
            s.contains("A general network error occurred.\nno answer"),
            "{s}"
        );
    }

    #[test]
    fn win32_errors_say_system_error() {
        let s = format_net_error(5, None);
        assert_eq!(s, "System error 5 has occurred.\n\nAccess is denied.\n");
    }

    #[test]
    fn details_are_sanitized() {
        let s = format_net_error(2282, Some("evil\x1b[2Jname"));
        assert!(!s.contains('\x1b'));
        assert!(s.contains("^["));
    }

    #[test]
    fn exit_codes_by_error() {
        assert_eq!(Exit::for_code(2284), Exit::NotRunning);
        assert_eq!(Exit::for_code(87), Exit::Usage);
        assert_eq!(Exit::for_code(2297), Exit::Failed);
    }
}
