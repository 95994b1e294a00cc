//! What the service does to files while it is still root, done so that nothing planted in
//! its way is followed.
//!
//! The data directory and the run directory belong to the service account, so a compromised
//! service (or anyone who ran as that account) may have put symbolic links, hard links or
//! other files in them. Root therefore never acts on a path there: each directory is opened
//! with `O_NOFOLLOW`, and everything in it is reached relative to that descriptor, opened with
//! `O_NOFOLLOW` and changed through the open descriptor (`fchown`, `fchmod`), after checking
//! what it is. Nothing is done recursively. The pid file is created new (`O_EXCL`), so it can
//! never be a file that was there before.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{unlinkat, UnlinkatFlags};

/// The pid file's name, beside the control socket (where `messenger stop` looks for it).
pub const PID_FILE: &str = "messengerd.pid";
/// Mode of a run directory (and of a data directory's parent) the service creates: every user
/// must reach the control socket in it, and only its owner may add entries.
const RUN_DIR_MODE: u32 = 0o755;
/// Mode bits of the data directory that are taken away: the inbox holds every user's
/// messages, and each user may read only their own (through the service).
const DATA_DIR_OTHERS: u32 = 0o007;

/// An account files are given to.
#[derive(Debug, Clone, Copy)]
pub struct Account {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Why a directory could not be prepared or given away.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}: {source}")]
pub struct OwnershipError {
    /// The path.
    pub path: String,
    /// What was being done.
    pub what: &'static str,
    /// Why it failed.
    pub source: std::io::Error,
}

fn fail<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> OwnershipError + 'a {
    move |source| OwnershipError {
        path: path.display().to_string(),
        what,
        source,
    }
}

/// Opens `path` as a directory, refusing a symbolic link in its last component.
pub fn open_dir(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Opens `name` inside `dir` without following a link and without blocking (a FIFO) or
/// taking a terminal; `None` if it is a symbolic link or a socket, which are left alone.
fn open_entry(dir: &File, name: &std::ffi::OsStr) -> std::io::Result<Option<File>> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENXIO) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Mode of a data directory the service creates: the service account's alone.
const DATA_DIR_MODE: u32 = 0o700;

/// Gives the data directory `path` and what root created in it (the inbox files) to
/// `account`, and takes away every permission of other users on it. Only the directory and
/// its own entries are touched, never anything below them; an entry is given away only if it
/// is a directory or a regular file with a single link: a symbolic link is not followed, and
/// a hard link may be a name for a file elsewhere.
/// Creates it first (mode 0700; missing parents 0755, so that the account can reach it) if
/// it does not exist.
pub fn give_data_dir(path: &Path, account: Account) -> Result<(), OwnershipError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(RUN_DIR_MODE)
            .create(parent)
            .map_err(fail(parent, "cannot create the data directory's parent"))?;
    }
    match std::fs::DirBuilder::new().mode(DATA_DIR_MODE).create(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(fail(path, "cannot create the data directory")(e))
        }
        _ => {}
    }
    let dir = open_dir(path).map_err(fail(path, "cannot open the data directory"))?;
    let mode = dir
        .metadata()
        .map_err(fail(path, "cannot read the data directory's mode"))?
        .mode();
    // Before the chown, while root may still own it (the packaged unit gives root no
    // CAP_FOWNER). The inbox files are private (0600) in any case; this is the second lock.
    if mode & DATA_DIR_OTHERS != 0 {
        let private = std::fs::Permissions::from_mode(mode & 0o7777 & !DATA_DIR_OTHERS);
        if let Err(e) = dir.set_permissions(private) {
            tracing::warn!(
                path = %path.display(),
                error = %e,
                "cannot take other users' access to the data directory away"
            );
        }
    }
    std::os::unix::fs::fchown(&dir, Some(account.uid), Some(account.gid)).map_err(fail(
        path,
        "cannot give the data directory to the service account",
    ))?;
    // The names only; each is opened relative to `dir`, so a name that is not (or no
    // longer) in the directory we opened just fails.
    let entries = std::fs::read_dir(path).map_err(fail(path, "cannot list the data directory"))?;
    for entry in entries {
        let entry = entry.map_err(fail(path, "cannot list the data directory"))?;
        let name = entry.file_name();
        let entry_path = path.join(&name);
        let Some(file) = open_entry(&dir, &name).map_err(fail(&entry_path, "cannot open"))? else {
            tracing::warn!(path = %entry_path.display(), "not a file or directory; left alone");
            continue;
        };
        let meta = file.metadata().map_err(fail(&entry_path, "cannot stat"))?;
        let single_file = meta.file_type().is_file() && meta.nlink() == 1;
        if !(single_file || meta.file_type().is_dir()) {
            tracing::warn!(
                path = %entry_path.display(),
                links = meta.nlink(),
                "neither a directory nor a file with one link; left alone"
            );
            continue;
        }
        if meta.uid() != account.uid || meta.gid() != account.gid {
            std::os::unix::fs::fchown(&file, Some(account.uid), Some(account.gid))
                .map_err(fail(&entry_path, "cannot give to the service account"))?;
        }
    }
    Ok(())
}

/// The directory of the control socket and the pid file, held open.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    dir: File,
    created: bool,
}

impl RunDir {
    /// Opens the directory of `control_socket`, creating it (mode 0755, whatever the umask)
    /// if it does not exist yet.
    pub fn prepare(control_socket: &Path) -> Result<Self, OwnershipError> {
        let path = control_socket
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let created = match std::fs::DirBuilder::new().mode(RUN_DIR_MODE).create(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(RUN_DIR_MODE)
                    .create(&path)
                    .map_err(fail(&path, "cannot create the run directory"))?;
                true
            }
            Err(e) => return Err(fail(&path, "cannot create the run directory")(e)),
        };
        let dir = open_dir(&path).map_err(fail(&path, "cannot open the run directory"))?;
        if created {
            dir.set_permissions(std::fs::Permissions::from_mode(RUN_DIR_MODE))
                .map_err(fail(&path, "cannot set the run directory's mode"))?;
        }
        Ok(Self { path, dir, created })
    }

    /// Gives the directory to `account` if this service created it, so that the account can
    /// remove the pid file at the end. A directory that was there before is left as it is:
    /// it may be shared (`/run`, `/tmp`), or made by systemd (`RuntimeDirectory=`).
    pub fn give_to(&self, account: Account) -> Result<(), OwnershipError> {
        if self.created {
            std::os::unix::fs::fchown(&self.dir, Some(account.uid), Some(account.gid)).map_err(
                fail(
                    &self.path,
                    "cannot give the run directory to the service account",
                ),
            )?;
        }
        Ok(())
    }

    /// Writes this process's id to a new pid file: whatever had the name before (a stale pid
    /// file, or a link someone planted) is removed, not followed, and the file is created
    /// with `O_EXCL | O_NOFOLLOW`, so it is always a new one.
    pub fn write_pid_file(&self) -> Result<(), OwnershipError> {
        let path = self.path.join(PID_FILE);
        match unlinkat(&self.dir, PID_FILE, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(fail(&path, "cannot remove the old pid file")(e.into())),
        }
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(0o644);
        let fd = openat(&self.dir, PID_FILE, flags, mode)
            .map_err(|e| fail(&path, "cannot create the pid file")(e.into()))?;
        File::from(fd)
            .write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(fail(&path, "cannot write the pid file"))
    }

    /// Removes the pid file; a failure (a directory of root's, after giving up root) is only
    /// logged: systemd removes its runtime directory itself.
    pub fn remove_pid_file(&self) {
        if let Err(e) = unlinkat(&self.dir, PID_FILE, UnlinkatFlags::NoRemoveDir) {
            tracing::debug!(error = %e, "pid file not removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn is_root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    /// An account that is not root, to give things to.
    fn other_account() -> Account {
        Account {
            uid: 65534,
            gid: 65534,
        }
    }

    #[test]
    fn planted_links_in_the_data_dir_are_not_followed() {
        if !is_root() {
            eprintln!(
                "SKIPPED planted_links_in_the_data_dir_are_not_followed: giving files away \
                 needs root; NOT checked"
            );
            return;
        }
        let outside = tempfile::tempdir().unwrap();
        let target_file = outside.path().join("secret");
        std::fs::write(&target_file, b"root's").unwrap();
        let target_dir = outside.path().join("dir");
        std::fs::create_dir(&target_dir).unwrap();
        let data = tempfile::tempdir().unwrap();
        std::fs::write(data.path().join("inbox.sqlite3"), b"").unwrap();
        std::fs::create_dir(data.path().join("spool")).unwrap();
        symlink(&target_file, data.path().join("link-to-file")).unwrap();
        symlink(&target_dir, data.path().join("link-to-dir")).unwrap();
        std::fs::hard_link(&target_file, data.path().join("hard-link")).unwrap();
        std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

        let account = other_account();
        give_data_dir(data.path(), account).unwrap();

        for outside_path in [&target_file, &target_dir] {
            let meta = std::fs::metadata(outside_path).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (0, 0), "{outside_path:?} moved");
        }
        for own in ["", "inbox.sqlite3", "spool"] {
            let meta = std::fs::metadata(data.path().join(own)).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (account.uid, account.gid),
                "{own:?}"
            );
        }
        let mode = std::fs::metadata(data.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o750, "others keep no access to the inbox");
    }

    #[test]
    fn the_pid_file_is_always_a_new_file() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::fs::write(&target, b"keep me").unwrap();
        let run = tempfile::tempdir().unwrap();
        let socket = run.path().join("control.sock");
        symlink(&target, run.path().join(PID_FILE)).unwrap();

        let dir = RunDir::prepare(&socket).unwrap();
        assert!(!dir.created);
        dir.write_pid_file().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        let pid_file = run.path().join(PID_FILE);
        assert!(!std::fs::symlink_metadata(&pid_file)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(&pid_file).unwrap(),
            format!("{}\n", std::process::id())
        );
        // A hard link to the victim in its place is replaced too, not written through.
        std::fs::remove_file(&pid_file).unwrap();
        std::fs::hard_link(&target, &pid_file).unwrap();
        dir.write_pid_file().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        dir.remove_pid_file();
        assert!(!pid_file.exists());
    }

    #[test]
    fn a_created_run_dir_is_reachable_by_everyone_and_writable_by_its_owner_only() {
        let parent = tempfile::tempdir().unwrap();
        // Even under a umask that would hide it from every other user.
        let prepared = crate::host::sockets::with_umask(0o077, || {
            RunDir::prepare(&parent.path().join("run/deeper/control.sock"))
        });
        let dir = prepared.unwrap();
        assert!(dir.created);
        let mode = std::fs::metadata(parent.path().join("run/deeper"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, RUN_DIR_MODE);
        // A symbolic link as the run directory is refused.
        symlink(parent.path().join("run"), parent.path().join("link")).unwrap();
        assert!(RunDir::prepare(&parent.path().join("link/control.sock")).is_err());
    }
}
