//! The desktop's notification server (`org.freedesktop.Notifications` on the session bus,
//! Desktop Notifications Specification 1.2), through zbus.

use std::collections::HashMap;

use zbus::zvariant::Value;

/// `NotificationClosed` reasons (specification, "Signals").
pub mod reason {
    /// The notification expired.
    pub const EXPIRED: u32 = 1;
    /// The user dismissed it.
    pub const DISMISSED: u32 = 2;
    /// `CloseNotification` closed it.
    pub const CLOSED_BY_CALL: u32 = 3;
}

/// The well-known name of the notification server.
pub const SERVICE: &str = "org.freedesktop.Notifications";

/// Action keys: `default` is what clicking the notification invokes, `ok` the button.
pub const ACTION_DEFAULT: &str = "default";
/// The "OK" button of the Windows pop-up.
pub const ACTION_OK: &str = "ok";

/// `expire_timeout` meaning "never": the notification stays until dismissed, as the Windows
/// pop-up stayed until OK was pressed.
const NEVER_EXPIRES: i32 = 0;

/// Urgency levels (specification, "Urgency Levels").
const URGENCY_NORMAL: u8 = 1;
const URGENCY_CRITICAL: u8 = 2;

#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
pub trait Notifications {
    /// Shows a notification; its id.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, Value<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;

    /// Closes a notification.
    fn close_notification(&self, id: u32) -> zbus::Result<()>;

    /// What the server can do (`body-markup`, `actions`, ...).
    fn get_capabilities(&self) -> zbus::Result<Vec<String>>;

    /// A notification was closed, and why.
    #[zbus(signal)]
    fn notification_closed(&self, id: u32, reason: u32) -> zbus::Result<()>;

    /// The user invoked an action of a notification.
    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: String) -> zbus::Result<()>;
}

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Summary line (plain text).
    pub summary: String,
    /// Body, already escaped if the server reads markup.
    pub body: String,
    /// Critical urgency (broadcasts) rather than normal.
    pub critical: bool,
    /// With the OK action (messages) or without (the catch-up summary).
    pub acknowledge: bool,
}

/// The hints of `note`: its urgency (critical for broadcasts), its category and the desktop
/// entry that names the agent.
pub fn hints(note: &Note) -> HashMap<&'static str, Value<'static>> {
    let urgency = if note.critical {
        URGENCY_CRITICAL
    } else {
        URGENCY_NORMAL
    };
    HashMap::from([
        ("urgency", Value::U8(urgency)),
        ("category", Value::from("im.received")),
        ("desktop-entry", Value::from("messenger-agent")),
    ])
}

/// The actions of `note`: clicking it and its OK button acknowledge a message.
pub fn actions(note: &Note) -> &'static [&'static str] {
    if note.acknowledge {
        &[ACTION_DEFAULT, "OK", ACTION_OK, "OK"]
    } else {
        &[]
    }
}

/// Shows `note`, never expiring, in place of notification `replaces` (0: none); the
/// server's id for it.
pub async fn show(proxy: &NotificationsProxy<'_>, note: &Note, replaces: u32) -> zbus::Result<u32> {
    proxy
        .notify(
            crate::format::APP_NAME,
            replaces,
            "",
            &note.summary,
            &note.body,
            actions(note),
            hints(note),
            NEVER_EXPIRES,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(critical: bool, acknowledge: bool) -> Note {
        Note {
            summary: "s".into(),
            body: "b".into(),
            critical,
            acknowledge,
        }
    }

    #[test]
    fn broadcasts_are_critical_and_messages_have_an_ok() {
        assert_eq!(hints(&note(true, true))["urgency"], Value::U8(2));
        assert_eq!(hints(&note(false, true))["urgency"], Value::U8(1));
        assert_eq!(actions(&note(false, true)), ["default", "OK", "ok", "OK"]);
        assert!(actions(&note(false, false)).is_empty());
    }
}
