//! Errors of the inbox, sorted by what a caller does about them.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use rusqlite::ErrorCode;

/// What went wrong, in the terms a caller branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The disk is full, the inbox reached its size limit, the database or its directory is
    /// read-only, or an I/O error occurred. The message was not stored; a sender must be told
    /// so (SMB ERRnoroom), never success.
    NoRoom,
    /// Another process held the database locked for longer than the busy timeout.
    Busy,
    /// The group committer's queue is full: more messages are arriving than the disk takes.
    QueueFull,
    /// The group committer has shut down.
    Closed,
    /// A name with that spelling is already in the name table.
    Duplicate,
    /// The caller passed something the inbox does not store (an empty recipient name, …).
    Invalid,
    /// The database file is damaged or holds data this version cannot read.
    Corrupt,
    /// The database was written by a newer version with a schema this one does not know.
    SchemaTooNew,
    /// Anything else.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NoRoom => "the inbox cannot be written (disk full, read-only or I/O error)",
            ErrorKind::Busy => "the inbox is locked by another process",
            ErrorKind::QueueFull => "too many messages are waiting to be stored",
            ErrorKind::Closed => "the inbox writer has shut down",
            ErrorKind::Duplicate => "already exists",
            ErrorKind::Invalid => "invalid request",
            ErrorKind::Corrupt => "the inbox database is damaged",
            ErrorKind::SchemaTooNew => "the inbox was written by a newer version",
            ErrorKind::Other => "inbox error",
        })
    }
}

/// An error of the inbox. Cheap to clone, because a failed group commit hands the same error
/// to every message of the group.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct StoreError {
    kind: ErrorKind,
    detail: String,
    #[source]
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl StoreError {
    /// An error of `kind` described by `detail`.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the message could not be stored for want of room or writability, now: the
    /// sender is answered ERRnoroom and may try again later. True for [`ErrorKind::NoRoom`],
    /// [`ErrorKind::Busy`], [`ErrorKind::QueueFull`] and [`ErrorKind::Closed`].
    pub fn is_no_room(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::NoRoom | ErrorKind::Busy | ErrorKind::QueueFull | ErrorKind::Closed
        )
    }

    pub(crate) fn sqlite(context: &str, err: rusqlite::Error) -> Self {
        let kind = match &err {
            rusqlite::Error::SqliteFailure(e, _) => match e.code {
                ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied
                | ErrorCode::NoLargeFileSupport => ErrorKind::NoRoom,
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Busy,
                ErrorCode::ConstraintViolation
                    if matches!(
                        e.extended_code,
                        rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                            | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    ) =>
                {
                    ErrorKind::Duplicate
                }
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => ErrorKind::Corrupt,
                _ => ErrorKind::Other,
            },
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..) => ErrorKind::Corrupt,
            _ => ErrorKind::Other,
        };
        Self {
            kind,
            detail: format!("{context}: {err}"),
            source: Some(Arc::new(err)),
        }
    }

    pub(crate) fn io(context: &str, err: std::io::Error) -> Self {
        // Every I/O failure around the database file (no such directory, permission, full
        // disk, read-only file system) means the same to a sender: not stored.
        Self {
            kind: ErrorKind::NoRoom,
            detail: format!("{context}: {err}"),
            source: Some(Arc::new(err)),
        }
    }

    pub(crate) fn closed() -> Self {
        Self::new(ErrorKind::Closed, "the message was not stored")
    }
}

/// A `map_err` adapter: `.map_err(ctx("inserting a message"))`.
pub(crate) fn ctx(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::sqlite(context, e)
}
