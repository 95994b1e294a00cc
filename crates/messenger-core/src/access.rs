//! Who may do what: the rules the service applies to the callers of its control socket and
//! the command line applies to itself when it works without the service. Both call these
//! functions, so a request is judged the same way whichever path it takes.
//!
//! - [`may_send_as`]: only root may send under a name other than the caller's login name;
//!   names are compared as the recipient sees them, uppercased.
//! - [`may_broadcast`]: root and members of the broadcast group may send to a whole workgroup
//!   and to every user here. Membership counts the caller's primary group and every group the
//!   account database lists for the account (supplementary groups included).
//! - [`check_alias`]: a name that is another account's login name, or the name of someone
//!   logged in here, cannot be taken as an alias except by root: otherwise a user could
//!   receive the messages meant for another.
//!
//! The facts come from an [`Accounts`] database: [`SystemAccounts`] asks the system
//! (getpwnam, getgrnam, getgrouplist), which may block for seconds when the accounts live in
//! LDAP or sssd, so asynchronous callers call these off their runtime. Tests pass their own.

use crate::nerr;

/// The account database, as far as the rules need it.
pub trait Accounts {
    /// The uid and primary gid of the account named `login`, if there is one.
    fn user(&self, login: &str) -> Option<Account>;
    /// The gid of the group named `group`, if there is one.
    fn group(&self, group: &str) -> Option<u32>;
    /// Every group the database lists for `login` whose primary group is `primary_gid`
    /// (getgrouplist(3)): the primary group and the supplementary ones.
    fn groups_of(&self, login: &str, primary_gid: u32) -> Vec<u32>;
}

/// An account of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Who is asking: the credentials the kernel vouches for (SO_PEERCRED, or the process's own)
/// and the login name of the uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Group id of the process.
    pub gid: u32,
    /// Login name; the uid as a number when the account database does not know it.
    pub login: String,
}

impl Identity {
    /// Whether the caller is root.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// What a caller refused by [`may_send_as`] is told.
pub const SEND_AS_REFUSED: &str = "Only root may send under another name than the login name.";

/// What a caller refused by [`may_broadcast`] is told when sending to a workgroup.
pub const BROADCAST_REFUSED: &str =
    "Only root and members of the broadcast group may send to a whole workgroup.";

/// Whether `identity` may send a message signed `from`. Anyone may sign with their own login
/// name in any case (`--from ALICE` by `alice`, since every receiver shows names uppercased);
/// only root may sign with another.
pub fn may_send_as(identity: &Identity, from: &str) -> bool {
    identity.is_root() || from.to_uppercase() == identity.login.to_uppercase()
}

/// Whether `identity` may send to a whole workgroup or to every user here: root always; others
/// when `broadcast_group` names a group that is their process's group, their account's primary
/// group, or one of their account's supplementary groups.
pub fn may_broadcast(
    identity: &Identity,
    broadcast_group: Option<&str>,
    accounts: &impl Accounts,
) -> bool {
    if identity.is_root() {
        return true;
    }
    let Some(gid) = broadcast_group.and_then(|g| accounts.group(g)) else {
        return false;
    };
    if identity.gid == gid {
        return true;
    }
    // The account's own primary group, which getgrouplist includes, is the one the password
    // database gives, not the process's (which `newgrp` may have changed).
    let primary = accounts
        .user(&identity.login)
        .filter(|a| a.uid == identity.uid)
        .map_or(identity.gid, |a| a.gid);
    accounts.groups_of(&identity.login, primary).contains(&gid)
}

/// Why an alias was refused to its caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AliasRefused {
    /// The name is another account's login name.
    #[error("{name} is the login name of another user of this computer; only root may add it")]
    AnotherAccount {
        /// The name as the user typed it, trimmed.
        name: String,
    },
    /// The name is that of another user who is logged in here.
    #[error("{name} is the name of another user logged in to this computer; only root may add it")]
    LoggedIn {
        /// The name as the user typed it, trimmed.
        name: String,
    },
}

impl AliasRefused {
    /// The NET error number: access is denied (5), as for any name that is someone else's.
    pub fn nerr(&self) -> u32 {
        nerr::ERROR_ACCESS_DENIED
    }
}

/// Whether `identity` may add `typed` (a name that passed
/// [`parse_messaging_name`](crate::names::parse_messaging_name)) as an alias. `logged_in` are
/// the login names of the users logged in here. Root may add any name.
///
/// Messaging names are uppercased on the wire, so `BOB` is the name of the account `bob`: the
/// account database is asked for the name as typed, in lower case and in upper case (login
/// names are case-sensitive, and a name in mixed case is the rare exception that only the
/// exact spelling finds). Logged-in users are compared case-insensitively.
pub fn check_alias(
    identity: &Identity,
    typed: &str,
    logged_in: &[String],
    accounts: &impl Accounts,
) -> Result<(), AliasRefused> {
    if identity.is_root() {
        return Ok(());
    }
    let name = typed.trim();
    let mut spellings = vec![name.to_owned(), name.to_lowercase(), name.to_uppercase()];
    spellings.dedup();
    for login in &spellings {
        if let Some(account) = accounts.user(login) {
            if account.uid != identity.uid {
                return Err(AliasRefused::AnotherAccount {
                    name: name.to_owned(),
                });
            }
        }
    }
    let someone_else = logged_in
        .iter()
        .any(|user| user.eq_ignore_ascii_case(name) && !user.eq_ignore_ascii_case(&identity.login));
    if someone_else {
        return Err(AliasRefused::LoggedIn {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Whether the login name `login` of a user who logs in takes precedence over an alias of the
/// same name owned by `alias_owner_uid`: always, unless the alias is the user's own. A login
/// name belongs to its account; an alias that came before the account (or before these rules)
/// gives way, and the service logs that it did.
pub fn login_takes_name_from(alias_owner_uid: u32, login_uid: Option<u32>) -> bool {
    login_uid != Some(alias_owner_uid)
}

/// The system's account database (NSS: files, LDAP, sssd ...). Every call may block.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn user(&self, login: &str) -> Option<Account> {
        let user = nix::unistd::User::from_name(login).ok().flatten()?;
        Some(Account {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    fn group(&self, group: &str) -> Option<u32> {
        nix::unistd::Group::from_name(group)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    }

    fn groups_of(&self, login: &str, primary_gid: u32) -> Vec<u32> {
        let Ok(name) = std::ffi::CString::new(login) else {
            return Vec::new();
        };
        nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(primary_gid))
            .map(|groups| groups.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default()
    }
}

impl SystemAccounts {
    /// The identity of `uid` running with group `gid`: its login name from the database, or
    /// the number when it has no account.
    pub fn identity(&self, uid: u32, gid: u32) -> Identity {
        let login = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name);
        Identity { uid, gid, login }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A made-up database: accounts, groups and memberships.
    #[derive(Default)]
    struct Db {
        users: HashMap<String, Account>,
        groups: HashMap<String, u32>,
        members: HashMap<u32, Vec<String>>,
    }

    impl Accounts for Db {
        fn user(&self, login: &str) -> Option<Account> {
            self.users.get(login).copied()
        }
        fn group(&self, group: &str) -> Option<u32> {
            self.groups.get(group).copied()
        }
        fn groups_of(&self, login: &str, primary_gid: u32) -> Vec<u32> {
            let mut out = vec![primary_gid];
            out.extend(
                self.members
                    .iter()
                    .filter(|(_, m)| m.iter().any(|u| u == login))
                    .map(|(g, _)| *g),
            );
            out
        }
    }

    fn db() -> Db {
        let mut db = Db::default();
        db.users.insert(
            "alice".into(),
            Account {
                uid: 1000,
                gid: 1000,
            },
        );
        db.users.insert(
            "bob".into(),
            Account {
                uid: 1001,
                gid: 1001,
            },
        );
        db.users.insert(
            "carol".into(),
            Account {
                uid: 1002,
                gid: 500,
            },
        );
        db.groups.insert("staff".into(), 50);
        db.groups.insert("ops".into(), 500);
        db.members.insert(50, vec!["alice".into()]);
        db
    }

    fn who(uid: u32, gid: u32, login: &str) -> Identity {
        Identity {
            uid,
            gid,
            login: login.into(),
        }
    }

    #[test]
    fn own_name_in_any_case_others_only_for_root() {
        let alice = who(1000, 1000, "alice");
        for own in ["alice", "ALICE", "Alice"] {
            assert!(may_send_as(&alice, own), "{own}");
        }
        for other in ["bob", "BOSS", "alice2", " alice", ""] {
            assert!(!may_send_as(&alice, other), "{other:?}");
        }
        assert!(may_send_as(&who(0, 0, "root"), "BOSS"));
    }

    #[test]
    fn broadcast_right_counts_every_group_of_the_account() {
        let db = db();
        // A supplementary group (listed in the group database), not the process's group.
        assert!(may_broadcast(&who(1000, 1000, "alice"), Some("staff"), &db));
        // The process's group.
        assert!(may_broadcast(&who(1001, 50, "bob"), Some("staff"), &db));
        // The account's primary group, though the process runs with another.
        assert!(may_broadcast(&who(1002, 1002, "carol"), Some("ops"), &db));
        // Not a member; no group configured; an unknown group.
        assert!(!may_broadcast(&who(1001, 1001, "bob"), Some("staff"), &db));
        assert!(!may_broadcast(&who(1000, 1000, "alice"), None, &db));
        assert!(!may_broadcast(&who(1000, 1000, "alice"), Some("nope"), &db));
        // Root without any group.
        assert!(may_broadcast(&who(0, 0, "root"), None, &db));
    }

    #[test]
    fn another_accounts_login_name_is_not_an_alias() {
        let db = db();
        let alice = who(1000, 1000, "alice");
        for name in ["bob", "BOB", " Bob "] {
            assert_eq!(
                check_alias(&alice, name, &[], &db),
                Err(AliasRefused::AnotherAccount {
                    name: name.trim().into()
                }),
                "{name:?}"
            );
        }
        assert_eq!(
            check_alias(&alice, "bob", &[], &db).unwrap_err().nerr(),
            nerr::ERROR_ACCESS_DENIED
        );
        // One's own login name, and names nobody has, are fine.
        assert!(check_alias(&alice, "ALICE", &[], &db).is_ok());
        assert!(check_alias(&alice, "pager", &[], &db).is_ok());
        // Root may take any.
        assert!(check_alias(&who(0, 0, "root"), "bob", &["bob".into()], &db).is_ok());
    }

    #[test]
    fn a_logged_in_users_name_is_not_an_alias() {
        let db = db();
        let alice = who(1000, 1000, "alice");
        // `dave` has no account the database knows (a local-only login, say) but is here.
        let here = vec!["dave".to_string(), "alice".to_string()];
        assert_eq!(
            check_alias(&alice, "DAVE", &here, &db),
            Err(AliasRefused::LoggedIn {
                name: "DAVE".into()
            })
        );
        assert!(check_alias(&alice, "alice", &here, &db).is_ok());
    }

    #[test]
    fn login_wins_over_another_owners_alias() {
        assert!(login_takes_name_from(1000, Some(1001)));
        assert!(login_takes_name_from(0, Some(1001)));
        assert!(login_takes_name_from(1000, None));
        assert!(!login_takes_name_from(1001, Some(1001)));
    }
}
