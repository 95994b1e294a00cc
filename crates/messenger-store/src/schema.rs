//! The database schema and its migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Migrations are only ever
//! appended: a released one is never edited, because databases in the field already ran it.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{ctx, ErrorKind, StoreError};

/// The migrations in order; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: inbox, per-user state, names.
    r#"
    -- One row per received message. AUTOINCREMENT so that ids are never reused even after
    -- old messages are pruned: clients page with after_id and the per-user read floor below
    -- relies on ids only growing.
    CREATE TABLE messages (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at  INTEGER NOT NULL,           -- unix microseconds, UTC
        from_name    TEXT NOT NULL,
        to_name      TEXT NOT NULL,
        -- The addressed users joined by '\n' (user names cannot contain it), '' when the
        -- message is for everyone. Kept here for display; per-user state is in recipients.
        recipients   TEXT NOT NULL,
        for_everyone INTEGER NOT NULL CHECK (for_everyone IN (0, 1)),
        source       TEXT,                       -- "ip:port", NULL for local messages
        transport    TEXT NOT NULL,
        text         TEXT NOT NULL,
        raw          BLOB NOT NULL
    );
    -- Messages for everyone, in id order: the second half of every per-user listing.
    CREATE INDEX messages_for_everyone ON messages (id) WHERE for_everyone = 1;

    -- Per-user state. For an addressed message: one row per addressee, read 0 or 1. For a
    -- message to everyone: a row (read = 1) only once that user has read it, because who
    -- "everyone" is changes as users come and go.
    CREATE TABLE recipients (
        user       TEXT NOT NULL,
        message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        read       INTEGER NOT NULL DEFAULT 0 CHECK (read IN (0, 1)),
        PRIMARY KEY (user, message_id)
    ) WITHOUT ROWID;
    -- A user's unread addressed messages: the index holds exactly those rows, so
    -- `inbox --unread` reads only what it shows, however large the inbox grows.
    CREATE INDEX recipients_unread ON recipients (user, message_id) WHERE read = 0;
    -- Who read a message (root's view) and cascading deletes.
    CREATE INDEX recipients_by_message ON recipients (message_id);

    -- Per user, an id at or below which every message for everyone has been read, so that
    -- listing unread messages for everyone starts there instead of at the first message.
    CREATE TABLE read_floor (
        user       TEXT PRIMARY KEY,
        message_id INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- Messaging names added with NET NAME, and the computer and user names.
    CREATE TABLE names (
        name       TEXT PRIMARY KEY,             -- uppercase, no padding or suffix
        kind       TEXT NOT NULL,
        owner_uid  INTEGER NOT NULL,
        owner_name TEXT NOT NULL,
        added_at   INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 2: ids of messages that came from a network which retries (NATS JetStream delivers at
    // least once), so that a redelivered message is stored once.
    r#"
    CREATE TABLE origin_ids (
        origin_id  TEXT PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE INDEX origin_ids_by_message ON origin_ids (message_id);
    "#,
    // 3: messages that expire unless read in time (`messenger send --time`, msg.exe's /TIME).
    r#"
    -- When the message expires unless read first: unix microseconds, UTC; NULL: never.
    ALTER TABLE messages ADD COLUMN expires_at INTEGER;
    -- 0: not (yet) expired; 1: expired unread; 2: read before it expired. Settled (1 or 2)
    -- once, when it is due, so that the index below holds only what is still to settle.
    ALTER TABLE messages ADD COLUMN expiry_state INTEGER NOT NULL DEFAULT 0
        CHECK (expiry_state IN (0, 1, 2));
    -- The next messages to expire: the expiry timer reads the first of them only.
    CREATE INDEX messages_expiring ON messages (expires_at)
        WHERE expires_at IS NOT NULL AND expiry_state = 0;
    "#,
];

/// The schema version this build writes.
pub(crate) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(ctx("reading the schema version"))
}

/// Brings the schema up to date. Safe to run on every open and from two processes at once:
/// each migration runs in an immediate (write-locked) transaction that re-reads the version.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx("starting a migration"))?;
        let version = user_version(&tx)?;
        let Ok(index) = usize::try_from(version) else {
            return Err(StoreError::new(
                ErrorKind::Corrupt,
                format!("negative schema version {version}"),
            ));
        };
        let Some(sql) = MIGRATIONS.get(index) else {
            if index > MIGRATIONS.len() {
                return Err(StoreError::new(
                    ErrorKind::SchemaTooNew,
                    format!(
                        "schema version {version}, this version knows up to {}",
                        MIGRATIONS.len()
                    ),
                ));
            }
            return Ok(());
        };
        tx.execute_batch(sql).map_err(ctx("applying a migration"))?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(ctx("recording the schema version"))?;
        tx.commit().map_err(ctx("committing a migration"))?;
    }
}

/// Fails unless the schema is exactly the one this build knows (for read-only opens, which
/// cannot migrate).
pub(crate) fn check_version(conn: &Connection) -> Result<(), StoreError> {
    let version = user_version(conn)?;
    match version.cmp(&current_version()) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(StoreError::new(
            ErrorKind::SchemaTooNew,
            format!("schema version {version}"),
        )),
        std::cmp::Ordering::Less => Err(StoreError::new(
            ErrorKind::Other,
            format!("schema version {version} needs migrating; open the inbox writable once first"),
        )),
    }
}
