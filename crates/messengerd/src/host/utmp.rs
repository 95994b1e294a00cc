//! Who is logged in, and on which terminals, read from utmp(5).
//!
//! The Messenger registers `USER<03>` for every logged-in user and shows messages on their
//! terminals, so it needs the list of login sessions. utmp is what `who` and `write` read; it
//! is a flat array of fixed-size records, parsed here without trusting any of it (it is
//! written by many programs, and a truncated last record is normal while one is being
//! written).

use std::collections::BTreeSet;
use std::path::Path;

/// Size of one `struct utmp` record on Linux (glibc `bits/utmp.h`, every 64-bit and 32-bit
/// architecture with the 32-bit time compatibility layout).
pub const UTMP_RECORD_LEN: usize = 384;
/// `ut_type` of a normal login session (utmp(5) USER_PROCESS).
const USER_PROCESS: i16 = 7;
/// Offsets and sizes of the fields used (utmp(5)).
const TYPE_OFFSET: usize = 0;
const PID_OFFSET: usize = 4;
const LINE_OFFSET: usize = 8;
const LINE_LEN: usize = 32;
const USER_OFFSET: usize = 44;
const USER_LEN: usize = 32;
const HOST_OFFSET: usize = 76;
const HOST_LEN: usize = 256;
/// The most sessions read, so a huge or hostile utmp file cannot make us allocate without
/// bound; far more than any machine has.
pub const MAX_SESSIONS: usize = 65_536;

/// One login session.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LoginSession {
    /// Login name.
    pub user: String,
    /// Terminal, relative to `/dev` (`pts/3`, `tty1`), possibly empty for non-tty sessions.
    pub line: String,
    /// Remote host, if any.
    pub host: String,
    /// Process id of the session leader.
    pub pid: i32,
    /// The seat of the session (`seat0`), as logind tells it; empty from utmp, and for
    /// sessions on no seat (remote ones).
    pub seat: String,
}

/// Parses the records of a utmp file. Records that are not login sessions, or that are
/// malformed, are skipped.
pub fn parse(data: &[u8]) -> Vec<LoginSession> {
    data.chunks_exact(UTMP_RECORD_LEN)
        .take(MAX_SESSIONS)
        .filter_map(parse_record)
        .collect()
}

fn parse_record(rec: &[u8]) -> Option<LoginSession> {
    let ut_type = i16::from_ne_bytes([rec[TYPE_OFFSET], rec[TYPE_OFFSET + 1]]);
    if ut_type != USER_PROCESS {
        return None;
    }
    let pid = i32::from_ne_bytes(rec[PID_OFFSET..PID_OFFSET + 4].try_into().ok()?);
    let user = c_field(&rec[USER_OFFSET..USER_OFFSET + USER_LEN])?;
    if user.is_empty() {
        return None;
    }
    let line = c_field(&rec[LINE_OFFSET..LINE_OFFSET + LINE_LEN])?;
    // A terminal name that walks out of /dev would let a crafted utmp entry point our writes
    // at any file.
    if line.contains("..") || line.starts_with('/') {
        return None;
    }
    let host = c_field(&rec[HOST_OFFSET..HOST_OFFSET + HOST_LEN]).unwrap_or_default();
    Some(LoginSession {
        user,
        line,
        host,
        pid,
        seat: String::new(),
    })
}

fn c_field(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[..end]).ok().map(str::to_owned)
}

/// Reads the sessions from `path`; a missing file means nobody is logged in.
pub fn read_sessions(path: &Path) -> std::io::Result<Vec<LoginSession>> {
    match std::fs::read(path) {
        Ok(data) => Ok(parse(&data)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The distinct user names of `sessions`.
pub fn users(sessions: &[LoginSession]) -> BTreeSet<String> {
    sessions.iter().map(|s| s.user.clone()).collect()
}

/// Builds one utmp record; used by tests and by the test tools that simulate logins.
pub fn encode_record(user: &str, line: &str, pid: i32) -> [u8; UTMP_RECORD_LEN] {
    let mut rec = [0u8; UTMP_RECORD_LEN];
    rec[TYPE_OFFSET..TYPE_OFFSET + 2].copy_from_slice(&USER_PROCESS.to_ne_bytes());
    rec[PID_OFFSET..PID_OFFSET + 4].copy_from_slice(&pid.to_ne_bytes());
    let copy = |rec: &mut [u8], off: usize, len: usize, s: &str| {
        let b = s.as_bytes();
        let n = b.len().min(len - 1);
        rec[off..off + n].copy_from_slice(&b[..n]);
    };
    copy(&mut rec, LINE_OFFSET, LINE_LEN, line);
    copy(&mut rec, USER_OFFSET, USER_LEN, user);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_sessions_and_skips_others() {
        let mut data = Vec::new();
        data.extend_from_slice(&encode_record("alice", "pts/1", 100));
        let mut dead = encode_record("bob", "pts/2", 101);
        dead[0] = 8; // DEAD_PROCESS
        data.extend_from_slice(&dead);
        data.extend_from_slice(&encode_record("carol", "../etc/passwd", 102));
        data.extend_from_slice(&encode_record("alice", "pts/4", 103));
        data.extend_from_slice(&[7, 0, 0]); // a record being written
        let sessions = parse(&data);
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].user, "alice");
        assert_eq!(sessions[1].line, "pts/4");
        assert_eq!(users(&sessions).len(), 1);
    }

    #[test]
    fn missing_file_is_nobody_logged_in() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_sessions(&dir.path().join("utmp")).unwrap().is_empty());
    }
}
