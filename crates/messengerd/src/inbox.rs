//! The async face of the durable inbox.
//!
//! The store commits on a writer thread of its own and groups the messages of concurrent
//! senders into one transaction; this module turns its completion callbacks into futures, so
//! a connection task can `await` the commit and only then acknowledge the message, and it
//! tells followers (`messenger inbox --follow`) about each message once it is on disk.

use std::sync::Arc;

use messenger_core::message::{InboxQuery, NewMessage, StoredMessage};
use messenger_store::{ErrorKind, GroupCommitter, Store, StoreError};
use tokio::sync::{broadcast, oneshot};

/// Messages a slow follower may fall behind by before it misses some (it is told, and can
/// list the inbox to catch up).
const FOLLOW_BACKLOG: usize = 1024;

/// Handle to the inbox, cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    committer: Arc<GroupCommitter>,
    new_messages: broadcast::Sender<StoredMessage>,
}

impl Inbox {
    /// Opens (or creates) the inbox database at `path` and starts its writer.
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let store = Store::open(path)?;
        let (new_messages, _) = broadcast::channel(FOLLOW_BACKLOG);
        Ok(Self {
            committer: Arc::new(GroupCommitter::new(store)?),
            new_messages,
        })
    }

    /// Stores `message` durably; resolves once it is committed.
    pub async fn store(&self, message: NewMessage) -> Result<i64, StoreError> {
        let (tx, rx) = oneshot::channel();
        // Copy the message for followers only when there are any: at thousands of messages a
        // second the copy of text and raw bytes is most of the per-message allocation. A
        // follower that subscribes while this message is being committed may miss it here;
        // it is in the inbox, where a listing finds it.
        let copy = (self.new_messages.receiver_count() > 0).then(|| message.clone());
        self.committer.submit(message, move |result| {
            let _ = tx.send(result);
        });
        let id = rx.await.map_err(|_| closed())??;
        if let Some(message) = copy {
            let _ = self.new_messages.send(StoredMessage {
                id,
                message,
                read: false,
                read_by: Vec::new(),
            });
        }
        Ok(id)
    }

    /// Runs `f` on the store's thread and returns its result.
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

    /// Lists messages.
    pub async fn list(&self, query: InboxQuery) -> Result<Vec<StoredMessage>, StoreError> {
        self.with_store(move |s| s.list(&query)).await
    }

    /// New messages as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<StoredMessage> {
        self.new_messages.subscribe()
    }

    /// Finishes queued work and stops the writer.
    pub fn close(&self) {
        if let Err(e) = self.committer.shutdown() {
            tracing::debug!(error = %e, "inbox already closed");
        }
    }
}

fn closed() -> StoreError {
    StoreError::new(ErrorKind::Closed, "the inbox writer has stopped")
}
