//! The Messenger service's durable state: the inbox of received messages and the table of
//! added messaging names, in one SQLite database in WAL mode.
#![forbid(unsafe_code)]
