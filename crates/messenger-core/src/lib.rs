//! The Messenger service's domain: what a message is, who it is for, which names may be held,
//! what policy admits, and how text from the network is made safe to show. No I/O, no async
//! runtime, no storage engine: those live in the crates that wire this together.
#![forbid(unsafe_code)]
