//! The control socket: what the `messenger` command line asks, and who may ask what.
//!
//! Callers are identified by the kernel (SO_PEERCRED), never by anything they send. A user may
//! add and delete only their own aliases, read only their own inbox, and send only under their
//! own name; root may do anything. The computer name can never be deleted (2278).

use std::sync::Arc;

use messenger_core::message::{InboxQuery, NewMessage, StoredMessage};
use messenger_core::names::{parse_messaging_name, NameKind, Owner};
use messenger_core::nerr::{
    self, ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER, NERR_ALREADY_EXISTS,
    NERR_DEL_COMPUTER_NAME, NERR_INTERNAL_ERROR, NERR_NOT_LOCAL_NAME, NERR_TOO_MANY_NAMES,
};
use messenger_ipc::{
    decode_line, encode_line, IpcError, MessageView, NameInfo, Reply, Request, StatusInfo,
    MAX_LINE_LEN, MAX_PAGE_BYTES, MAX_PAGE_MESSAGES, PROTOCOL_VERSION,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::inbox::PageRequest;
use crate::service::{lock, now_micros, rfc3339, Service};

/// Connections to the control socket served at once; the command line opens one per command.
const MAX_CONTROL_CONNECTIONS: usize = 256;
/// How long an `/ADD` waits for the network to object before it is settled: the broadcast
/// registration takes three retries 250 ms apart (RFC 1002 s.6), a WINS registration longer.
const NAME_ADD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Numeric user id.
    pub uid: u32,
    /// Login name (the uid as a number if it has no account).
    pub user: String,
    /// Whether it is root.
    pub is_root: bool,
    /// Whether it may send broadcasts.
    pub may_broadcast: bool,
}

impl Caller {
    fn from_uid(uid: u32, gid: u32, broadcast_group: Option<&str>) -> Self {
        let account = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten();
        let user = account
            .as_ref()
            .map_or_else(|| uid.to_string(), |a| a.name.clone());
        let is_root = uid == 0;
        let in_group = broadcast_group.is_some_and(|g| member_of(&user, gid, g));
        Self {
            uid,
            user,
            is_root,
            may_broadcast: is_root || in_group,
        }
    }
}

fn member_of(user: &str, primary_gid: u32, group: &str) -> bool {
    let Ok(Some(g)) = nix::unistd::Group::from_name(group) else {
        return false;
    };
    g.gid.as_raw() == primary_gid || g.mem.iter().any(|m| m == user)
}

pub(crate) fn error(code: u32, message: impl Into<String>) -> Reply {
    Reply::Error(IpcError {
        code,
        message: message.into(),
    })
}

pub(crate) fn nerr_reply(code: u32) -> Reply {
    error(code, nerr::text(code).unwrap_or("An error occurred."))
}

/// Serves the control socket until `shutdown`.
pub async fn serve(listener: UnixListener, service: Arc<Service>, shutdown: CancellationToken) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONTROL_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!("too many control connections; refusing one");
            continue;
        };
        let service = Arc::clone(&service);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = handle_connection(stream, service, shutdown).await {
                tracing::debug!(error = %e, "control connection ended");
            }
            drop(permit);
        });
    }
}

async fn handle_connection(
    stream: UnixStream,
    service: Arc<Service>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let caller = Caller::from_uid(
        cred.uid(),
        cred.gid(),
        service.settings.config.policy.broadcast_group.as_deref(),
    );
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_LINE_LEN as u64 + 1);
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            n = limited.read_until(b'\n', &mut line) => n?,
        };
        if n == 0 {
            return Ok(());
        }
        let request: Request = match decode_line(&line) {
            Ok(r) => r,
            Err(e) => {
                let reply = error(ERROR_INVALID_PARAMETER, format!("bad request: {e}"));
                write.write_all(&encode_line(&reply)).await?;
                continue;
            }
        };
        if let Request::InboxFollow { all_users } = request {
            return follow(&service, &caller, all_users, &mut write, &shutdown).await;
        }
        let reply = handle(&service, &caller, request).await;
        write.write_all(&encode_line(&reply)).await?;
    }
}

async fn follow(
    service: &Arc<Service>,
    caller: &Caller,
    all_users: bool,
    write: &mut tokio::net::unix::OwnedWriteHalf,
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    if all_users && !caller.is_root {
        return write
            .write_all(&encode_line(&nerr_reply(ERROR_ACCESS_DENIED)))
            .await;
    }
    let mut rx = service.inbox.subscribe();
    write.write_all(&encode_line(&Reply::Following)).await?;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = rx.recv() => m,
        };
        match next {
            Ok(m) => {
                if all_users || visible_to(&m.message, &caller.user) {
                    let view = view(&m);
                    write.write_all(&encode_line(&Reply::Message(view))).await?;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "a follower fell behind");
            }
            Err(_) => return Ok(()),
        }
    }
}

fn visible_to(m: &NewMessage, user: &str) -> bool {
    m.recipients.is_empty() || m.recipients.iter().any(|r| r == user)
}

/// Bytes a message's view takes in JSON besides its text and names: field names, id, flags,
/// the time (at most 40 bytes), the transport and the source address (at most 64). Less than
/// this; checked by a test against the longest of each.
const VIEW_JSON_OVERHEAD: usize = 256;

/// At least the bytes `m` takes in an `InboxList` reply, so that a page stops before the reply
/// outgrows the line cap: JSON writes a string's byte as at most six (`\u0001`). A bound
/// rather than the encoding itself, which would double the work of every listing.
fn encoded_len_bound(m: &StoredMessage) -> usize {
    let strings = m.message.text.len() + m.message.from.len() + m.message.to.len();
    strings.saturating_mul(6).saturating_add(VIEW_JSON_OVERHEAD)
}

/// The view of a stored message the command line shows.
pub fn view(m: &StoredMessage) -> MessageView {
    MessageView {
        id: m.id,
        received_at: rfc3339(m.message.received_at),
        from: m.message.from.clone(),
        to: m.message.to.clone(),
        text: m.message.text.clone(),
        source: m.message.source.map(|s| s.to_string()),
        transport: m.message.transport.as_str().to_owned(),
        read: m.read,
    }
}

async fn handle(service: &Arc<Service>, caller: &Caller, request: Request) -> Reply {
    match request {
        Request::Status => {
            let user = caller.user.clone();
            let unread = service
                .inbox
                .with_store(move |s| s.unread_count(&user))
                .await
                .unwrap_or(0);
            Reply::Status(StatusInfo {
                protocol_version: PROTOCOL_VERSION,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                pid: std::process::id(),
                uptime_secs: service.started.elapsed().as_secs(),
                computer_name: service.settings.computer_name.clone(),
                workgroup: service.settings.workgroup.clone(),
                addresses: service.addresses.iter().map(|a| a.to_string()).collect(),
                unread: unread as u64,
            })
        }
        Request::NameList => {
            let names = lock(&service.names)
                .iter()
                .map(|e| NameInfo {
                    name: messenger_core::names::display_name(&e.name),
                    kind: e.kind.as_str().to_owned(),
                    owner: e.owner.as_ref().map(|o| o.name.clone()),
                    state: e.state.as_str().to_owned(),
                })
                .collect();
            Reply::Names { names }
        }
        Request::NameAdd { name } => name_add(service, caller, &name).await,
        Request::NameDelete { name } => name_delete(service, caller, &name).await,
        Request::InboxList {
            unread_only,
            all_users,
            after_id,
            limit,
            last,
        } => {
            if all_users && !caller.is_root {
                return nerr_reply(ERROR_ACCESS_DENIED);
            }
            let request = PageRequest {
                query: InboxQuery {
                    user: (!all_users).then(|| caller.user.clone()),
                    unread_only,
                    after_id,
                    limit: None,
                },
                limit: limit.unwrap_or(MAX_PAGE_MESSAGES).min(MAX_PAGE_MESSAGES),
                last,
                max_bytes: MAX_PAGE_BYTES,
            };
            match service.inbox.page(request, encoded_len_bound).await {
                Ok(page) => Reply::Messages {
                    messages: page.messages.iter().map(view).collect(),
                    more: page.more,
                    older: page.older,
                },
                Err(e) => error(NERR_INTERNAL_ERROR, format!("inbox: {e}")),
            }
        }
        Request::InboxMarkRead { ids } => {
            let user = caller.user.clone();
            match service
                .inbox
                .with_store(move |s| s.mark_read(&user, &ids))
                .await
            {
                Ok(count) => Reply::MarkedRead { count },
                Err(e) => error(NERR_INTERNAL_ERROR, format!("inbox: {e}")),
            }
        }
        Request::InboxFollow { .. } => error(ERROR_INVALID_PARAMETER, "follow is a stream"),
        Request::Send {
            target,
            from,
            text,
            allow_long,
        } => crate::send::send(service, caller, target, from, text, allow_long).await,
    }
}

async fn name_add(service: &Arc<Service>, caller: &Caller, typed: &str) -> Reply {
    let name = match parse_messaging_name(typed) {
        Ok(n) => n,
        Err(e) => return error(e.nerr(), e.to_string()),
    };
    {
        let names = lock(&service.names);
        if names.get(&name).is_some() {
            return nerr_reply(NERR_ALREADY_EXISTS);
        }
        let max = service.settings.config.limits.max_names_per_user;
        if !caller.is_root && names.aliases_owned_by(caller.uid) >= max {
            return nerr_reply(NERR_TOO_MANY_NAMES);
        }
        if names.iter().count() >= messenger_core::names::MAX_NAMES {
            return nerr_reply(NERR_TOO_MANY_NAMES);
        }
    }
    let owner = Owner {
        uid: caller.uid,
        name: caller.user.clone(),
    };
    if !service.add_name(name, NameKind::Alias, Some(owner.clone())) {
        return nerr_reply(NERR_ALREADY_EXISTS);
    }
    let waiter = lock(&service.names).wait_for(&name);
    let outcome = tokio::time::timeout(NAME_ADD_TIMEOUT, waiter).await;
    match outcome {
        Ok(Ok(Ok(()))) => {
            let record = messenger_core::names::MessagingName {
                name,
                kind: NameKind::Alias,
                owner,
            }
            .to_record(now_micros());
            match service.inbox.with_store(move |s| s.add_name(&record)).await {
                Ok(_) => Reply::Done,
                Err(e) => {
                    service.remove_name(&name);
                    error(NERR_INTERNAL_ERROR, format!("could not save the name: {e}"))
                }
            }
        }
        Ok(Ok(Err(code))) => {
            // The conflict is logged by the name service. The name is not kept, neither in our
            // table nor in the name service's (where it would show as CNF in node status).
            service.remove_name(&name);
            nerr_reply(code)
        }
        _ => {
            service.remove_name(&name);
            error(NERR_INTERNAL_ERROR, "the name registration did not finish")
        }
    }
}

async fn name_delete(service: &Arc<Service>, caller: &Caller, typed: &str) -> Reply {
    let name = match parse_messaging_name(typed) {
        Ok(n) => n,
        Err(e) => return error(e.nerr(), e.to_string()),
    };
    let (kind, owner_uid) = {
        let names = lock(&service.names);
        match names.get(&name) {
            None => return nerr_reply(NERR_NOT_LOCAL_NAME),
            Some(e) => (e.kind, e.owner.as_ref().map(|o| o.uid)),
        }
    };
    match kind {
        NameKind::Computer => return nerr_reply(NERR_DEL_COMPUTER_NAME),
        NameKind::User if !caller.is_root && owner_uid != Some(caller.uid) => {
            return nerr_reply(ERROR_ACCESS_DENIED)
        }
        NameKind::Alias if !caller.is_root && owner_uid != Some(caller.uid) => {
            return nerr_reply(ERROR_ACCESS_DENIED)
        }
        _ => {}
    }
    service.remove_name(&name);
    let stored = messenger_core::names::display_name(&name);
    if let Err(e) = service
        .inbox
        .with_store(move |s| s.delete_name(&stored).map(|_| ()))
        .await
    {
        tracing::warn!(error = %e, "could not remove a deleted name from the store");
    }
    Reply::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use messenger_core::message::Transport;

    #[test]
    fn the_size_bound_of_a_view_is_never_below_its_json() {
        let worst = |text: &str| StoredMessage {
            id: i64::MIN,
            message: NewMessage {
                received_at: i64::MIN,
                from: text.to_owned(),
                to: text.to_owned(),
                recipients: Vec::new(),
                source: Some(
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535"
                        .parse()
                        .unwrap(),
                ),
                transport: Transport::Mailslot,
                text: text.to_owned(),
                raw: Vec::new(),
            },
            read: false,
            read_by: Vec::new(),
        };
        for text in [
            "",
            "\u{1}",
            &"\u{1}".repeat(1600),
            &"ü\"\\".repeat(500),
            "日本",
        ] {
            let m = worst(text);
            let json = serde_json::to_vec(&view(&m)).unwrap().len() + 1;
            assert!(encoded_len_bound(&m) >= json, "{text:?}: {json}");
        }
    }
}
