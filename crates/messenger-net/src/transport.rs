//! NetBIOS as a [`Transport`]: a name goes to its session service ([`send_to`]), a
//! workgroup gets a mailslot broadcast ([`send_broadcast`]).

use messenger_core::transport::{Delivery, Outgoing, Reach, Recipient, SendError, Transport};

use crate::{send_broadcast, send_to, LengthLimit, NetError, Settings};

/// Sends over NetBIOS with the given settings.
#[derive(Debug, Clone)]
pub struct NetBios {
    settings: Settings,
}

impl NetBios {
    /// A transport that sends with `settings`.
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }
}

impl From<NetError> for SendError {
    fn from(e: NetError) -> Self {
        SendError {
            code: e.nerr(),
            input: e.is_input_error(),
            message: e.to_string(),
        }
    }
}

impl Transport for NetBios {
    fn name(&self) -> &'static str {
        "netbios"
    }

    /// Any name or workgroup may be on the network; whether it answers is known only by
    /// asking, which is [`Transport::send`]'s work.
    fn reach(&self, _to: &Recipient) -> Reach {
        Reach::Network
    }

    async fn send(&self, message: &Outgoing) -> Result<Delivery, SendError> {
        match &message.to {
            Recipient::Name(name) => {
                let limit = LengthLimit::from_allow_long(message.allow_long);
                let delivered =
                    send_to(&self.settings, name, &message.from, &message.text, limit).await?;
                Ok(Delivery {
                    recipient: delivered.name,
                })
            }
            Recipient::Workgroup(workgroup) => {
                let report =
                    send_broadcast(&self.settings, workgroup, &message.from, &message.text).await?;
                Ok(Delivery {
                    recipient: report.workgroup,
                })
            }
        }
    }
}
