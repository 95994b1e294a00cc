//! Integration tests of the Messenger service: the service runs in this process on loopback
//! with ephemeral ports and a temporary inbox (or, where a process must die, as the real
//! `messengerd` binary), and the tests drive it over real sockets as senders, name service
//! peers and command line users would.
//!
//! - [`session`]: the session service, every message form, SMB errors, timeouts, caps, and
//!   "stored before acknowledged";
//! - [`datagram`]: mailslot messages to the workgroup and to our names;
//! - [`names`]: logins from utmp, added names across restarts, conflicts, name queries;
//! - [`logind`]: login sessions from systemd-logind (a stand-in on a private bus);
//! - [`control`]: who may do what over the control socket;
//! - [`inbox`]: paged listings, retention and the free-space check;
//! - [`follow`]: the follow stream: resuming, order, and telling a slow follower of a gap;
//! - [`organisation`]: delivery across subnets through NATS JetStream;
//! - [`receipts`]: senders who wait until their message is read;
//! - [`expiry`]: messages that expire unless read in time (`send --time`);
//! - [`users`]: `/USERS` reports each login session it reached;
//! - [`namespaces`]: socket activation on two subnets at once, in network namespaces (root);
//! - [`process`]: the binary: `--check-config`, SIGKILL durability, SIGTERM shutdown, and
//!   the message command.

mod control;
mod datagram;
mod expiry;
mod follow;
mod harness;
mod inbox;
mod logind;
mod names;
mod namespaces;
mod organisation;
mod process;
mod receipts;
mod session;
mod users;
