//! Wire protocols of the Windows Messenger service, without I/O.
//!
//! Everything here turns bytes into typed packets and back, or drives a protocol state machine
//! from inputs the caller hands in (datagrams, the current time). Nothing here opens a socket,
//! reads a clock or spawns a task, so every behaviour can be tested deterministically and every
//! decoder can be fuzzed.
//!
//! Sources: RFC 1001/1002 (NetBIOS over TCP/IP), [MS-NBTE], [MS-MSRP], [MS-MAIL], [MS-CIFS].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod mailslot;
pub mod name;
pub mod nbdgm;
pub mod nbns;
pub mod nbss;
pub mod oem;
pub mod smb;
#[cfg(test)]
mod test_vectors;

pub use codec::{DecodeError, DecodeErrorKind};
pub use name::{NameError, NetbiosName, QualifiedName, Scope};
