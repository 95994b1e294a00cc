//! [`Store`]: one SQLite connection to the inbox and name table.

use std::fs::{DirBuilder, OpenOptions};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use messenger_core::config::Retention;
use messenger_core::{InboxQuery, NameKind, NameRecord, NewMessage, StoredMessage, TransportKind};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use crate::error::{ctx, ErrorKind, StoreError};
use crate::schema;

/// Longest origin id [`Store::insert_once`] accepts, in bytes: network message ids are short
/// (NATS ids here are 32 hex digits); the bound keeps a hostile id from bloating the index.
pub const MAX_ORIGIN_ID_LEN: usize = 128;

/// How long a statement waits for another connection's lock before failing with
/// [`ErrorKind::Busy`]. WAL readers never block the writer, so only a second writer (an
/// administrator's `sqlite3`, a backup) can make us wait; five seconds rides out a short
/// maintenance query while staying well inside a sender's SMB timeout.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection. rusqlite's default (16) is smaller than the
/// number of distinct statements the store uses, which would re-prepare on every call.
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// Permissions of a new database file: messages are private to their recipients, and the
/// daemon (root) reads them out on their behalf.
const FILE_MODE: u32 = 0o600;
/// Permissions of a directory created for the database.
const DIR_MODE: u32 = 0o700;

/// Separates recipient names in `messages.recipients`. User names cannot contain it
/// (`useradd` refuses control characters), and [`Store::validate`] refuses names that do.
const RECIPIENT_SEPARATOR: char = '\n';

/// The inbox and the name table in one SQLite database.
///
/// All methods run on the calling thread; for many concurrent writers wrap the store in a
/// [`crate::GroupCommitter`], which also groups commits.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the database at `path`, creating it (mode 0600) and its directory (0700) if
    /// needed, and migrates the schema to this version.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(parent)
                .map_err(|e| StoreError::io("creating the inbox directory", e))?;
        }
        // Create the file ourselves so that it is private from its first byte; SQLite would
        // create it with the umask's permissions. SQLite gives the -wal and -shm files the
        // permissions of the database file.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| StoreError::io("creating the inbox file", e))?;
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(ctx("opening the inbox"))?;
        configure_common(&conn)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(ctx("switching to WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::new(
                ErrorKind::Other,
                format!("the inbox cannot use WAL (journal mode is {mode})"),
            ));
        }
        // Durability. In WAL mode `synchronous = NORMAL` syncs the WAL only at checkpoints:
        // a committed transaction survives a crash of the process but can vanish if the OS
        // crashes or power fails before the next checkpoint. We tell senders a message was
        // delivered only once it is committed, so that window would lose acknowledged
        // messages. FULL syncs the WAL at every commit; group commit shares that one fsync
        // among every message in the transaction, so the cost does not scale with traffic.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(ctx("setting synchronous = FULL"))?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing database for reading only: for a second connection that reads
    /// while the writer commits (WAL lets it), for tools, and to exercise what writers do
    /// when the inbox cannot be written. Every write fails with [`ErrorKind::NoRoom`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(ctx("opening the inbox read-only"))?;
        configure_common(&conn)?;
        schema::check_version(&conn)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses every write on this connection (true) or allows them again (false). For
    /// maintenance windows; writes fail with [`ErrorKind::NoRoom`] meanwhile.
    pub fn set_read_only(&mut self, read_only: bool) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "query_only", read_only)
            .map_err(ctx("setting query_only"))
    }

    /// Caps the database at about `bytes` (None: no cap but SQLite's own). Inserts that would
    /// grow it further fail with [`ErrorKind::NoRoom`], exactly as on a full disk. The cap
    /// cannot go below the current size.
    pub fn set_size_limit(&mut self, bytes: Option<u64>) -> Result<(), StoreError> {
        // SQLite's largest max_page_count (sqlite3.c, SQLITE_MAX_PAGE_COUNT).
        const MAX_PAGES: i64 = 0xFFFF_FFFE;
        let pages = match bytes {
            None => MAX_PAGES,
            Some(b) => {
                let bytes = i64::try_from(b).unwrap_or(i64::MAX);
                let page_size: i64 = self
                    .conn
                    .pragma_query_value(None, "page_size", |r| r.get(0))
                    .map_err(ctx("reading the page size"))?;
                (bytes / page_size.max(1)).clamp(1, MAX_PAGES)
            }
        };
        self.conn
            .pragma_update(None, "max_page_count", pages)
            .map_err(ctx("setting the size limit"))
    }

    /// `PRAGMA integrity_check`: `Ok(())` if the database is sound, otherwise
    /// [`ErrorKind::Corrupt`] with SQLite's findings.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(ctx("checking integrity"))?;
        let findings: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(ctx("checking integrity"))?
            .collect::<Result<_, _>>()
            .map_err(ctx("checking integrity"))?;
        if findings.len() == 1 && findings[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::new(ErrorKind::Corrupt, findings.join("; ")))
        }
    }

    /// Checks that a message can be stored: recipient names non-empty and without line
    /// breaks. The group committer checks on submission, so one bad message cannot fail the
    /// transaction of the others.
    pub fn validate(msg: &NewMessage) -> Result<(), StoreError> {
        for r in &msg.recipients {
            if r.is_empty() || r.contains(RECIPIENT_SEPARATOR) || r.contains('\0') {
                return Err(StoreError::new(
                    ErrorKind::Invalid,
                    format!("invalid recipient name {r:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Stores `msgs` in one transaction (one fsync for all) and returns their ids in order.
    /// All or nothing: on error none is stored.
    pub fn insert_batch(&mut self, msgs: &[NewMessage]) -> Result<Vec<i64>, StoreError> {
        self.insert_all(msgs.iter())
    }

    pub(crate) fn insert_all<'a>(
        &mut self,
        msgs: impl ExactSizeIterator<Item = &'a NewMessage> + Clone,
    ) -> Result<Vec<i64>, StoreError> {
        for m in msgs.clone() {
            Self::validate(m)?;
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx("starting to store messages"))?;
        let ids = msgs
            .map(|m| Self::insert_in(&tx, m))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().map_err(ctx("committing messages"))?;
        Ok(ids)
    }

    /// Stores `msg`, which expires at `expires_at` (unix microseconds) unless somebody reads
    /// it first (see [`Store::expire_due`]); message and expiry are one transaction.
    pub fn insert_expiring(
        &mut self,
        msg: &NewMessage,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        Self::validate(msg)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx("starting to store a message"))?;
        let id = Self::insert_in(&tx, msg)?;
        Self::set_expiry_in(&tx, id, expires_at)?;
        tx.commit().map_err(ctx("committing a message"))?;
        Ok(id)
    }

    /// Settles at most `max` of the messages whose expiry is at or before `now_micros`, the
    /// earliest first: one nobody has read becomes expired, one somebody read is left as it
    /// is. Returns the messages that expired. One transaction; call again while it returns
    /// `max` settled messages' worth (see [`Store::next_expiry`]).
    pub fn expire_due(
        &mut self,
        now_micros: i64,
        max: usize,
    ) -> Result<Vec<ExpiredMessage>, StoreError> {
        let context = || ctx("expiring messages");
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(context())?;
        let due: Vec<(i64, String, bool)> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT m.id, m.recipients, EXISTS (SELECT 1 FROM recipients r                        WHERE r.message_id = m.id AND r.read = 1)                      FROM messages m                      WHERE m.expires_at IS NOT NULL AND m.expiry_state = 0                        AND m.expires_at <= ?1                      ORDER BY m.expires_at LIMIT ?2",
                )
                .map_err(context())?;
            let rows = stmt
                .query_map(params![now_micros, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(context())?;
            rows.collect::<rusqlite::Result<_>>().map_err(context())?
        };
        let mut expired = Vec::new();
        {
            let mut settle = tx
                .prepare_cached("UPDATE messages SET expiry_state = ?2 WHERE id = ?1")
                .map_err(context())?;
            for (id, recipients, read) in due {
                settle
                    .execute(params![id, if read { 2 } else { 1 }])
                    .map_err(context())?;
                if !read {
                    expired.push(ExpiredMessage {
                        id,
                        recipients: split_recipients(&recipients),
                    });
                }
            }
        }
        tx.commit().map_err(context())?;
        Ok(expired)
    }

    /// When the next message not yet settled expires (unix microseconds), if any.
    pub fn next_expiry(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT min(expires_at) FROM messages                  WHERE expires_at IS NOT NULL AND expiry_state = 0",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(ctx("reading the next expiry"))
    }

    /// Stores `msg` unless a message with the same `origin_id` (the id the sending network
    /// gave it) is already stored: returns the new id, or `None` for a duplicate. The check
    /// and the insert are one transaction, so a redelivery racing the first delivery is
    /// still stored once.
    pub fn insert_once(
        &mut self,
        origin_id: &str,
        msg: &NewMessage,
    ) -> Result<Option<i64>, StoreError> {
        let ids = self.insert_once_batch(&[(origin_id, msg)])?;
        Ok(ids.into_iter().next().flatten())
    }

    /// Gives the message `id`, just inserted in `tx`, its expiry.
    fn set_expiry_in(
        tx: &rusqlite::Transaction<'_>,
        id: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "UPDATE messages SET expires_at = ?2 WHERE id = ?1",
            params![id, expires_at],
        )
        .map(|_| ())
        .map_err(ctx("storing an expiry"))
    }

    /// Refuses an origin id that is empty or longer than [`MAX_ORIGIN_ID_LEN`].
    fn check_origin_id(origin_id: &str) -> Result<(), StoreError> {
        if origin_id.is_empty() || origin_id.len() > MAX_ORIGIN_ID_LEN {
            return Err(StoreError::new(
                ErrorKind::Invalid,
                format!("origin id of {} bytes", origin_id.len()),
            ));
        }
        Ok(())
    }

    /// [`Store::insert_once`] for a message that expires at `expires_at` (unix microseconds,
    /// as [`Store::insert_expiring`]) unless read first: both in one transaction, or nothing.
    pub fn insert_once_expiring(
        &mut self,
        origin_id: &str,
        msg: &NewMessage,
        expires_at: i64,
    ) -> Result<Option<i64>, StoreError> {
        Self::validate(msg)?;
        Self::check_origin_id(origin_id)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx("starting to store a message"))?;
        let id = Self::insert_once_in(&tx, origin_id, msg)?;
        if let Some(id) = id {
            Self::set_expiry_in(&tx, id, expires_at)?;
        }
        tx.commit().map_err(ctx("committing a message"))?;
        Ok(id)
    }

    /// [`Store::insert_once`] for several messages in one transaction (one fsync for all):
    /// for each, the new id or `None` for a duplicate (of a stored message or of an earlier
    /// one in `msgs`). All or nothing: on error none is stored.
    pub fn insert_once_batch(
        &mut self,
        msgs: &[(&str, &NewMessage)],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        for (origin_id, msg) in msgs {
            Self::validate(msg)?;
            Self::check_origin_id(origin_id)?;
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx("starting to store a message"))?;
        let ids = msgs
            .iter()
            .map(|(origin_id, msg)| Self::insert_once_in(&tx, origin_id, msg))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().map_err(ctx("committing messages"))?;
        Ok(ids)
    }

    fn insert_once_in(
        tx: &rusqlite::Transaction<'_>,
        origin_id: &str,
        msg: &NewMessage,
    ) -> Result<Option<i64>, StoreError> {
        let seen: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM origin_ids WHERE origin_id = ?1)",
                params![origin_id],
                |r| r.get(0),
            )
            .map_err(ctx("looking up a message id"))?;
        if seen {
            return Ok(None);
        }
        let id = {
            let id = Self::insert_in(tx, msg)?;
            tx.execute(
                "INSERT INTO origin_ids (origin_id, message_id) VALUES (?1, ?2)",
                params![origin_id, id],
            )
            .map_err(ctx("storing a message id"))?;
            id
        };
        Ok(Some(id))
    }

    /// Inserts `msg` and its recipients in the open transaction `tx`; returns its id.
    fn insert_in(tx: &rusqlite::Transaction<'_>, msg: &NewMessage) -> Result<i64, StoreError> {
        let id = tx
            .prepare_cached(
                "INSERT INTO messages (received_at, from_name, to_name, recipients, \
                 for_everyone, source, transport, text, raw) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut insert| {
                insert.insert(params![
                    msg.received_at,
                    msg.from,
                    msg.to,
                    msg.recipients.join("\n"),
                    msg.is_for_everyone(),
                    msg.source.map(|s| s.to_string()),
                    msg.transport.as_str(),
                    msg.text,
                    msg.raw,
                ])
            })
            .map_err(ctx("storing a message"))?;
        let mut addressee = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO recipients (user, message_id, read) VALUES (?1, ?2, 0)",
            )
            .map_err(ctx("storing a recipient"))?;
        for user in &msg.recipients {
            addressee
                .execute(params![user, id])
                .map_err(ctx("storing a recipient"))?;
        }
        Ok(id)
    }

    /// Messages matching `query`, the oldest first.
    ///
    /// With a user: messages addressed to that user and messages for everyone, with that
    /// user's read flags. Without: every message (root's view), with `read` meaning every
    /// addressee has read it. `unread_only` for one user reads only unread rows (indexed);
    /// for all users it scans the inbox.
    pub fn list(&self, query: &InboxQuery) -> Result<Vec<StoredMessage>, StoreError> {
        let after = query.after_id.unwrap_or(0).max(0);
        // SQLite takes a negative LIMIT as no limit.
        let limit: i64 = query
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        match &query.user {
            Some(user) if query.unread_only => {
                let floor = self.read_floor(user)?.max(after);
                let mut stmt = self
                    .conn
                    .prepare_cached(USER_UNREAD_SQL)
                    .map_err(ctx("listing unread messages"))?;
                let rows = stmt
                    .query_map(params![user, after, limit, floor], |r| user_row(r, user))
                    .map_err(ctx("listing unread messages"))?;
                collect(rows)
            }
            Some(user) => {
                let mut stmt = self
                    .conn
                    .prepare_cached(USER_ALL_SQL)
                    .map_err(ctx("listing messages"))?;
                let rows = stmt
                    .query_map(params![user, after, limit], |r| user_row(r, user))
                    .map_err(ctx("listing messages"))?;
                collect(rows)
            }
            None => {
                let sql = if query.unread_only {
                    ALL_UNREAD_SQL
                } else {
                    ALL_SQL
                };
                let mut stmt = self
                    .conn
                    .prepare_cached(sql)
                    .map_err(ctx("listing messages"))?;
                let rows = stmt
                    .query_map(params![after, limit], all_row)
                    .map_err(ctx("listing messages"))?;
                collect(rows)
            }
        }
    }

    /// How many messages match `query` (its `limit` ignored): for "N more" and "the newest N".
    pub fn count(&self, query: &InboxQuery) -> Result<u64, StoreError> {
        let n: i64 = self.query_ids(query, IdsOf::Count, |stmt, params| {
            stmt.query_row(params, |r| r.get(0))
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The id of the matching message with `offset` matching messages before it (0: the
    /// first), oldest first; `None` if fewer match. With it a listing of the newest N starts
    /// at the right place without reading the messages it skips.
    pub fn nth_id(&self, query: &InboxQuery, offset: u64) -> Result<Option<i64>, StoreError> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.query_ids(query, IdsOf::Nth(offset), |stmt, params| {
            stmt.query_row(params, |r| r.get(0)).optional()
        })
    }

    /// The id of the matching message with `offset` matching messages after it (0: the
    /// newest); `None` if fewer match. Walks from the newest, so finding where the newest N
    /// of a large inbox start costs about N steps.
    pub fn nth_newest_id(
        &self,
        query: &InboxQuery,
        offset: u64,
    ) -> Result<Option<i64>, StoreError> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.query_ids(query, IdsOf::NthNewest(offset), |stmt, params| {
            stmt.query_row(params, |r| r.get(0)).optional()
        })
    }

    fn query_ids<R>(
        &self,
        query: &InboxQuery,
        what: IdsOf,
        run: impl FnOnce(
            &mut rusqlite::CachedStatement<'_>,
            &[&dyn rusqlite::ToSql],
        ) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let after = query.after_id.unwrap_or(0).max(0);
        let offset = match what {
            IdsOf::Count => 0,
            IdsOf::Nth(n) | IdsOf::NthNewest(n) => n,
        };
        let context = ctx("counting messages");
        match &query.user {
            Some(user) if query.unread_only => {
                let floor = self.read_floor(user)?.max(after);
                let sql = match what {
                    IdsOf::Count => USER_UNREAD_COUNT_SQL,
                    IdsOf::Nth(_) => USER_UNREAD_NTH_SQL,
                    IdsOf::NthNewest(_) => USER_UNREAD_NTH_NEWEST_SQL,
                };
                let mut stmt = self.conn.prepare_cached(sql).map_err(context)?;
                run(&mut stmt, &[user, &after, &offset, &floor]).map_err(ctx("counting messages"))
            }
            Some(user) => {
                let (sql, params): (&str, &[&dyn rusqlite::ToSql]) = match what {
                    IdsOf::Count => (USER_ALL_COUNT_SQL, &[user, &after]),
                    IdsOf::Nth(_) => (USER_ALL_NTH_SQL, &[user, &after, &offset]),
                    IdsOf::NthNewest(_) => (USER_ALL_NTH_NEWEST_SQL, &[user, &after, &offset]),
                };
                let mut stmt = self.conn.prepare_cached(sql).map_err(context)?;
                run(&mut stmt, params).map_err(ctx("counting messages"))
            }
            None => {
                let (sql, params): (&str, &[&dyn rusqlite::ToSql]) = match (what, query.unread_only)
                {
                    (IdsOf::Count, false) => (ALL_COUNT_SQL, &[&after]),
                    (IdsOf::Count, true) => (ALL_UNREAD_COUNT_SQL, &[&after]),
                    (IdsOf::Nth(_), false) => (ALL_NTH_SQL, &[&after, &offset]),
                    (IdsOf::Nth(_), true) => (ALL_UNREAD_NTH_SQL, &[&after, &offset]),
                    (IdsOf::NthNewest(_), false) => (ALL_NTH_NEWEST_SQL, &[&after, &offset]),
                    (IdsOf::NthNewest(_), true) => (ALL_UNREAD_NTH_NEWEST_SQL, &[&after, &offset]),
                };
                let mut stmt = self.conn.prepare_cached(sql).map_err(context)?;
                run(&mut stmt, params).map_err(ctx("counting messages"))
            }
        }
    }

    /// Runs `f` inside one read transaction, so that the queries it makes (a count, then a
    /// page) see the same snapshot of the inbox however many commits happen meanwhile.
    pub fn consistent_read<R>(
        &self,
        f: impl FnOnce(&Store) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(ctx("starting a read"))?;
        let result = f(self);
        // A read transaction has nothing to commit; ending it releases the snapshot.
        tx.finish().map_err(ctx("ending a read"))?;
        result
    }

    /// Works out what pruning to `retention` at `now_micros` has to remove. Only reads (it
    /// may walk the whole inbox to count), so run it on a reading connection, never on the
    /// writer; [`Store::prune_batch`] then removes the messages a few at a time.
    pub fn plan_prune(
        &self,
        retention: &Retention,
        now_micros: i64,
    ) -> Result<PrunePlan, StoreError> {
        let context = || ctx("planning the pruning");
        let (first, last): (i64, i64) = self
            .conn
            .prepare_cached("SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM messages")
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(context())?;
        // Age, in arrival order: everything before the first message young enough to keep.
        // Ids grow with arrival, so this stops at the first young message instead of
        // scanning the inbox; a message stamped older behind a younger one (the clock was set
        // back) waits until the younger one ages out.
        let cutoff = retention.age_cutoff_micros(now_micros);
        let first_young: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM messages WHERE received_at >= ?1 ORDER BY id LIMIT 1")
            .and_then(|mut s| s.query_row(params![cutoff], |r| r.get(0)).optional())
            .map_err(context())?;
        let too_old_below = first_young.unwrap_or(last.saturating_add(1));
        // Total: ids are never reused, so the span of ids bounds the count, and only an inbox
        // whose span exceeds the limit needs counting.
        let max_total = i64::try_from(retention.max_messages).unwrap_or(i64::MAX);
        let beyond_total_below = if last == 0 || last - first < max_total {
            0
        } else {
            self.conn
                .prepare_cached("SELECT id FROM messages ORDER BY id DESC LIMIT 1 OFFSET ?1")
                .and_then(|mut s| {
                    s.query_row(params![max_total.saturating_sub(1)], |r| r.get(0))
                        .optional()
                })
                .map_err(context())?
                .unwrap_or(0)
        };
        let max_per_user = i64::try_from(retention.max_messages_per_user).unwrap_or(i64::MAX);
        let crowded: Vec<String> = self
            .conn
            .prepare_cached(
                // NOT IN rather than a join: SQLite gathers the ids of messages for everyone
                // once from their small index, where a join would read the row of every
                // message (text and all) just to look at one flag: 0.3 s instead of 2 s for a
                // million messages.
                "SELECT r.user FROM recipients r \
                 WHERE r.message_id NOT IN (SELECT id FROM messages WHERE for_everyone = 1) \
                 GROUP BY r.user HAVING count(*) > ?1",
            )
            .and_then(|mut s| {
                s.query_map(params![max_per_user], |r| r.get(0))?
                    .collect::<Result<_, _>>()
            })
            .map_err(context())?;
        let mut users = Vec::with_capacity(crowded.len());
        for user in crowded {
            let below: Option<i64> = self
                .conn
                .prepare_cached(
                    "SELECT r.message_id FROM recipients r JOIN messages m ON m.id = r.message_id \
                     WHERE r.user = ?1 AND m.for_everyone = 0 \
                     ORDER BY r.message_id DESC LIMIT 1 OFFSET ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![user, max_per_user.saturating_sub(1)], |r| r.get(0))
                        .optional()
                })
                .map_err(context())?;
            if let Some(below) = below {
                users.push((user, below));
            }
        }
        let below_id = too_old_below
            .max(beyond_total_below)
            .min(last.saturating_add(1));
        Ok(PrunePlan {
            // Nothing below the oldest message: nothing to remove (0, as in an empty plan).
            below_id: if below_id > first { below_id } else { 0 },
            users,
        })
    }

    /// Removes at most `max` messages (or per-user copies) that `plan` condemns, oldest
    /// first, in one short transaction, and returns how many it removed: 0 once the plan is
    /// carried out. Small batches keep the writer free for arriving messages in between.
    pub fn prune_batch(&mut self, plan: &PrunePlan, max: usize) -> Result<usize, StoreError> {
        let context = || ctx("pruning the inbox");
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(context())?;
        let mut removed: i64 = 0;
        if plan.below_id > 0 {
            removed += tx
                .prepare_cached(
                    "DELETE FROM messages WHERE id IN \
                     (SELECT id FROM messages WHERE id < ?1 ORDER BY id LIMIT ?2)",
                )
                .and_then(|mut s| s.execute(params![plan.below_id, max]))
                .map_err(context())? as i64;
        }
        for (user, below) in &plan.users {
            if removed >= max {
                break;
            }
            let ids: Vec<i64> = tx
                .prepare_cached(
                    "SELECT r.message_id FROM recipients r JOIN messages m ON m.id = r.message_id \
                     WHERE r.user = ?1 AND r.message_id < ?2 AND m.for_everyone = 0 \
                     ORDER BY r.message_id LIMIT ?3",
                )
                .and_then(|mut s| {
                    s.query_map(params![user, below, max - removed], |r| r.get(0))?
                        .collect::<Result<_, _>>()
                })
                .map_err(context())?;
            for id in ids {
                tx.prepare_cached("DELETE FROM recipients WHERE user = ?1 AND message_id = ?2")
                    .and_then(|mut s| s.execute(params![user, id]))
                    .map_err(context())?;
                // The message itself goes once no addressee keeps it.
                tx.prepare_cached(
                    "DELETE FROM messages WHERE id = ?1 AND for_everyone = 0 AND NOT EXISTS \
                     (SELECT 1 FROM recipients r WHERE r.message_id = ?1)",
                )
                .and_then(|mut s| s.execute(params![id]))
                .map_err(context())?;
                removed += 1;
            }
        }
        tx.commit().map_err(context())?;
        Ok(usize::try_from(removed).unwrap_or(0))
    }

    /// One message in root's view.
    pub fn get(&self, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(GET_SQL)
            .map_err(ctx("reading a message"))?;
        let row = stmt
            .query_row(params![id], all_row)
            .optional()
            .map_err(ctx("reading a message"))?;
        row.transpose()
    }

    /// One message as `user` sees it; `None` if it does not exist or is not for that user.
    pub fn get_for_user(&self, user: &str, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(GET_FOR_USER_SQL)
            .map_err(ctx("reading a message"))?;
        let row = stmt
            .query_row(params![user, id], |r| user_row(r, user))
            .optional()
            .map_err(ctx("reading a message"))?;
        row.transpose()
    }

    /// Marks messages read for `user`; ids that are not for that user, or already read, are
    /// ignored. Returns how many became read.
    pub fn mark_read(&mut self, user: &str, ids: &[i64]) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx("marking messages read"))?;
        let mut changed = 0;
        let mut for_everyone_read = false;
        {
            let mut addressed = tx
                .prepare_cached(
                    "UPDATE recipients SET read = 1 \
                     WHERE user = ?1 AND message_id = ?2 AND read = 0",
                )
                .map_err(ctx("marking messages read"))?;
            let mut everyone = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO recipients (user, message_id, read) \
                     SELECT ?1, id, 1 FROM messages WHERE id = ?2 AND for_everyone = 1",
                )
                .map_err(ctx("marking messages read"))?;
            for &id in ids {
                let n = addressed
                    .execute(params![user, id])
                    .map_err(ctx("marking messages read"))?;
                if n > 0 {
                    changed += n;
                    continue;
                }
                let n = everyone
                    .execute(params![user, id])
                    .map_err(ctx("marking messages read"))?;
                if n > 0 {
                    changed += n;
                    for_everyone_read = true;
                }
            }
        }
        if for_everyone_read {
            raise_read_floor(&tx, user)?;
        }
        tx.commit().map_err(ctx("marking messages read"))?;
        Ok(changed)
    }

    /// The origin ids (see [`Store::insert_once`]) of those of `ids` that came with one, as
    /// `(id, origin id)`; messages stored without one are left out.
    pub fn origin_ids(&self, ids: &[i64]) -> Result<Vec<(i64, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT origin_id FROM origin_ids WHERE message_id = ?1")
            .map_err(ctx("reading origin ids"))?;
        let mut found = Vec::new();
        for &id in ids {
            let origin: Option<String> = stmt
                .query_row(params![id], |r| r.get(0))
                .optional()
                .map_err(ctx("reading origin ids"))?;
            if let Some(origin) = origin {
                found.push((id, origin));
            }
        }
        Ok(found)
    }

    /// How many messages `user` has not read (addressed to them or for everyone).
    pub fn unread_count(&self, user: &str) -> Result<u64, StoreError> {
        let floor = self.read_floor(user)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT (SELECT count(*) FROM recipients WHERE user = ?1 AND read = 0) \
                 + (SELECT count(*) FROM messages m \
                    WHERE m.for_everyone = 1 AND m.id > ?2 AND NOT EXISTS \
                      (SELECT 1 FROM recipients r WHERE r.user = ?1 AND r.message_id = m.id))",
            )
            .map_err(ctx("counting unread messages"))?;
        let n: i64 = stmt
            .query_row(params![user, floor], |r| r.get(0))
            .map_err(ctx("counting unread messages"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn read_floor(&self, user: &str) -> Result<i64, StoreError> {
        read_floor_of(&self.conn, user)
    }

    /// Adds a messaging name. The name is stored uppercase. Fails with
    /// [`ErrorKind::Duplicate`] (NERR 2276) if the table has it already.
    pub fn add_name(&mut self, record: &NameRecord) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO names (name, kind, owner_uid, owner_name, added_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(ctx("adding a name"))?;
        stmt.execute(params![
            record.name.to_ascii_uppercase(),
            record.kind.as_str(),
            record.owner_uid,
            record.owner_name,
            record.added_at,
        ])
        .map_err(ctx("adding a name"))?;
        Ok(())
    }

    /// Deletes a messaging name (any case); whether it was there.
    pub fn delete_name(&mut self, name: &str) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM names WHERE name = ?1")
            .map_err(ctx("deleting a name"))?;
        let n = stmt
            .execute(params![name.to_ascii_uppercase()])
            .map_err(ctx("deleting a name"))?;
        Ok(n > 0)
    }

    /// Every name, in the order they were added.
    pub fn list_names(&self) -> Result<Vec<NameRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, kind, owner_uid, owner_name, added_at FROM names \
                 ORDER BY added_at, name",
            )
            .map_err(ctx("listing names"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(ctx("listing names"))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, kind, owner_uid, owner_name, added_at) =
                row.map_err(ctx("listing names"))?;
            let kind = NameKind::from_name(&kind).ok_or_else(|| {
                StoreError::new(ErrorKind::Corrupt, format!("unknown name kind {kind:?}"))
            })?;
            out.push(NameRecord {
                name,
                kind,
                owner_uid,
                owner_name,
                added_at,
            });
        }
        Ok(out)
    }
}

fn configure_common(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(ctx("setting the busy timeout"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(ctx("enabling foreign keys"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(())
}

fn read_floor_of(conn: &Connection, user: &str) -> Result<i64, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT message_id FROM read_floor WHERE user = ?1")
        .map_err(ctx("reading the read floor"))?;
    let floor: Option<i64> = stmt
        .query_row(params![user], |r| r.get(0))
        .optional()
        .map_err(ctx("reading the read floor"))?;
    Ok(floor.unwrap_or(0))
}

/// Moves `user`'s read floor up to just below their first unread message for everyone (or
/// to the newest such message if they have read all). The walk starts at the old floor and
/// stops at the first unread message, so it costs about as much as the marking did.
fn raise_read_floor(conn: &Connection, user: &str) -> Result<(), StoreError> {
    let floor = read_floor_of(conn, user)?;
    let first_unread: Option<i64> = conn
        .prepare_cached(
            "SELECT m.id FROM messages m \
             WHERE m.for_everyone = 1 AND m.id > ?2 AND NOT EXISTS \
               (SELECT 1 FROM recipients r WHERE r.user = ?1 AND r.message_id = m.id) \
             ORDER BY m.id LIMIT 1",
        )
        .and_then(|mut s| s.query_row(params![user, floor], |r| r.get(0)).optional())
        .map_err(ctx("raising the read floor"))?;
    let new_floor = match first_unread {
        Some(id) => id - 1,
        None => conn
            .prepare_cached("SELECT coalesce(max(id), 0) FROM messages WHERE for_everyone = 1")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(ctx("raising the read floor"))?,
    };
    if new_floor > floor {
        conn.prepare_cached(
            "INSERT INTO read_floor (user, message_id) VALUES (?1, ?2) \
             ON CONFLICT (user) DO UPDATE SET message_id = excluded.message_id",
        )
        .and_then(|mut s| s.execute(params![user, new_floor]))
        .map_err(ctx("raising the read floor"))?;
    }
    Ok(())
}

/// The message columns every listing selects after the id, in this order (see
/// [`message_from_row`]). The id comes first and is spelt per query: where rows are driven by
/// the recipients table it must be `r.message_id`, the column the index is ordered by, or
/// SQLite does not see that the rows already come in id order and sorts them.
macro_rules! message_columns {
    () => {
        "m.received_at, m.from_name, m.to_name, m.recipients, m.source, m.transport, \
         m.text, m.raw, m.expires_at, m.expiry_state"
    };
}

/// The column of the read flag after [`message_columns`], and of root's readers after it.
const READ_COLUMN: usize = 11;

// One user's view. Both halves deliver rows in id order from an index (the recipients
// primary key or its unread partial index; the for-everyone partial index), so SQLite merges
// them and stops at the LIMIT without sorting.
// ?1 user, ?2 after id, ?3 limit.
const USER_ALL_SQL: &str = concat!(
    "SELECT r.message_id, ",
    message_columns!(),
    ", r.read FROM recipients r JOIN messages m ON m.id = r.message_id \
     WHERE r.user = ?1 AND r.message_id > ?2 AND m.for_everyone = 0 \
     UNION ALL SELECT m.id, ",
    message_columns!(),
    ", EXISTS (SELECT 1 FROM recipients r WHERE r.user = ?1 AND r.message_id = m.id) \
     FROM messages m WHERE m.for_everyone = 1 AND m.id > ?2 \
     ORDER BY 1 LIMIT ?3"
);

// ?1 user, ?2 after id, ?3 limit, ?4 max(after id, the user's read floor). Rows with
// read = 0 exist only for addressed messages, so the first half needs no for_everyone test.
const USER_UNREAD_SQL: &str = concat!(
    "SELECT r.message_id, ",
    message_columns!(),
    ", 0 FROM recipients r JOIN messages m ON m.id = r.message_id \
     WHERE r.user = ?1 AND r.read = 0 AND r.message_id > ?2 \
     UNION ALL SELECT m.id, ",
    message_columns!(),
    ", 0 FROM messages m WHERE m.for_everyone = 1 AND m.id > ?4 AND NOT EXISTS \
       (SELECT 1 FROM recipients r WHERE r.user = ?1 AND r.message_id = m.id) \
     ORDER BY 1 LIMIT ?3"
);

// ?1 user, ?2 id.
const GET_FOR_USER_SQL: &str = concat!(
    "SELECT m.id, ",
    message_columns!(),
    ", coalesce((SELECT r.read FROM recipients r WHERE r.user = ?1 AND r.message_id = m.id), 0) \
     FROM messages m WHERE m.id = ?2 AND (m.for_everyone = 1 OR EXISTS \
       (SELECT 1 FROM recipients r WHERE r.user = ?1 AND r.message_id = m.id))"
);

/// Root's read flag: every addressee has read it; for a message to everyone, somebody has.
macro_rules! all_read_expr {
    () => {
        "CASE WHEN m.for_everyone = 1 \
           THEN EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id) \
           ELSE NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.read = 0) \
         END"
    };
}

macro_rules! all_read_by_expr {
    () => {
        "(SELECT group_concat(r.user, char(10)) FROM recipients r \
          WHERE r.message_id = m.id AND r.read = 1)"
    };
}

// ?1 after id, ?2 limit.
const ALL_SQL: &str = concat!(
    "SELECT m.id, ",
    message_columns!(),
    ", ",
    all_read_expr!(),
    ", ",
    all_read_by_expr!(),
    " FROM messages m WHERE m.id > ?1 ORDER BY m.id LIMIT ?2"
);

const ALL_UNREAD_SQL: &str = concat!(
    "SELECT m.id, ",
    message_columns!(),
    ", 0, ",
    all_read_by_expr!(),
    " FROM messages m WHERE m.id > ?1 AND NOT (",
    all_read_expr!(),
    ") ORDER BY m.id LIMIT ?2"
);

// ?1 id.
const GET_SQL: &str = concat!(
    "SELECT m.id, ",
    message_columns!(),
    ", ",
    all_read_expr!(),
    ", ",
    all_read_by_expr!(),
    " FROM messages m WHERE m.id = ?1"
);

/// A message that expired unread (see [`Store::expire_due`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredMessage {
    /// Its id.
    pub id: i64,
    /// The users it is for (none: everyone), to tell whose followers.
    pub recipients: Vec<String>,
}

/// What pruning removes, worked out by [`Store::plan_prune`] on a reading connection and
/// carried out by [`Store::prune_batch`] on the writer. Applying an old plan is safe: newer
/// messages only push the true limits up, never down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunePlan {
    /// Every message with an id below this goes (too old, or beyond `max_messages`).
    pub below_id: i64,
    /// Per user: that user's addressed messages with ids below the given one go (beyond
    /// `max_messages_per_user`). A message addressed to others too stays for them.
    pub users: Vec<(String, i64)>,
}

impl PrunePlan {
    /// Whether there is nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.below_id == 0 && self.users.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
enum IdsOf {
    Count,
    Nth(i64),
    NthNewest(i64),
}

// The ids of each listing, for counting and for finding where the newest N start. Same
// filters as the listings below; ?3 is the offset where there is one.
macro_rules! user_all_ids {
    () => {
        "SELECT r.message_id FROM recipients r JOIN messages m ON m.id = r.message_id \
         WHERE r.user = ?1 AND r.message_id > ?2 AND m.for_everyone = 0 \
         UNION ALL SELECT m.id FROM messages m WHERE m.for_everyone = 1 AND m.id > ?2"
    };
}
// ?4 as in USER_UNREAD_SQL.
macro_rules! user_unread_ids {
    () => {
        "SELECT r.message_id FROM recipients r \
         WHERE r.user = ?1 AND r.read = 0 AND r.message_id > ?2 \
         UNION ALL SELECT m.id FROM messages m WHERE m.for_everyone = 1 AND m.id > ?4 \
         AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.user = ?1 AND r.message_id = m.id)"
    };
}
const USER_ALL_COUNT_SQL: &str = concat!("SELECT count(*) FROM (", user_all_ids!(), ")");
const USER_ALL_NTH_SQL: &str = concat!(user_all_ids!(), " ORDER BY 1 LIMIT 1 OFFSET ?3");
// ?3 does not appear in the count; SQLite numbers parameters by the largest index, so the
// count takes the same four as the other unread queries.
const USER_UNREAD_COUNT_SQL: &str = concat!("SELECT count(*) FROM (", user_unread_ids!(), ")");
const USER_UNREAD_NTH_SQL: &str = concat!(user_unread_ids!(), " ORDER BY 1 LIMIT 1 OFFSET ?3");
const USER_ALL_NTH_NEWEST_SQL: &str =
    concat!(user_all_ids!(), " ORDER BY 1 DESC LIMIT 1 OFFSET ?3");
const USER_UNREAD_NTH_NEWEST_SQL: &str =
    concat!(user_unread_ids!(), " ORDER BY 1 DESC LIMIT 1 OFFSET ?3");
const ALL_NTH_NEWEST_SQL: &str =
    "SELECT m.id FROM messages m WHERE m.id > ?1 ORDER BY m.id DESC LIMIT 1 OFFSET ?2";
const ALL_UNREAD_NTH_NEWEST_SQL: &str = concat!(
    "SELECT m.id FROM messages m WHERE m.id > ?1 AND NOT (",
    all_read_expr!(),
    ") ORDER BY m.id DESC LIMIT 1 OFFSET ?2"
);
const ALL_COUNT_SQL: &str = "SELECT count(*) FROM messages m WHERE m.id > ?1";
const ALL_NTH_SQL: &str =
    "SELECT m.id FROM messages m WHERE m.id > ?1 ORDER BY m.id LIMIT 1 OFFSET ?2";
const ALL_UNREAD_COUNT_SQL: &str = concat!(
    "SELECT count(*) FROM messages m WHERE m.id > ?1 AND NOT (",
    all_read_expr!(),
    ")"
);
const ALL_UNREAD_NTH_SQL: &str = concat!(
    "SELECT m.id FROM messages m WHERE m.id > ?1 AND NOT (",
    all_read_expr!(),
    ") ORDER BY m.id LIMIT 1 OFFSET ?2"
);

/// Rows are mapped in two steps: SQLite errors inside rusqlite's closure, our own decoding
/// errors (a bad address or transport in the file) as the inner result.
type Decoded = Result<StoredMessage, StoreError>;

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<Result<(i64, NewMessage), StoreError>> {
    let id: i64 = r.get(0)?;
    let recipients: String = r.get(4)?;
    let source: Option<String> = r.get(5)?;
    let transport: String = r.get(6)?;
    let source = match source.map(|s| s.parse::<SocketAddr>()) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(_)) => {
            return Ok(Err(StoreError::new(
                ErrorKind::Corrupt,
                format!("message {id}: bad source address"),
            )))
        }
    };
    let Ok(transport) = transport.parse::<TransportKind>() else {
        return Ok(Err(StoreError::new(
            ErrorKind::Corrupt,
            format!("message {id}: unknown transport {transport:?}"),
        )));
    };
    Ok(Ok((
        id,
        NewMessage {
            received_at: r.get(1)?,
            from: r.get(2)?,
            to: r.get(3)?,
            recipients: split_recipients(&recipients),
            source,
            transport,
            text: r.get(7)?,
            raw: r.get(8)?,
        },
    )))
}

/// The recipients column as a list (none: everyone).
fn split_recipients(recipients: &str) -> Vec<String> {
    if recipients.is_empty() {
        Vec::new()
    } else {
        recipients
            .split(RECIPIENT_SEPARATOR)
            .map(str::to_owned)
            .collect()
    }
}

/// The expiry columns: when, and whether it expired unread.
fn expiry_from_row(r: &Row<'_>) -> rusqlite::Result<(Option<i64>, bool)> {
    let state: i64 = r.get(10)?;
    Ok((r.get(9)?, state == 1))
}

fn user_row(r: &Row<'_>, user: &str) -> rusqlite::Result<Decoded> {
    let read: bool = r.get(READ_COLUMN)?;
    let (expires_at, expired) = expiry_from_row(r)?;
    Ok(message_from_row(r)?.map(|(id, message)| StoredMessage {
        id,
        message,
        read,
        read_by: if read {
            vec![user.to_owned()]
        } else {
            Vec::new()
        },
        expires_at,
        expired,
    }))
}

fn all_row(r: &Row<'_>) -> rusqlite::Result<Decoded> {
    let read: bool = r.get(READ_COLUMN)?;
    let read_by: Option<String> = r.get(READ_COLUMN + 1)?;
    let (expires_at, expired) = expiry_from_row(r)?;
    Ok(message_from_row(r)?.map(|(id, message)| {
        let mut read_by: Vec<String> = read_by
            .map(|s| s.split('\n').map(str::to_owned).collect())
            .unwrap_or_default();
        read_by.sort();
        StoredMessage {
            id,
            message,
            read,
            read_by,
            expires_at,
            expired,
        }
    }))
}

fn collect(
    rows: impl Iterator<Item = rusqlite::Result<Decoded>>,
) -> Result<Vec<StoredMessage>, StoreError> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(ctx("reading messages"))??);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str, n_params: usize) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let params: Vec<i64> = vec![1; n_params];
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    /// An inbox of the previous schema (2) opens under this one: its messages are kept,
    /// with no expiry, and new messages can expire.
    #[test]
    fn a_schema_2_inbox_migrates_to_expiring_messages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &schema::MIGRATIONS[..2] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute(
                "INSERT INTO messages (received_at, from_name, to_name, recipients, \
                 for_everyone, source, transport, text, raw) \
                 VALUES (1, 'ALICE', 'BOB', 'bob', 0, NULL, 'local', 'old', x'6f6c64')",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO recipients (user, message_id, read) VALUES ('bob', 1, 0)",
                [],
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        assert_eq!(
            schema::current_version(),
            3,
            "a new migration needs a test like this one"
        );
        let old = store.get(1).unwrap().unwrap();
        assert_eq!(old.message.text, "old");
        assert_eq!((old.expires_at, old.expired), (None, false));
        assert_eq!(store.next_expiry().unwrap(), None);
        assert!(store.expire_due(i64::MAX, 10).unwrap().is_empty());
        let mut new = old.message.clone();
        new.text = "new".into();
        let id = store.insert_expiring(&new, 5).unwrap();
        assert_eq!(store.expire_due(5, 10).unwrap()[0].id, id);
        let p = plan(
            &store.conn,
            "SELECT min(expires_at) FROM messages \
             WHERE expires_at IS NOT NULL AND expiry_state = 0",
            0,
        );
        assert!(p.contains("messages_expiring"), "{p}");
    }

    /// The unread listing of one user must read indexes only, never scan a table: that is
    /// what keeps `inbox --unread` fast on a large inbox.
    #[test]
    fn unread_listing_uses_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("i.db")).unwrap();
        for (sql, n) in [
            (USER_UNREAD_SQL, 4),
            (USER_ALL_SQL, 3),
            (GET_FOR_USER_SQL, 2),
        ] {
            let p = plan(&store.conn, sql, n);
            assert!(!p.contains("SCAN m") && !p.contains("SCAN r"), "{sql}\n{p}");
            assert!(!p.contains("TEMP B-TREE"), "sorts instead of merging:\n{p}");
        }
        for (sql, n) in [
            (USER_ALL_NTH_NEWEST_SQL, 3),
            (USER_UNREAD_NTH_NEWEST_SQL, 4),
            (ALL_NTH_NEWEST_SQL, 2),
        ] {
            let p = plan(&store.conn, sql, n);
            assert!(
                !p.contains("TEMP B-TREE"),
                "sorts instead of walking back:\n{p}"
            );
        }
        let p = plan(&store.conn, USER_UNREAD_SQL, 4);
        assert!(p.contains("recipients_unread"), "{p}");
        assert!(p.contains("messages_for_everyone"), "{p}");
    }
}
