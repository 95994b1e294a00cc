//! The ways messages come in and go out, each driving the service state: the name service
//! (UDP 137), the session service (TCP 139) and the datagram service (UDP 138) on the
//! receiving side, the router of outgoing messages (local delivery, NetBIOS, and any
//! further [`messenger_core::transport::Transport`]), and the organisation's network over
//! NATS JetStream, which both sends and receives, with the WINS proxy that points NetBIOS
//! senders at names held on other subnets.

pub(crate) mod datagram;
pub(crate) mod nameservice;
pub(crate) mod organisation;
pub(crate) mod outbound;
pub(crate) mod session;
pub(crate) mod wins_proxy;
