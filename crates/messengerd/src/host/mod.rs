//! What the daemon needs from the computer it runs on: the sockets it binds as root, the
//! privileges it gives up, the files it prepares safely while still root, who is logged in
//! (utmp), and who is calling the control socket. Nothing here knows about messages.

pub mod activation;
pub mod caller;
pub mod logind;
pub mod ownership;
pub(crate) mod pktinfo;
pub mod privileges;
pub mod sockets;
pub(crate) mod udp;
pub mod utmp;
