//! Keeps the service's login sessions in step with who is logged in: from systemd-logind
//! when it is the source (every session, graphical ones included, announced as they begin
//! and end), else from utmp, read again every couple of seconds. The service registers each
//! logged-in user's name and shows messages on their terminals from this list.

use std::sync::Arc;
use std::time::Duration;

use messenger_core::config::LoginSessions;
use tokio_util::sync::CancellationToken;

use crate::host::logind::Logind;
use crate::host::utmp::{self, LoginSession};
use crate::service::Service;

/// How often utmp is read again for logins and logouts. `who` is no faster; a name appears a
/// couple of seconds after its user logs in.
const UTMP_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How often logind's sessions are listed again even when it announced nothing: a session
/// that starts closing or changes type is not announced as new or removed.
const LOGIND_RESYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Pause before asking logind again after it could not be reached or the bus went away;
/// the sessions last seen stay meanwhile.
const LOGIND_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Follows the configured source of login sessions until `shutdown`.
pub(crate) async fn watch(service: Arc<Service>, shutdown: CancellationToken) {
    match service.settings().config.login_sessions() {
        LoginSessions::Utmp => watch_utmp(&service, &shutdown).await,
        LoginSessions::Logind => watch_logind(&service, &shutdown, None).await,
        LoginSessions::Auto => match Logind::connect().await {
            Ok(logind) => {
                tracing::info!("login sessions from systemd-logind");
                watch_logind(&service, &shutdown, Some(logind)).await
            }
            Err(e) => {
                tracing::info!(reason = %e, "systemd-logind not reachable; login sessions from utmp");
                watch_utmp(&service, &shutdown).await
            }
        },
    }
}

async fn watch_utmp(service: &Arc<Service>, shutdown: &CancellationToken) {
    let path = service.settings().config.utmp_path();
    let mut last: Option<Vec<LoginSession>> = None;
    loop {
        // A read of a file can stall (a hung file system); keep it off the runtime's workers.
        let read_path = path.clone();
        let read = tokio::task::spawn_blocking(move || utmp::read_sessions(&read_path))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Ok(sessions) => update(service, &mut last, sessions).await,
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot read utmp"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(UTMP_POLL_INTERVAL) => {}
        }
    }
}

/// Follows logind, connecting (again) whenever it is not connected.
async fn watch_logind(
    service: &Arc<Service>,
    shutdown: &CancellationToken,
    mut connected: Option<Logind>,
) {
    let mut last: Option<Vec<LoginSession>> = None;
    loop {
        let logind = match connected.take() {
            Some(logind) => Ok(logind),
            None => Logind::connect().await,
        };
        match logind {
            Ok(logind) => follow(service, shutdown, &logind, &mut last).await,
            Err(e) => tracing::warn!(error = %e, "cannot reach systemd-logind"),
        }
        if shutdown.is_cancelled() {
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(LOGIND_RETRY_INTERVAL) => {}
        }
    }
}

/// Lists logind's sessions now and whenever it announces a change, until the bus goes away
/// or `shutdown`.
async fn follow(
    service: &Arc<Service>,
    shutdown: &CancellationToken,
    logind: &Logind,
    last: &mut Option<Vec<LoginSession>>,
) {
    // Subscribed before the first listing, so that no session that begins in between is
    // missed.
    let mut changes = match logind.changes().await {
        Ok(changes) => changes,
        Err(e) => {
            tracing::warn!(error = %e, "cannot follow systemd-logind's sessions");
            return;
        }
    };
    loop {
        match logind.sessions().await {
            Ok(sessions) => update(service, last, sessions).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list systemd-logind's sessions");
                return;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            more = changes.next() => if !more {
                tracing::warn!("the system bus went away; asking systemd-logind again");
                return;
            },
            _ = tokio::time::sleep(LOGIND_RESYNC_INTERVAL) => {}
        }
    }
}

async fn update(
    service: &Arc<Service>,
    last: &mut Option<Vec<LoginSession>>,
    sessions: Vec<LoginSession>,
) {
    if last.as_ref() != Some(&sessions) {
        service.refresh_sessions(sessions.clone()).await;
        *last = Some(sessions);
    }
}
