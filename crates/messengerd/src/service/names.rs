//! This computer's messaging names and the state of each on the network.
//!
//! Every `<03>` name we answer for lives here: the computer name, the names of logged-in
//! users, and aliases users added. A name is usable (messages to it are accepted, queries for
//! it answered) only once every interface's name service has registered it without a conflict.
//! Anyone waiting for an `/ADD` to finish is told the outcome here.

use std::collections::BTreeMap;

use messenger_core::names::{NameKind, Owner};
use messenger_core::nerr::{NERR_ALREADY_EXISTS, NERR_DUPLICATE_NAME, NERR_TOO_MANY_NAMES};
use netbios::NetbiosName;
use tokio::sync::oneshot;

/// How far along a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameState {
    /// Registration broadcasts are under way on `pending` interfaces.
    Registering {
        /// Interfaces that have not finished yet.
        pending: usize,
    },
    /// Ours on every interface.
    Registered,
    /// Another node holds it; we do not use it.
    Conflict,
}

impl NameState {
    /// The word the name listing shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registering { .. } => "registering",
            Self::Registered => "registered",
            Self::Conflict => "conflict",
        }
    }
}

/// Result of a registration for those waiting on it: Ok, or the NET error number.
pub type RegistrationOutcome = Result<(), u32>;

/// One of our messaging names.
#[derive(Debug)]
pub struct NameEntry {
    /// `NAME<03>`.
    pub name: NetbiosName,
    /// Computer, user or alias.
    pub kind: NameKind,
    /// Who it belongs to (none for the computer name).
    pub owner: Option<Owner>,
    /// Network state.
    pub state: NameState,
    waiters: Vec<oneshot::Sender<RegistrationOutcome>>,
}

/// The table of our messaging names, keyed by the 15-byte name (suffix aside).
#[derive(Debug, Default)]
pub struct NameTable {
    entries: BTreeMap<NetbiosName, NameEntry>,
}

impl NameTable {
    /// Adds `name` as registering on `interfaces` interfaces (registered at once if zero).
    /// Returns false if it is already present.
    pub fn insert(
        &mut self,
        name: NetbiosName,
        kind: NameKind,
        owner: Option<Owner>,
        interfaces: usize,
    ) -> bool {
        if self.entries.contains_key(&name) {
            return false;
        }
        let state = if interfaces == 0 {
            NameState::Registered
        } else {
            NameState::Registering {
                pending: interfaces,
            }
        };
        self.entries.insert(
            name,
            NameEntry {
                name,
                kind,
                owner,
                state,
                waiters: Vec::new(),
            },
        );
        true
    }

    /// Adds `name` as an alias of `owner`, registering on `interfaces` interfaces, if it is
    /// not present, the owner holds fewer than `per_owner_cap` aliases (no cap: `None`), and
    /// the table has room. The checks and the insertion are one step under the caller's lock
    /// on the table, so concurrent `/ADD`s cannot get past the cap together. Fails with the
    /// NET error number.
    pub fn insert_alias(
        &mut self,
        name: NetbiosName,
        owner: Owner,
        per_owner_cap: Option<usize>,
        interfaces: usize,
    ) -> Result<(), u32> {
        if self.entries.contains_key(&name) {
            return Err(NERR_ALREADY_EXISTS);
        }
        if per_owner_cap.is_some_and(|max| self.aliases_owned_by(owner.uid) >= max) {
            return Err(NERR_TOO_MANY_NAMES);
        }
        if self.entries.len() >= messenger_core::names::MAX_NAMES {
            return Err(NERR_TOO_MANY_NAMES);
        }
        self.insert(name, NameKind::Alias, Some(owner), interfaces);
        Ok(())
    }

    /// Gives the alias `name`, owned by `previous_owner_uid`, to `owner` as a user's name,
    /// keeping its state on the network (the name stays ours; only who receives changes).
    /// Returns false, changing nothing, if `name` is no longer that alias.
    pub fn take_alias_for_user(
        &mut self,
        name: &NetbiosName,
        previous_owner_uid: u32,
        owner: Owner,
    ) -> bool {
        match self.entries.get_mut(name) {
            Some(e)
                if e.kind == NameKind::Alias
                    && e.owner
                        .as_ref()
                        .is_some_and(|o| o.uid == previous_owner_uid) =>
            {
                e.kind = NameKind::User;
                e.owner = Some(owner);
                true
            }
            _ => false,
        }
    }

    /// Waits for the outcome of `name`'s registration; resolves at once if it is settled.
    pub fn wait_for(&mut self, name: &NetbiosName) -> oneshot::Receiver<RegistrationOutcome> {
        let (tx, rx) = oneshot::channel();
        match self.entries.get_mut(name) {
            Some(e) => match e.state {
                NameState::Registering { .. } => e.waiters.push(tx),
                NameState::Registered => {
                    let _ = tx.send(Ok(()));
                }
                NameState::Conflict => {
                    let _ = tx.send(Err(NERR_DUPLICATE_NAME));
                }
            },
            None => {
                let _ = tx.send(Err(NERR_DUPLICATE_NAME));
            }
        }
        rx
    }

    /// One interface registered `name`.
    pub fn registered_on_one(&mut self, name: &NetbiosName) {
        if let Some(e) = self.entries.get_mut(name) {
            if let NameState::Registering { pending } = e.state {
                if pending <= 1 {
                    e.state = NameState::Registered;
                    for w in e.waiters.drain(..) {
                        let _ = w.send(Ok(()));
                    }
                } else {
                    e.state = NameState::Registering {
                        pending: pending - 1,
                    };
                }
            }
        }
    }

    /// Another node holds `name`.
    pub fn conflict(&mut self, name: &NetbiosName) {
        self.fail(name, NERR_DUPLICATE_NAME);
    }

    /// `name` cannot be used; those waiting for it get NET error `code`.
    pub fn fail(&mut self, name: &NetbiosName, code: u32) {
        if let Some(e) = self.entries.get_mut(name) {
            e.state = NameState::Conflict;
            for w in e.waiters.drain(..) {
                let _ = w.send(Err(code));
            }
        }
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &NetbiosName) -> Option<NameEntry> {
        self.entries.remove(name)
    }

    /// The entry for `name`.
    pub fn get(&self, name: &NetbiosName) -> Option<&NameEntry> {
        self.entries.get(name)
    }

    /// The usable entry whose name, compared as [MS-MSRP] 2.2.2.1 says (uppercased, padded
    /// to 15), matches the OEM string `to` of a received message.
    pub fn find_usable(&self, to: &[u8]) -> Option<&NameEntry> {
        // Every name in the table is stored uppercased, so the uppercased form finds it
        // directly, however many users are logged in.
        let wanted = NetbiosName::new_uppercase(to, netbios::name::SUFFIX_MESSENGER).ok()?;
        self.entries
            .get(&wanted)
            .filter(|e| e.state == NameState::Registered)
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = &NameEntry> {
        self.entries.values()
    }

    /// How many names `uid` owns of kind alias.
    pub fn aliases_owned_by(&self, uid: u32) -> usize {
        self.entries
            .values()
            .filter(|e| e.kind == NameKind::Alias && e.owner.as_ref().is_some_and(|o| o.uid == uid))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Option<Owner> {
        Some(Owner {
            uid: 1000,
            name: "alice".into(),
        })
    }

    #[test]
    fn registration_completes_when_every_interface_agrees() {
        let mut t = NameTable::default();
        let n = NetbiosName::messenger("pager").unwrap();
        assert!(t.insert(n, NameKind::Alias, owner(), 2));
        assert!(!t.insert(n, NameKind::Alias, owner(), 2));
        let mut rx = t.wait_for(&n);
        t.registered_on_one(&n);
        assert!(rx.try_recv().is_err());
        assert!(t.find_usable(b"pager").is_none());
        t.registered_on_one(&n);
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
        assert!(t.find_usable(b"Pager").is_some());
        assert_eq!(t.aliases_owned_by(1000), 1);
    }

    #[test]
    fn concurrent_alias_adds_cannot_exceed_the_cap() {
        use std::sync::{Arc, Barrier, Mutex};
        const THREADS: usize = 8;
        const CAP: usize = 3;
        // Checking the count under one lock and inserting under another lets two threads past
        // the cap within about a hundred rounds on two cores; a thousand make that near certain.
        for round in 0..1000 {
            let table = Arc::new(Mutex::new(NameTable::default()));
            let barrier = Arc::new(Barrier::new(THREADS));
            let handles: Vec<_> = (0..THREADS)
                .map(|i| {
                    let table = Arc::clone(&table);
                    let barrier = Arc::clone(&barrier);
                    std::thread::spawn(move || {
                        let n = NetbiosName::messenger(&format!("a{round}x{i}")).unwrap();
                        barrier.wait();
                        let added =
                            table
                                .lock()
                                .unwrap()
                                .insert_alias(n, owner().unwrap(), Some(CAP), 1);
                        added.is_ok()
                    })
                })
                .collect();
            let added = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|ok| *ok)
                .count();
            assert_eq!(added, CAP, "round {round}");
            assert_eq!(table.lock().unwrap().aliases_owned_by(1000), CAP);
        }
        let mut t = NameTable::default();
        let n = NetbiosName::messenger("one").unwrap();
        assert_eq!(
            t.insert_alias(n, owner().unwrap(), Some(0), 1),
            Err(NERR_TOO_MANY_NAMES)
        );
        assert_eq!(t.insert_alias(n, owner().unwrap(), None, 1), Ok(()));
        assert_eq!(
            t.insert_alias(n, owner().unwrap(), None, 1),
            Err(NERR_ALREADY_EXISTS)
        );
    }

    #[test]
    fn a_user_takes_an_alias_of_their_login_name() {
        let mut t = NameTable::default();
        let n = NetbiosName::messenger("bob").unwrap();
        t.insert_alias(n, owner().unwrap(), None, 0).unwrap();
        let bob = Owner {
            uid: 1001,
            name: "bob".into(),
        };
        assert!(
            !t.take_alias_for_user(&n, 4242, bob.clone()),
            "owner changed"
        );
        assert!(t.take_alias_for_user(&n, 1000, bob.clone()));
        let e = t.get(&n).unwrap();
        assert_eq!(
            (e.kind, e.owner.clone()),
            (NameKind::User, Some(bob.clone()))
        );
        assert_eq!(e.state, NameState::Registered);
        assert!(!t.take_alias_for_user(&n, 1000, bob), "no longer an alias");
    }

    #[test]
    fn conflict_fails_waiters_and_makes_the_name_unusable() {
        let mut t = NameTable::default();
        let n = NetbiosName::messenger("taken").unwrap();
        t.insert(n, NameKind::Alias, owner(), 1);
        let mut rx = t.wait_for(&n);
        t.conflict(&n);
        assert_eq!(rx.try_recv().unwrap(), Err(NERR_DUPLICATE_NAME));
        assert!(t.find_usable(b"TAKEN").is_none());
    }
}
