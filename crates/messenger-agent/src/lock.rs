//! One agent per user: an exclusive `flock` on a file in the user's runtime directory
//! (`$XDG_RUNTIME_DIR`, per user and not per login), held for the agent's life. The kernel
//! drops the lock when the process ends, however it ends, so a crashed agent never blocks the
//! next one.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The lock file's name in the runtime directory.
pub const LOCK_FILE: &str = "messenger-agent.lock";

/// Why the agent cannot hold the lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another agent of this user holds it.
    #[error("another messenger agent is running for this user (it holds {0})")]
    Held(PathBuf),
    /// No runtime directory to put it in.
    #[error("XDG_RUNTIME_DIR is not set, so the agent cannot make sure it runs once per user")]
    NoRuntimeDir,
    /// Opening the file failed.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The held lock; released when dropped.
#[derive(Debug)]
pub struct AgentLock {
    _lock: Flock<File>,
}

impl AgentLock {
    /// Takes the lock in `dir` (the runtime directory), or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            // Never follow a link someone planted in place of the file.
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|source| LockError::Open {
                path: path.clone(),
                source,
            })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Self { _lock: lock }),
            Err((_, _)) => Err(LockError::Held(path)),
        }
    }

    /// Takes the lock in `$XDG_RUNTIME_DIR`.
    pub fn acquire_for_user() -> Result<Self, LockError> {
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .ok_or(LockError::NoRuntimeDir)?;
        Self::acquire(Path::new(&dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_agent_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let first = AgentLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            AgentLock::acquire(dir.path()),
            Err(LockError::Held(_))
        ));
        drop(first);
        AgentLock::acquire(dir.path()).unwrap();
    }
}
