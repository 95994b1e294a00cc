//! The service's control socket, asynchronously: one connection for requests (listings,
//! marking read) and one for the follow stream.

use std::path::Path;

use messenger_ipc::{decode_line, encode_line, Reply, Request, CLIENT_REPLY_TIMEOUT, MAX_LINE_LEN};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// What went wrong talking to the service: all of it means "connect again later".
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Connecting, reading or writing failed.
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    /// The service hung up.
    #[error("the Messenger service closed the connection")]
    Closed,
    /// No reply in [`CLIENT_REPLY_TIMEOUT`].
    #[error("the Messenger service did not answer in time")]
    Timeout,
    /// A line that is not a reply, or longer than the protocol allows.
    #[error("the Messenger service sent a reply this program does not understand: {0}")]
    BadReply(String),
    /// The service refused the request.
    #[error("the Messenger service refused: {0}")]
    Refused(messenger_ipc::IpcError),
    /// A reply that does not answer the request.
    #[error("unexpected reply from the Messenger service: {0}")]
    Unexpected(String),
}

/// A connection to the control socket.
pub struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: Vec<u8>,
}

impl Connection {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<Self, ControlError> {
        let stream = UnixStream::connect(path).await?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            reader: BufReader::new(read),
            writer,
            line: Vec::new(),
        })
    }

    /// Sends one request.
    pub async fn send(&mut self, request: &Request) -> Result<(), ControlError> {
        self.writer.write_all(&encode_line(request)).await?;
        Ok(())
    }

    /// The next reply, however long it takes (for the follow stream). Cancel-safe: a line
    /// read in part is kept for the next call, so this can be one branch of a `select!`.
    pub async fn next(&mut self) -> Result<Reply, ControlError> {
        loop {
            let room = (MAX_LINE_LEN + 1).saturating_sub(self.line.len()) as u64;
            let n = (&mut self.reader)
                .take(room)
                .read_until(b'\n', &mut self.line)
                .await?;
            if self.line.len() > MAX_LINE_LEN {
                return Err(ControlError::BadReply("reply longer than the limit".into()));
            }
            if self.line.ends_with(b"\n") {
                let reply =
                    decode_line(&self.line).map_err(|e| ControlError::BadReply(e.to_string()));
                self.line.clear();
                return reply;
            }
            if n == 0 {
                return Err(ControlError::Closed);
            }
        }
    }

    /// Sends `request` and waits (at most [`CLIENT_REPLY_TIMEOUT`]) for its reply; a refusal
    /// is an error.
    pub async fn call(&mut self, request: &Request) -> Result<Reply, ControlError> {
        self.send(request).await?;
        match tokio::time::timeout(CLIENT_REPLY_TIMEOUT, self.next()).await {
            Err(_) => Err(ControlError::Timeout),
            Ok(Ok(Reply::Error(e))) => Err(ControlError::Refused(e)),
            Ok(reply) => reply,
        }
    }
}
