//! Who is calling the control socket, and what they may do, resolved once per connection.
//!
//! The kernel vouches for the uid and gid (SO_PEERCRED); the login name and the broadcast
//! right come from the account database through the rules of `messenger_core::access`, the
//! same the command line applies to itself. Those lookups may block for seconds (LDAP,
//! sssd), so [`Caller::lookup`] runs them on the blocking pool, never on the runtime's
//! workers.

use messenger_core::access::{self, Accounts, Identity, SystemAccounts};

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Numeric user id.
    pub uid: u32,
    /// Group id of the calling process.
    pub gid: u32,
    /// Login name (the uid as a number if it has no account).
    pub user: String,
    /// Whether it is root.
    pub is_root: bool,
    /// Whether it may send broadcasts.
    pub may_broadcast: bool,
}

impl Caller {
    /// The caller with credentials `uid` and `gid`, judged against `broadcast_group` with the
    /// account database `accounts`. Blocks as long as the database does.
    pub fn resolve(
        uid: u32,
        gid: u32,
        login: String,
        broadcast_group: Option<&str>,
        accounts: &impl Accounts,
    ) -> Self {
        let identity = Identity { uid, gid, login };
        let may_broadcast = access::may_broadcast(&identity, broadcast_group, accounts);
        Self {
            uid,
            gid,
            is_root: identity.is_root(),
            user: identity.login,
            may_broadcast,
        }
    }

    /// [`Caller::resolve`] with the system's account database, on the blocking pool.
    pub async fn lookup(uid: u32, gid: u32, broadcast_group: Option<String>) -> Self {
        let looked_up = tokio::task::spawn_blocking(move || {
            let accounts = SystemAccounts;
            let login = accounts.identity(uid, gid).login;
            Self::resolve(uid, gid, login, broadcast_group.as_deref(), &accounts)
        })
        .await;
        // The lookup only panics if the process is going down; fall back to what the kernel
        // said, with no rights beyond the uid's own.
        looked_up.unwrap_or_else(|_| Self {
            uid,
            gid,
            user: uid.to_string(),
            is_root: uid == 0,
            may_broadcast: uid == 0,
        })
    }

    /// The caller as the rules of `messenger_core::access` see them.
    pub fn identity(&self) -> Identity {
        Identity {
            uid: self.uid,
            gid: self.gid,
            login: self.user.clone(),
        }
    }
}
