//! Giving up root once the privileged ports are bound.
//!
//! Ports 137-139 need root (or CAP_NET_BIND_SERVICE) to bind; nothing after that does. The
//! service keeps one supplementary group, `tty`, because writing to users' terminals is what
//! `write(1)` does with its setgid-tty bit, and nothing more.

use nix::unistd::{Gid, Group, Uid, User};

/// The group that owns terminal devices on Debian and most distributions.
const TTY_GROUP: &str = "tty";

/// Why dropping privileges failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The account does not exist.
    #[error("user {0:?} does not exist")]
    NoSuchUser(String),
    /// A system call failed.
    #[error("cannot switch to user {user:?}: {source}")]
    Switch {
        /// The account.
        user: String,
        /// The error.
        source: nix::Error,
    },
}

/// Switches the real, effective and saved ids to `user` (keeping the `tty` group) when running
/// as root; does nothing otherwise. Returns whether it switched.
pub fn drop_to(user: &str) -> Result<bool, PrivilegeError> {
    if !Uid::effective().is_root() {
        return Ok(false);
    }
    let account = User::from_name(user)
        .ok()
        .flatten()
        .ok_or_else(|| PrivilegeError::NoSuchUser(user.to_owned()))?;
    if account.uid.is_root() {
        return Ok(false);
    }
    let switch = |source| PrivilegeError::Switch {
        user: user.to_owned(),
        source,
    };
    let mut groups: Vec<Gid> = vec![account.gid];
    if let Ok(Some(tty)) = Group::from_name(TTY_GROUP) {
        groups.push(tty.gid);
    }
    nix::unistd::setgroups(&groups).map_err(switch)?;
    nix::unistd::setresgid(account.gid, account.gid, account.gid).map_err(switch)?;
    nix::unistd::setresuid(account.uid, account.uid, account.uid).map_err(switch)?;
    Ok(true)
}

/// The (real, effective, saved) user ids of this process, for the status report and tests.
pub fn current_uids() -> (u32, u32, u32) {
    match nix::unistd::getresuid() {
        Ok(ids) => (
            ids.real.as_raw(),
            ids.effective.as_raw(),
            ids.saved.as_raw(),
        ),
        Err(_) => {
            let uid = Uid::current().as_raw();
            (uid, Uid::effective().as_raw(), uid)
        }
    }
}
