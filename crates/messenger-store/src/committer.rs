//! [`GroupCommitter`]: one writer thread that owns the [`Store`] and groups many senders'
//! messages into few transactions.
//!
//! Each commit with `synchronous = FULL` costs an fsync, a few milliseconds on real disks. If
//! every message had its own transaction, durability would cap throughput at a few hundred
//! messages a second. Instead the writer takes *everything* queued since its last commit and
//! stores it in one transaction: under light load each message commits alone (lowest latency);
//! under heavy load the groups grow and one fsync acknowledges hundreds of messages.
//!
//! Every other write (marking read, the name table, pruning) also runs on the writer thread,
//! in submission order, through [`GroupCommitter::execute`] and [`GroupCommitter::run`]. One
//! connection and one thread means no lock contention between our own writers and
//! read-your-writes ordering for free. Anything that may take long must not run here, or
//! every sender's acknowledgement waits behind it: listings and counting belong on
//! connections of their own opened with [`Store::open_read_only`] (WAL lets them read while
//! the writer commits), and pruning is cut into small batches.
//!
//! No async runtime here: the daemon bridges `done` callbacks to its own futures.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use messenger_core::NewMessage;

use crate::error::{ErrorKind, StoreError};
use crate::store::Store;

/// Jobs (messages or closures) that may wait for the writer. At the 10,000 messages/s the
/// daemon aims for this is about 0.2 s of backlog: beyond that a sender is better told "no
/// room, try later" at once than kept waiting past its SMB timeout. It also bounds memory: a
/// message is at most a few KiB (Samba's 1600-byte cap, text plus raw copy), so the queue
/// holds at most about 20 MiB.
pub const QUEUE_CAPACITY: usize = 2048;

/// Called once with a message's id when it is durably stored, or with why it is not.
pub type Done = Box<dyn FnOnce(Result<i64, StoreError>) + Send + 'static>;

type Work = Box<dyn FnOnce(&mut Store) + Send + 'static>;

enum Job {
    Insert(Insert),
    Run(Work),
    Shutdown,
}

/// A queued message and its callback. Dropping it unanswered (the queue torn down, the
/// writer gone) answers `Closed`, so every submitter hears back exactly once whatever
/// happens.
struct Insert {
    msg: NewMessage,
    done: Option<Done>,
}

impl Insert {
    fn answer(&mut self, result: Result<i64, StoreError>) {
        if let Some(done) = self.done.take() {
            // A panicking callback must not take the writer, and everyone after it, down.
            let _ = catch_unwind(AssertUnwindSafe(|| done(result)));
        }
    }
}

impl Drop for Insert {
    fn drop(&mut self) {
        self.answer(Err(StoreError::closed()));
    }
}

#[derive(Debug, Default)]
struct Counters {
    transactions: AtomicU64,
    committed: AtomicU64,
    failed: AtomicU64,
}

/// What the writer has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Insert transactions committed.
    pub transactions: u64,
    /// Messages stored by them.
    pub messages: u64,
    /// Messages whose transaction failed.
    pub failed: u64,
}

/// Owns a [`Store`] on a writer thread and groups concurrent inserts into shared
/// transactions. Share it between tasks with an `Arc`.
#[derive(Debug)]
pub struct GroupCommitter {
    queue: SyncSender<Job>,
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<Store>>>,
    counters: Arc<Counters>,
}

impl GroupCommitter {
    /// Starts the writer thread with a queue of [`QUEUE_CAPACITY`].
    pub fn new(store: Store) -> Result<Self, StoreError> {
        Self::with_capacity(store, QUEUE_CAPACITY)
    }

    /// Starts the writer thread with a queue of `capacity` jobs (at least 1).
    pub fn with_capacity(store: Store, capacity: usize) -> Result<Self, StoreError> {
        let capacity = capacity.max(1);
        let (queue, jobs) = mpsc::sync_channel(capacity);
        let counters = Arc::new(Counters::default());
        let writer_counters = Arc::clone(&counters);
        let writer = std::thread::Builder::new()
            .name("inbox-writer".into())
            .spawn(move || writer_loop(store, jobs, capacity, &writer_counters))
            .map_err(|e| StoreError::new(ErrorKind::Other, format!("starting the writer: {e}")))?;
        Ok(Self {
            queue,
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(writer)),
            counters,
        })
    }

    /// Queues `msg` for storing. `done` is called exactly once: with the id after the
    /// transaction holding the message has committed (durably: acknowledge the sender only
    /// then), or with the error. It runs on the writer thread, so it must be quick (send on a
    /// channel); it is called at once, on this thread, if the message is invalid, the queue is
    /// full ([`ErrorKind::QueueFull`]) or the committer has shut down ([`ErrorKind::Closed`]).
    pub fn submit<F>(&self, msg: NewMessage, done: F)
    where
        F: FnOnce(Result<i64, StoreError>) + Send + 'static,
    {
        let mut insert = Insert {
            msg,
            done: Some(Box::new(done)),
        };
        if let Err(e) = Store::validate(&insert.msg) {
            insert.answer(Err(e));
            return;
        }
        if self.closed.load(Ordering::Acquire) {
            insert.answer(Err(StoreError::closed()));
            return;
        }
        match self.queue.try_send(Job::Insert(insert)) {
            Ok(()) => {}
            Err(TrySendError::Full(Job::Insert(mut insert))) => insert.answer(Err(
                StoreError::new(ErrorKind::QueueFull, "the message was not stored"),
            )),
            // Disconnected: the returned job is dropped here and answers Closed.
            Err(_) => {}
        }
    }

    /// Runs `f` on the writer thread after everything queued before it, without waiting.
    /// Fails at once if the queue is full or the committer has shut down; `f` is then not
    /// run.
    pub fn execute<F>(&self, f: F) -> Result<(), StoreError>
    where
        F: FnOnce(&mut Store) + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::closed());
        }
        match self.queue.try_send(Job::Run(Box::new(f))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(StoreError::new(
                ErrorKind::QueueFull,
                "too many requests are waiting for the inbox",
            )),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::closed()),
        }
    }

    /// Runs `f` on the writer thread and waits for its result. Blocks the calling thread: from
    /// async code use [`GroupCommitter::execute`] with a channel instead.
    pub fn run<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Store) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.execute(move |store| {
            let _ = tx.send(f(store));
        })?;
        // The sender is dropped unsent only if `f` panicked or the writer went away.
        rx.recv()
            .map_err(|_| StoreError::new(ErrorKind::Other, "the inbox operation did not complete"))
    }

    /// Counters of the work done so far.
    pub fn stats(&self) -> CommitStats {
        CommitStats {
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            messages: self.counters.committed.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting work, finishes everything already queued, stops the writer and hands
    /// back the store. Later submissions fail with [`ErrorKind::Closed`]. Only the first call
    /// gets the store; later ones fail with `Closed`.
    pub fn shutdown(&self) -> Result<Store, StoreError> {
        self.closed.store(true, Ordering::Release);
        let handle = self
            .writer
            .lock()
            .map_err(|_| StoreError::closed())?
            .take()
            .ok_or_else(StoreError::closed)?;
        if handle.thread().id() == std::thread::current().id() {
            // Called from a callback on the writer thread (the last handle dropped there):
            // joining would wait for ourselves. The writer stops once it has finished the
            // current batch and sees the queue closed.
            let _ = self.queue.try_send(Job::Shutdown);
            return Err(StoreError::closed());
        }
        // A blocking send: the marker queues behind all accepted work. If the writer is
        // already gone the send fails, and joining tells us why.
        let _ = self.queue.send(Job::Shutdown);
        handle
            .join()
            .map_err(|_| StoreError::new(ErrorKind::Other, "the inbox writer panicked"))
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn writer_loop(
    mut store: Store,
    jobs: Receiver<Job>,
    max_group: usize,
    counters: &Counters,
) -> Store {
    let mut group: Vec<Insert> = Vec::new();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        // Everything queued right now, but no more than a queue's worth, so that a stream of
        // arrivals faster than we drain cannot keep one transaction open forever.
        while batch.len() < max_group {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut shutting_down = false;
        for job in batch {
            match job {
                Job::Insert(insert) => group.push(insert),
                Job::Run(work) => {
                    // Keep submission order: inserts queued before this closure commit first.
                    commit_group(&mut store, &mut group, counters);
                    let _ = catch_unwind(AssertUnwindSafe(|| work(&mut store)));
                }
                Job::Shutdown => shutting_down = true,
            }
        }
        commit_group(&mut store, &mut group, counters);
        if shutting_down {
            break;
        }
    }
    // Jobs still queued are dropped with the receiver when we return; each unanswered insert
    // answers Closed as it drops.
    store
}

/// Stores the grouped messages in one transaction and answers every submitter.
fn commit_group(store: &mut Store, group: &mut Vec<Insert>, counters: &Counters) {
    if group.is_empty() {
        return;
    }
    let result = store.insert_all(group.iter().map(|i| &i.msg));
    let n = group.len() as u64;
    match result {
        Ok(ids) => {
            counters.transactions.fetch_add(1, Ordering::Relaxed);
            counters.committed.fetch_add(n, Ordering::Relaxed);
            for (mut insert, id) in group.drain(..).zip(ids) {
                insert.answer(Ok(id));
            }
        }
        Err(e) => {
            // Disk full, read-only, I/O error: nobody's message is stored, so everybody hears
            // so, and the writer stays up for the next attempt.
            counters.failed.fetch_add(n, Ordering::Relaxed);
            for mut insert in group.drain(..) {
                insert.answer(Err(e.clone()));
            }
        }
    }
}
