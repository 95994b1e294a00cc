//! `/USERS` as Windows did it: one copy per login session. The inbox keeps one copy per user
//! (a user's inbox is one, and their terminals all show it), and the sender's outcome lists
//! each session reached, with its terminal or seat and its remote host, so that an
//! administrator sees every session the message went to.

use crate::host::utmp::LoginSession;
use crate::service::Service;
use crate::transports::outbound::Outcome;

/// The login sessions now, as the send will see them.
pub(crate) fn snapshot(service: &Service) -> Vec<LoginSession> {
    service
        .sessions
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// How a session is shown to the sender: `alice on pts/3`, `alice on seat0` (a desktop),
/// with ` (from HOST)` for a remote one. Terminal, seat and host come from utmp or logind
/// unchecked; the command line makes them safe to print.
pub(crate) fn label(session: &LoginSession) -> String {
    let place = if !session.line.is_empty() {
        format!("{} on {}", session.user, session.line)
    } else if !session.seat.is_empty() {
        format!("{} on {}", session.user, session.seat)
    } else {
        format!("{} on a session without a terminal", session.user)
    };
    if session.host.is_empty() {
        place
    } else {
        format!("{place} (from {})", session.host)
    }
}

/// Replaces each user's outcome by one per session of theirs in `sessions` (the user's
/// outcome as it is for a user with none, logged out meanwhile). Every session shares its
/// user's result and receipt, since they share the copy. At most as many lines as sessions,
/// which utmp and logind reading bound (`MAX_SESSIONS`).
pub(crate) fn expand(outcomes: Vec<Outcome>, sessions: &[LoginSession]) -> Vec<Outcome> {
    let mut expanded = Vec::with_capacity(outcomes.len().max(sessions.len()));
    for outcome in outcomes {
        let mut labels: Vec<String> = sessions
            .iter()
            .filter(|s| s.user == outcome.recipient)
            .map(label)
            .collect();
        labels.sort();
        labels.dedup();
        if labels.is_empty() {
            expanded.push(outcome);
            continue;
        }
        for recipient in labels {
            expanded.push(Outcome {
                recipient,
                ..outcome.clone()
            });
        }
    }
    expanded
}

#[cfg(test)]
mod tests {
    use super::*;
    use messenger_core::transport::SendError;
    use messenger_ipc::Receipt;

    fn session(user: &str, line: &str, host: &str, seat: &str) -> LoginSession {
        LoginSession {
            user: user.into(),
            line: line.into(),
            host: host.into(),
            pid: 1,
            seat: seat.into(),
        }
    }

    fn outcome(user: &str, result: Result<(), SendError>) -> Outcome {
        Outcome {
            recipient: user.into(),
            result,
            receipt: Some(Receipt::NotReadInTime),
            notice: None,
            expiry_carried: false,
        }
    }

    #[test]
    fn sessions_are_labelled_by_terminal_seat_and_remote_host() {
        assert_eq!(label(&session("alice", "pts/3", "", "")), "alice on pts/3");
        assert_eq!(
            label(&session("alice", "pts/4", "10.0.0.5", "")),
            "alice on pts/4 (from 10.0.0.5)"
        );
        assert_eq!(label(&session("bob", "", "", "seat0")), "bob on seat0");
        assert_eq!(
            label(&session("carol", "", "", "")),
            "carol on a session without a terminal"
        );
    }

    #[test]
    fn each_session_of_a_user_gets_the_users_outcome() {
        let sessions = vec![
            session("alice", "pts/3", "", ""),
            session("bob", "", "", "seat0"),
            session("alice", "pts/4", "10.0.0.5", ""),
            // The same session read twice (utmp and a stale record) is one line.
            session("alice", "pts/3", "", ""),
        ];
        let failed = SendError {
            code: 2136,
            message: "no".into(),
            input: false,
        };
        let out = expand(
            vec![
                outcome("alice", Ok(())),
                outcome("bob", Err(failed.clone())),
                outcome("dave", Ok(())),
            ],
            &sessions,
        );
        let lines: Vec<(&str, bool)> = out
            .iter()
            .map(|o| (o.recipient.as_str(), o.result.is_ok()))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("alice on pts/3", true),
                ("alice on pts/4 (from 10.0.0.5)", true),
                ("bob on seat0", false),
                // Logged out meanwhile: the user's own line.
                ("dave", true),
            ]
        );
        assert!(out
            .iter()
            .all(|o| o.receipt == Some(Receipt::NotReadInTime)));
        assert_eq!(out[2].result, Err(failed));
    }
}
