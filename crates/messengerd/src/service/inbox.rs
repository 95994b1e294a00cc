//! The async face of the durable inbox.
//!
//! The store commits on a writer thread of its own and groups the messages of concurrent
//! senders into one transaction; this module turns its completion callbacks into futures, so
//! a connection task can `await` the commit and only then acknowledge the message, and it
//! tells followers (`messenger inbox --follow`) about each message once it is on disk.
//!
//! Nothing slow runs on the writer, because every sender's acknowledgement waits behind what
//! runs there: listings are read in pages on a small pool of read-only connections of their
//! own (WAL lets them read while the writer commits), on threads of their own at a lower CPU
//! priority rather than on the async runtime; pruning to the `[retention]` limits is planned
//! on a reader and carried out in small batches. New messages are refused (ERRnoroom) while the data directory's file
//! system is nearly full.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messenger_core::config::Retention;
use messenger_core::message::{InboxQuery, NewMessage, StoredMessage};
use messenger_store::{ErrorKind, ExpiredMessage, GroupCommitter, PrunePlan, Store, StoreError};
use tokio::sync::{broadcast, oneshot, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// Messages a slow follower may fall behind by before it misses some. The follow stream then
/// says so (`Lagged`), and a follower that must not miss anything lists the inbox after the
/// last id it saw.
pub const FOLLOW_BACKLOG: usize = 1024;

/// Read receipts a slow waiting sender may fall behind by before it checks the inbox
/// itself; reads come at the pace people read, so this is seldom near.
const READ_BACKLOG: usize = 1024;

/// Expiries a slow follower may fall behind by before it misses some; as with messages it
/// is then told `Lagged` and catches up from the inbox, whose views say what expired.
const EXPIRY_BACKLOG: usize = 1024;

/// Read-only connections for listings, and so the most listings that run at once (others
/// wait for one; their number is bounded by the control socket's connection cap). Two let one
/// user's long listing not hold up another's; more would only take cores from the writer and
/// the network tasks on small machines, and SQLite gains nothing from more readers of one
/// file.
pub const READER_CONNECTIONS: usize = 2;

/// Messages removed per pruning transaction. Deleting a few hundred rows (and their
/// recipients and index entries) takes a few milliseconds, about one commit of arriving
/// messages; messages that arrive meanwhile wait for at most that, and run between batches.
pub const PRUNE_BATCH: usize = 256;

/// How often the inbox is checked against the retention limits. Limits are a matter of days
/// and thousands of messages, so a minute's overshoot is harmless; the free-space check
/// guards the disk in between.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Handle to the inbox, cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    committer: Arc<GroupCommitter>,
    readers: Arc<Readers>,
    disk: Arc<DiskGuard>,
    retention: Retention,
    new_messages: broadcast::Sender<StoredMessage>,
    /// Held while a message is queued for the writer and while a follower subscribes, so that
    /// a message is either copied for the new follower or queued before its subscription (and
    /// then committed before [`Inbox::subscribe`] returns, where a listing finds it).
    follow_gate: Arc<Mutex<()>>,
    reads: broadcast::Sender<ReadReceipt>,
    /// Messages that expired unread, as they are settled.
    expirations: broadcast::Sender<ExpiredMessage>,
    /// Woken when a message with an expiry is stored, so that the expiry timer looks again.
    expiry_added: Arc<Notify>,
}

/// A user read messages (for senders who wait until they are read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadReceipt {
    /// Who read them.
    pub user: String,
    /// The messages' ids.
    pub ids: Vec<i64>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Oldest first.
    pub messages: Vec<StoredMessage>,
    /// Whether more messages match after the last one.
    pub more: bool,
    /// Matching messages older than the page that `last` left out.
    pub older: u64,
}

/// What a page should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The user, unread only, after which id; its limit is ignored (see `limit`).
    pub query: InboxQuery,
    /// Most messages in the page (at least 1).
    pub limit: usize,
    /// Only the newest this many of those that match.
    pub last: Option<u64>,
    /// Most bytes the page's messages may take, measured by `size_of` (at least one message
    /// is always sent, so that a listing makes progress).
    pub max_bytes: usize,
}

impl Inbox {
    /// Opens (or creates) the inbox database at `path`, starts its writer and opens its
    /// readers, and keeps to `retention`. Everything is opened here, so that it works
    /// whatever the permissions once the service gives up root.
    pub fn open(path: &Path, retention: &Retention) -> Result<Self, StoreError> {
        let store = Store::open(path)?;
        let readers = Readers::open(path, READER_CONNECTIONS)?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let disk = DiskGuard::open(dir, retention.clone())?;
        let (new_messages, _) = broadcast::channel(FOLLOW_BACKLOG);
        let (reads, _) = broadcast::channel(READ_BACKLOG);
        let (expirations, _) = broadcast::channel(EXPIRY_BACKLOG);
        Ok(Self {
            expirations,
            expiry_added: Arc::new(Notify::new()),
            committer: Arc::new(GroupCommitter::new(store)?),
            readers: Arc::new(readers),
            disk: Arc::new(disk),
            retention: retention.clone(),
            new_messages,
            follow_gate: Arc::new(Mutex::new(())),
            reads,
        })
    }

    /// Stores `message` durably; resolves once it is committed. Refused with
    /// [`ErrorKind::NoRoom`] while free disk space is below `min_free_disk_mib`.
    pub async fn store(&self, message: NewMessage) -> Result<i64, StoreError> {
        self.disk.check()?;
        let (tx, rx) = oneshot::channel();
        // Copy the message for followers only when there are any: at thousands of messages a
        // second the copy of text and raw bytes is most of the per-message allocation. A
        // follower that subscribes after the check finds the message in the inbox (see
        // `subscribe`). The copy goes to followers from the writer thread as the commit is
        // answered, so that they see messages in id order.
        {
            let _gate = crate::util::lock(&self.follow_gate);
            let followers = (self.new_messages.receiver_count() > 0)
                .then(|| (self.new_messages.clone(), message.clone()));
            self.committer.submit(message, move |result| {
                if let (Ok(id), Some((followers, message))) = (&result, followers) {
                    let _ = followers.send(StoredMessage {
                        id: *id,
                        message,
                        read: false,
                        read_by: Vec::new(),
                        expires_at: None,
                        expired: false,
                    });
                }
                let _ = tx.send(result);
            });
        }
        rx.await.map_err(|_| closed())?
    }

    /// Stores `message` unless a message with `origin_id` is already stored (its network
    /// delivered it again): the new id, or `None` for a redelivery. With `expires_at` (unix
    /// microseconds) it expires then unless read first, as [`Inbox::store_expiring`]'s.
    /// Refused like [`Inbox::store`] while the disk is nearly full.
    pub async fn store_once(
        &self,
        origin_id: String,
        message: NewMessage,
        expires_at: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        self.insert_alone(
            message,
            expires_at,
            move |store, message| match expires_at {
                None => store.insert_once(&origin_id, message),
                Some(at) => store.insert_once_expiring(&origin_id, message, at),
            },
        )
        .await
    }

    /// Stores `message`, which expires at `expires_at` (unix microseconds) unless read first,
    /// in a transaction of its own, and wakes the expiry timer. Refused like
    /// [`Inbox::store`] while the disk is nearly full.
    pub async fn store_expiring(
        &self,
        message: NewMessage,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        self.insert_alone(message, Some(expires_at), move |store, message| {
            store.insert_expiring(message, expires_at)
        })
        .await
    }

    /// Runs `insert` (a transaction of its own, outside the group commits) on the writer,
    /// queued under the follow gate as [`Inbox::store`] queues, and hands the message to
    /// followers on the writer thread right after its commit: handed over from the awaiting
    /// task instead, it could reach them after a message committed later, and a follower
    /// resuming after the later id would never see it. `insert` gives the new id, or `None`
    /// when it stored nothing (a redelivery). Wakes the expiry timer for a message with an
    /// expiry.
    async fn insert_alone<T>(
        &self,
        message: NewMessage,
        expires_at: Option<i64>,
        insert: impl FnOnce(&mut Store, &NewMessage) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError>
    where
        T: Into<Option<i64>> + Copy + Send + 'static,
    {
        self.disk.check()?;
        let (tx, rx) = oneshot::channel();
        {
            let _gate = crate::util::lock(&self.follow_gate);
            let followers =
                (self.new_messages.receiver_count() > 0).then(|| self.new_messages.clone());
            self.committer.execute(move |store| {
                let result = insert(store, &message);
                let stored = result.as_ref().ok().and_then(|id| (*id).into());
                if let (Some(id), Some(followers)) = (stored, followers) {
                    let _ = followers.send(StoredMessage {
                        id,
                        message,
                        read: false,
                        read_by: Vec::new(),
                        expires_at,
                        expired: false,
                    });
                }
                let _ = tx.send(result);
            })?;
        }
        let result = rx.await.map_err(|_| closed())??;
        if result.into().is_some() && expires_at.is_some() {
            self.expiry_added.notify_one();
        }
        Ok(result)
    }

    /// Settles every message due to expire by `now_micros`, in batches of
    /// [`super::expiry::EXPIRE_BATCH`] on the writer, and tells the followers of those that
    /// expired unread. Returns how many expired.
    pub async fn expire_due(&self, now_micros: i64) -> Result<usize, StoreError> {
        let mut expired = 0;
        loop {
            let batch = self
                .with_store(move |s| s.expire_due(now_micros, super::expiry::EXPIRE_BATCH))
                .await?;
            expired += batch.len();
            for e in batch {
                let _ = self.expirations.send(e);
            }
            // A batch also settles, uncounted, messages read before their expiry: ask the
            // store whether anything due is left rather than trusting the count.
            if self.next_expiry().await?.is_none_or(|t| t > now_micros) {
                return Ok(expired);
            }
        }
    }

    /// When the next message not yet settled expires, if any.
    pub async fn next_expiry(&self) -> Result<Option<i64>, StoreError> {
        self.with_store(|s| s.next_expiry()).await
    }

    /// Messages that expire unread, as they are settled.
    pub fn subscribe_expirations(&self) -> broadcast::Receiver<ExpiredMessage> {
        self.expirations.subscribe()
    }

    /// Resolves when a message with an expiry was stored since the last call.
    pub async fn expiry_added(&self) {
        self.expiry_added.notified().await;
    }

    /// Runs `f` on the store's writer thread and returns its result. For writes and quick
    /// reads only: every sender waits behind it.
    pub async fn with_store<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.committer.execute(move |store| {
            let _ = tx.send(f(store));
        })?;
        rx.await.map_err(|_| closed())?
    }

    /// Runs `f` on a read-only connection, off the writer and off the async runtime.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.readers.run(f).await
    }

    /// Every message matching `query` (tests and tools; listings for users go by [`page`]).
    ///
    /// [`page`]: Inbox::page
    pub async fn list(&self, query: InboxQuery) -> Result<Vec<StoredMessage>, StoreError> {
        self.read(move |s| s.list(&query)).await
    }

    /// One page of a listing, read on a reader in one snapshot and handed to `finish` there
    /// (which encodes it, so that the work of a large page stays on the reader). `size_of`
    /// measures a message as it will be sent, for `max_bytes`.
    pub async fn page<T, F>(
        &self,
        request: PageRequest,
        size_of: fn(&StoredMessage) -> usize,
        finish: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(Page) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.read(move |s| {
            s.consistent_read(|s| read_page(s, &request, size_of))
                .map(finish)
        })
        .await
    }

    /// The retention limits this inbox keeps to.
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Prunes the inbox to the retention limits as of `now_micros`: planned on a reader, then
    /// removed in batches of [`PRUNE_BATCH`] on the writer, with arriving messages committed
    /// between batches. Returns how many were removed.
    pub async fn prune(&self, now_micros: i64) -> Result<usize, StoreError> {
        let retention = self.retention.clone();
        let started = std::time::Instant::now();
        let plan = self
            .read(move |s| s.plan_prune(&retention, now_micros))
            .await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            users = plan.users.len(),
            "planned the pruning"
        );
        if plan.is_empty() {
            return Ok(0);
        }
        let plan: Arc<PrunePlan> = Arc::new(plan);
        let mut removed = 0;
        loop {
            let batch = Arc::clone(&plan);
            let n = self
                .with_store(move |s| s.prune_batch(&batch, PRUNE_BATCH))
                .await?;
            if n == 0 {
                return Ok(removed);
            }
            removed += n;
        }
    }

    /// Marks `ids` read by `user`, and tells those who wait for the reads. Returns how many
    /// were unread.
    pub async fn mark_read(&self, user: String, ids: Vec<i64>) -> Result<usize, StoreError> {
        let (reader, marked) = (user.clone(), ids.clone());
        let count = self
            .with_store(move |s| s.mark_read(&reader, &marked))
            .await?;
        let _ = self.reads.send(ReadReceipt { user, ids });
        Ok(count)
    }

    /// Reads as they are committed.
    pub fn subscribe_reads(&self) -> broadcast::Receiver<ReadReceipt> {
        self.reads.subscribe()
    }

    /// New messages as they are committed, in id order. Every message not sent to the
    /// receiver is committed by the time this returns, so a listing made after it and the
    /// receiver together miss nothing.
    pub async fn subscribe(&self) -> Result<broadcast::Receiver<StoredMessage>, StoreError> {
        let receiver = {
            let _gate = crate::util::lock(&self.follow_gate);
            self.new_messages.subscribe()
        };
        // The writer runs this after every message queued before it has committed.
        self.with_store(|_| Ok(())).await?;
        Ok(receiver)
    }

    /// Finishes queued work and stops the writer.
    pub fn close(&self) {
        if let Err(e) = self.committer.shutdown() {
            tracing::debug!(error = %e, "inbox already closed");
        }
    }
}

/// Prunes `inbox` now and every [`PRUNE_INTERVAL`] until `shutdown`.
pub async fn prune_periodically(inbox: Inbox, shutdown: CancellationToken) {
    loop {
        match inbox.prune(crate::util::now_micros()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "pruned the inbox to its retention limits"),
            Err(e) => tracing::warn!(error = %e, "could not prune the inbox; trying again later"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_INTERVAL) => {}
        }
    }
}

fn read_page(
    store: &Store,
    request: &PageRequest,
    size_of: fn(&StoredMessage) -> usize,
) -> Result<Page, StoreError> {
    let mut query = request.query.clone();
    let mut older = 0;
    if let Some(last) = request.last {
        let matching = store.count(&query)?;
        older = matching.saturating_sub(last);
        if older > 0 {
            // Start after the newest of the messages left out, found walking back from the
            // newest: `last` steps rather than the whole inbox.
            query.after_id = store.nth_newest_id(&query, last)?;
        }
    }
    let limit = request.limit.max(1);
    // One more than the page, to learn whether more follow without counting them.
    query.limit = Some(limit.saturating_add(1));
    let mut messages = store.list(&query)?;
    let mut more = messages.len() > limit;
    messages.truncate(limit);
    let mut bytes = 0usize;
    let fits = messages
        .iter()
        .take_while(|m| {
            bytes = bytes.saturating_add(size_of(m));
            bytes <= request.max_bytes
        })
        .count()
        .max(1);
    if fits < messages.len() {
        messages.truncate(fits);
        more = true;
    }
    Ok(Page {
        messages,
        more,
        older,
    })
}

/// How much lower than the rest of the service the readers run, as a nice increment: a
/// listing is the only bulk work the service does, and when the cores are busy the kernel
/// should run the writer and the network tasks, whose work a sender waits for, before
/// another page of someone's listing. 10 gives a reader about a tenth of the CPU share of a
/// default thread under contention (sched(7): each nice step is about 1.25x), and nothing
/// less than that when the cores are idle.
const READER_NICE_INCREMENT: i32 = 10;

/// A read to run on one of the readers.
type ReadJob = Box<dyn FnOnce(&Store) + Send>;

/// The read-only connections, each on a thread of its own at a lower CPU priority.
struct Readers {
    /// Jobs for the reader threads; a reader takes the next when it is free. At most as
    /// many jobs are queued or running as there are permits.
    jobs: Mutex<std::sync::mpsc::Sender<ReadJob>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    fn open(path: &Path, count: usize) -> Result<Self, StoreError> {
        let stores = (0..count.max(1))
            .map(|_| Store::open_read_only(path))
            .collect::<Result<Vec<_>, _>>()?;
        let permits = Arc::new(Semaphore::new(stores.len()));
        let (jobs, queue) = std::sync::mpsc::channel::<ReadJob>();
        let queue = Arc::new(Mutex::new(queue));
        for (i, store) in stores.into_iter().enumerate() {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("inbox-reader-{i}"))
                .spawn(move || serve_reads(&store, &queue))
                .map_err(|e| {
                    StoreError::new(
                        ErrorKind::Other,
                        format!("cannot start an inbox reader: {e}"),
                    )
                })?;
        }
        Ok(Self {
            jobs: Mutex::new(jobs),
            permits,
        })
    }

    async fn run<R, F>(self: &Arc<Self>, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let (done, result) = oneshot::channel();
        let job: ReadJob = Box::new(move |store| {
            let outcome = f(store);
            drop(permit);
            let _ = done.send(outcome);
        });
        crate::util::lock(&self.jobs)
            .send(job)
            .map_err(|_| closed())?;
        result
            .await
            .map_err(|_| StoreError::new(ErrorKind::Other, "an inbox read did not complete"))?
    }
}

/// A reader thread: lowers its own priority, then runs jobs on `store` until the inbox is
/// dropped. A job that panics loses its answer (its caller gets an error), not the reader.
fn serve_reads(store: &Store, queue: &Mutex<std::sync::mpsc::Receiver<ReadJob>>) {
    lower_this_threads_priority();
    loop {
        let job = match crate::util::lock(queue).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(store)));
        if ran.is_err() {
            tracing::error!("an inbox read panicked");
        }
    }
}

/// Raises the calling thread's nice value by [`READER_NICE_INCREMENT`]. Linux keeps the nice
/// value per thread, and setpriority(2) given a thread id changes that thread alone. Failing
/// costs only the priority, so it is logged, not fatal.
fn lower_this_threads_priority() {
    let tid = rustix::thread::gettid();
    let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(tid), current + READER_NICE_INCREMENT)
    {
        tracing::debug!(error = %e, "cannot lower an inbox reader's priority");
    }
}

/// Refuses new messages while the data directory's file system has less free space than
/// `min_free_disk_mib`, so that a flood fills the inbox's limits, not the disk.
struct DiskGuard {
    /// The data directory, opened once (before the service gives up root): asking the open
    /// directory follows no path later.
    dir: File,
    path: PathBuf,
    retention: Retention,
}

impl DiskGuard {
    fn open(dir: &Path, retention: Retention) -> Result<Self, StoreError> {
        let file = File::open(dir).map_err(|e| {
            StoreError::new(
                ErrorKind::Other,
                format!("opening the data directory {}: {e}", dir.display()),
            )
        })?;
        Ok(Self {
            dir: file,
            path: dir.to_path_buf(),
            retention,
        })
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.retention.min_free_disk_mib == 0 {
            return Ok(());
        }
        // A file system that cannot say is not refused for it: the commit would fail on a
        // full disk anyway, and the sender would hear ERRnoroom then.
        let Ok(stat) = nix::sys::statvfs::fstatvfs(&self.dir) else {
            return Ok(());
        };
        let available = stat.blocks_available().saturating_mul(stat.fragment_size());
        if self.retention.disk_too_full(available) {
            return Err(StoreError::new(
                ErrorKind::NoRoom,
                format!(
                    "{} has {} MiB free, below min_free_disk_mib ({} MiB)",
                    self.path.display(),
                    available / (1024 * 1024),
                    self.retention.min_free_disk_mib
                ),
            ));
        }
        Ok(())
    }
}

fn closed() -> StoreError {
    StoreError::new(ErrorKind::Closed, "the inbox writer has stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_inbox() -> (tempfile::TempDir, Inbox) {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(&dir.path().join("inbox.sqlite3"), &Retention::default()).unwrap();
        (dir, inbox)
    }

    fn this_threads_nice() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
    }

    #[tokio::test]
    async fn reads_run_below_the_priority_of_the_rest_of_the_service() {
        let (_dir, inbox) = open_inbox();
        let ours = this_threads_nice();
        let readers = inbox.read(|_| Ok(this_threads_nice())).await.unwrap();
        // The nice value stops at 19 (setpriority(2)).
        assert_eq!(readers, (ours + READER_NICE_INCREMENT).min(19));
        assert_eq!(
            this_threads_nice(),
            ours,
            "only the reader threads are lowered"
        );
        inbox.close();
    }

    #[tokio::test]
    async fn a_read_that_panics_fails_alone_and_the_readers_go_on() {
        let (_dir, inbox) = open_inbox();
        for _ in 0..READER_CONNECTIONS * 2 {
            let failed = inbox
                .read(|_| -> Result<(), StoreError> { panic!("a broken read") })
                .await;
            assert!(failed.is_err());
        }
        let listed = inbox.list(InboxQuery::default()).await.unwrap();
        assert!(listed.is_empty());
        inbox.close();
    }
}
