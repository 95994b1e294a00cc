//! SMB1 as the Messenger service uses it: the header, the four messenger commands and their
//! responses, reassembly of multi-block messages, and the receiving and sending sides of a
//! connection as state machines without I/O.
//!
//! Directed messages travel as SMB1 commands 0xD0 (whole message) or 0xD5, 0xD7 ×n, 0xD6
//! (multi-block) inside NetBIOS session messages, with no NEGOTIATE or session setup before
//! them ([MS-MSRP] 2.2.3, 3.1.4, 3.2.4.4; REFERENCE 4).

pub mod assembler;
pub mod header;
pub mod messenger;
pub mod receiver;
pub mod sender;

pub use assembler::{AssembledMessage, AssemblerLimits, AssemblyError, MessageAssembler};
pub use header::{SmbHeader, SmbStatus};
pub use messenger::{
    EncodeError, EndMessage, Request, Response, SendMessage, StartMessage, TextBlock, Unsupported,
};
pub use receiver::{
    CloseReason, DeliveryError, IncomingMessage, MessageForm, ReceiverConfig, ReceiverEvent,
    ReceiverSession, SessionRequestPolicy,
};
pub use sender::{OutgoingMessage, SendError, SendOutcome, SenderOptions, SenderSession};
