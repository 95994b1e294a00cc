//! Reassembly of multi-block messages (0xD5, 0xD7 ×n, 0xD6) under size limits.
//!
//! One message is in progress per connection at a time, as in Samba's server: the group id a
//! sender echoes is recorded but not required to match (Samba's client sends 0 whatever the
//! 0xD5 response said, REFERENCE 4.3). Blocks that arrive without a 0xD5 are out of sequence.
//! Text stays raw OEM bytes; only trailing NULs, which senders may count in DataLength
//! (REFERENCE 4.2), are removed.

/// Largest block the specification allows: DataLength "MUST be less than or equal to 128"
/// ([MS-MSRP] 2.2.3.1.1, 2.2.3.3.1).
pub const SPEC_MAX_BLOCK_LEN: usize = 128;
/// Largest block we accept by default. Lenient above [`SPEC_MAX_BLOCK_LEN`] because nothing
/// breaks if a sender's blocks are a little larger (REFERENCE 4.4: "be lenient above that"),
/// while still bounding what one SMB can add.
pub const DEFAULT_MAX_BLOCK_LEN: usize = 1024;
/// Default cap on a whole message: the 1600 bytes Samba's server and client buffer (REFERENCE
/// 4.9). [MS-MSRP] 3.2.4.4 caps what Windows sends at 652 bytes, so this loses nothing from
/// Windows senders.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1600;
/// Default cap on blocks per message. A 4095-character message (the most Windows shows,
/// [MS-MSRP] <24>) takes 32 blocks of 128; twice that leaves room for senders with smaller
/// blocks while stopping a stream of empty blocks from keeping a message open forever.
pub const DEFAULT_MAX_BLOCKS: usize = 64;

/// Limits on what the assembler accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssemblerLimits {
    /// Largest DataLength of one block (0xD0 data or one 0xD7).
    pub max_block_len: usize,
    /// Largest whole message text, after trailing NULs are removed.
    pub max_message_len: usize,
    /// Largest number of 0xD7 blocks in one message.
    pub max_blocks: usize,
}

impl Default for AssemblerLimits {
    fn default() -> Self {
        Self {
            max_block_len: DEFAULT_MAX_BLOCK_LEN,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_blocks: DEFAULT_MAX_BLOCKS,
        }
    }
}

/// Why a block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssemblyError {
    /// A 0xD7 or 0xD6 arrived with no message started by 0xD5.
    #[error("text or end block without a start block")]
    OutOfSequence,
    /// One block is larger than the block limit.
    #[error("block of {length} bytes exceeds the limit of {limit}")]
    BlockTooLong {
        /// DataLength of the block.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The message would exceed the message limit. The partial message is discarded.
    #[error("message exceeds the limit of {limit} bytes")]
    MessageTooLong {
        /// The limit.
        limit: usize,
    },
    /// The message has more blocks than allowed. The partial message is discarded.
    #[error("message has more than {limit} blocks")]
    TooManyBlocks {
        /// The limit.
        limit: usize,
    },
}

/// A complete message, ready to be stored and shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledMessage {
    /// OriginatorName, raw OEM bytes.
    pub from: Vec<u8>,
    /// DestinationName, raw OEM bytes.
    pub to: Vec<u8>,
    /// The text, raw OEM bytes, trailing NULs removed.
    pub text: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Partial {
    message: AssembledMessage,
    blocks: usize,
}

/// Collects the blocks of one multi-block message at a time.
#[derive(Debug, Clone)]
pub struct MessageAssembler {
    limits: AssemblerLimits,
    partial: Option<Partial>,
}

/// `data` without its trailing NULs.
fn strip_trailing_nuls(data: &[u8]) -> &[u8] {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &data[..end]
}

impl MessageAssembler {
    /// An assembler with no message in progress.
    pub fn new(limits: AssemblerLimits) -> Self {
        Self {
            limits,
            partial: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &AssemblerLimits {
        &self.limits
    }

    /// Whether a 0xD5 has started a message that has not ended.
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    fn check_block(&self, data: &[u8]) -> Result<(), AssemblyError> {
        if data.len() > self.limits.max_block_len {
            return Err(AssemblyError::BlockTooLong {
                length: data.len(),
                limit: self.limits.max_block_len,
            });
        }
        Ok(())
    }

    /// A single-block message (0xD0), checked against the same limits.
    pub fn single(
        &self,
        from: &[u8],
        to: &[u8],
        data: &[u8],
    ) -> Result<AssembledMessage, AssemblyError> {
        self.check_block(data)?;
        let text = strip_trailing_nuls(data);
        if text.len() > self.limits.max_message_len {
            return Err(AssemblyError::MessageTooLong {
                limit: self.limits.max_message_len,
            });
        }
        Ok(AssembledMessage {
            from: from.to_vec(),
            to: to.to_vec(),
            text: text.to_vec(),
        })
    }

    /// 0xD5: starts a message. A message still in progress is dropped, as Samba's server does
    /// (a sender that starts again has given up on the previous one).
    pub fn start(&mut self, from: &[u8], to: &[u8]) {
        self.partial = Some(Partial {
            message: AssembledMessage {
                from: from.to_vec(),
                to: to.to_vec(),
                text: Vec::new(),
            },
            blocks: 0,
        });
    }

    /// 0xD7: appends a block. On any limit error the partial message is discarded, so later
    /// blocks of it are out of sequence rather than silently truncated.
    pub fn text(&mut self, data: &[u8]) -> Result<(), AssemblyError> {
        if let Err(err) = self.check_block(data) {
            self.partial = None;
            return Err(err);
        }
        let limits = self.limits;
        let partial = self.partial.as_mut().ok_or(AssemblyError::OutOfSequence)?;
        // Trailing NULs are removed per block: NUL never belongs to messenger text (it is the
        // string terminator), and a sender that terminates every block must not leave NULs in
        // the middle of the text.
        let chunk = strip_trailing_nuls(data);
        if partial.blocks >= limits.max_blocks {
            self.partial = None;
            return Err(AssemblyError::TooManyBlocks {
                limit: limits.max_blocks,
            });
        }
        if partial.message.text.len() + chunk.len() > limits.max_message_len {
            self.partial = None;
            return Err(AssemblyError::MessageTooLong {
                limit: limits.max_message_len,
            });
        }
        partial.blocks += 1;
        partial.message.text.extend_from_slice(chunk);
        Ok(())
    }

    /// 0xD6: ends the message and yields it.
    pub fn end(&mut self) -> Result<AssembledMessage, AssemblyError> {
        self.partial
            .take()
            .map(|p| p.message)
            .ok_or(AssemblyError::OutOfSequence)
    }

    /// Drops a message in progress.
    pub fn reset(&mut self) {
        self.partial = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_blocks_and_strips_trailing_nuls() {
        let mut a = MessageAssembler::new(AssemblerLimits::default());
        a.start(b"ALICE", b"BOB");
        a.text(b"Hello, ").unwrap();
        a.text(b"world\0\0").unwrap();
        assert_eq!(
            a.end().unwrap(),
            AssembledMessage {
                from: b"ALICE".to_vec(),
                to: b"BOB".to_vec(),
                text: b"Hello, world".to_vec()
            }
        );
        assert!(!a.in_progress());
    }

    #[test]
    fn out_of_sequence_blocks_are_refused() {
        let mut a = MessageAssembler::new(AssemblerLimits::default());
        assert_eq!(a.text(b"x"), Err(AssemblyError::OutOfSequence));
        assert_eq!(a.end(), Err(AssemblyError::OutOfSequence));
    }

    #[test]
    fn limits_discard_the_partial_message() {
        let limits = AssemblerLimits {
            max_block_len: 4,
            max_message_len: 6,
            max_blocks: 3,
        };
        let mut a = MessageAssembler::new(limits);
        a.start(b"A", b"B");
        assert_eq!(
            a.text(b"12345"),
            Err(AssemblyError::BlockTooLong {
                length: 5,
                limit: 4
            })
        );
        assert!(!a.in_progress());
        a.start(b"A", b"B");
        a.text(b"1234").unwrap();
        assert_eq!(
            a.text(b"567"),
            Err(AssemblyError::MessageTooLong { limit: 6 })
        );
        assert_eq!(a.end(), Err(AssemblyError::OutOfSequence));

        a.start(b"A", b"B");
        for _ in 0..3 {
            a.text(b"").unwrap();
        }
        assert_eq!(a.text(b""), Err(AssemblyError::TooManyBlocks { limit: 3 }));
        assert!(!a.in_progress());
        assert!(a.single(b"A", b"B", b"12345").is_err());
        assert_eq!(a.single(b"A", b"B", b"12\0\0").unwrap().text, b"12");
    }
}
