//! The control socket: what the `messenger` command line asks, and who may ask what.
//!
//! Callers are identified by the kernel (SO_PEERCRED), never by anything they send (see
//! [`crate::host::caller`]). A user may add and delete only their own aliases, never another
//! account's login name or a logged-in user's name, read only their own inbox, and send only
//! under their own name; root may do anything. The computer name can never be deleted (2278).

use std::sync::Arc;
use std::time::Duration;

use messenger_core::access::{self, SystemAccounts};
use messenger_core::message::{InboxQuery, NewMessage, StoredMessage};
use messenger_core::names::{parse_messaging_name, NameKind, Owner};
use messenger_core::nerr::{
    self, ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER, NERR_DEL_COMPUTER_NAME,
    NERR_INTERNAL_ERROR, NERR_NOT_LOCAL_NAME,
};
use messenger_core::transport::SendError;
use messenger_ipc::{
    decode_line, encode_line, Audience, IpcError, MessageView, NameInfo, Reply, Request,
    SendResult, SendTarget, StatusInfo, MAX_LINE_LEN, MAX_PAGE_BYTES, MAX_PAGE_MESSAGES,
    MAX_WAIT_SECS, PROTOCOL_VERSION,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::host::caller::Caller;
use crate::service::inbox::PageRequest;
use crate::service::Service;
use crate::transports::outbound::{Outcome, SendOptions};
use crate::util::{lock, now_micros, rfc3339};

mod deliver;
mod expiring;
mod per_session;

/// Connections to the control socket served at once; the command line opens one per command.
const MAX_CONTROL_CONNECTIONS: usize = 256;
/// Pause after a failed `accept` on the control socket before the next, as for the session
/// listener: no busy loop on a lasting error (out of file descriptors), little delay after it.
const ACCEPT_ERROR_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
/// How long an `/ADD` waits for the network to object before it is settled: the broadcast
/// registration takes three retries 250 ms apart (RFC 1002 s.6), a WINS registration longer.
const NAME_ADD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The reply for NET error `code`, with its standard text.
fn nerr_reply(code: u32) -> Reply {
    Reply::error(code, nerr::text(code).unwrap_or("An error occurred."))
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
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!("too many control connections; refusing one");
            continue;
        };
        let tasks = service.tasks.clone();
        let service = Arc::clone(&service);
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
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
    let caller = Caller::lookup(
        cred.uid(),
        cred.gid(),
        service.settings.config.policy.broadcast_group.clone(),
    )
    .await;
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
                let reply = Reply::error(ERROR_INVALID_PARAMETER, format!("bad request: {e}"));
                write.write_all(&encode_line(&reply)).await?;
                continue;
            }
        };
        if let Request::InboxFollow {
            all_users,
            after_id,
        } = request
        {
            return follow(
                &service, &caller, all_users, after_id, &mut write, &shutdown,
            )
            .await;
        }
        let reply = match request {
            Request::InboxList {
                unread_only,
                all_users,
                after_id,
                limit,
                last,
            } => {
                let query = InboxQuery {
                    user: (!all_users).then(|| caller.user.clone()),
                    unread_only,
                    after_id,
                    limit: None,
                };
                list(&service, &caller, query, limit, last).await
            }
            request => encode_line(&handle(&service, &caller, request).await),
        };
        write.write_all(&reply).await?;
    }
}

/// Streams the caller's messages (every user's with `all_users`): first those in the inbox
/// after `after_id`, when given, then new ones as they are committed, each once and in id
/// order; a gap where the service could not keep up is announced with `Lagged`. A message
/// that expires unread is announced with `Expired`.
async fn follow(
    service: &Arc<Service>,
    caller: &Caller,
    all_users: bool,
    after_id: Option<i64>,
    write: &mut tokio::net::unix::OwnedWriteHalf,
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    if all_users && !caller.is_root {
        return write
            .write_all(&encode_line(&nerr_reply(ERROR_ACCESS_DENIED)))
            .await;
    }
    let inbox_error =
        |e: messenger_store::StoreError| Reply::error(NERR_INTERNAL_ERROR, format!("inbox: {e}"));
    let mut rx = match service.inbox.subscribe().await {
        Ok(rx) => rx,
        Err(e) => return write.write_all(&encode_line(&inbox_error(e))).await,
    };
    let mut expirations = service.inbox.subscribe_expirations();
    write.write_all(&encode_line(&Reply::Following)).await?;
    let mut last_sent = after_id;
    // The replay: what `rx` does not carry is in the inbox by now (see `Inbox::subscribe`).
    while after_id.is_some() {
        let request = PageRequest {
            query: InboxQuery {
                user: (!all_users).then(|| caller.user.clone()),
                unread_only: false,
                after_id: last_sent,
                limit: None,
            },
            limit: MAX_PAGE_MESSAGES,
            last: None,
            max_bytes: MAX_PAGE_BYTES,
        };
        let page = service
            .inbox
            .page(request, encoded_len_bound, |page| {
                let views: Vec<MessageView> = page.messages.iter().map(view).collect();
                (views, page.more)
            })
            .await;
        let (views, more) = match page {
            Ok(p) => p,
            Err(e) => return write.write_all(&encode_line(&inbox_error(e))).await,
        };
        for v in views {
            last_sent = Some(v.id);
            write.write_all(&encode_line(&Reply::Message(v))).await?;
        }
        if !more {
            break;
        }
    }
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = rx.recv() => m,
            e = expirations.recv() => {
                match e {
                    Ok(e) if all_users
                        || e.recipients.is_empty()
                        || e.recipients.contains(&caller.user) =>
                    {
                        write
                            .write_all(&encode_line(&Reply::Expired { id: e.id }))
                            .await?;
                    }
                    Ok(_) => {}
                    // Listings and replays show what expired; only the live notice is lost.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "a follower missed expiries");
                    }
                    Err(_) => return Ok(()),
                }
                continue;
            }
        };
        match next {
            Ok(m) => {
                let replayed = last_sent.is_some_and(|last| m.id <= last);
                if !replayed && (all_users || visible_to(&m.message, &caller.user)) {
                    last_sent = Some(m.id);
                    write
                        .write_all(&encode_line(&Reply::Message(view(&m))))
                        .await?;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "a follower fell behind");
                let reply = Reply::Lagged {
                    missed: n,
                    after_id: last_sent,
                };
                write.write_all(&encode_line(&reply)).await?;
            }
            Err(_) => return Ok(()),
        }
    }
}

fn visible_to(m: &NewMessage, user: &str) -> bool {
    m.recipients.is_empty() || m.recipients.iter().any(|r| r == user)
}

/// Bytes a message's view takes in JSON besides its text and names: field names, id, flags,
/// the times (at most 40 bytes each), the transport and the source address (at most 64).
/// Less than this; checked by a test against the longest of each.
const VIEW_JSON_OVERHEAD: usize = 320;

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
        audience: Audience::of_recipients(&m.message.recipients),
        expires_at: m.expires_at.map(rfc3339),
        expired: m.expired,
    }
}

/// One page of a listing, as the encoded reply line. The page is read, turned into views and
/// encoded on an inbox reader: a page is megabytes of JSON, and encoding it on the runtime's
/// workers would hold up the network tasks that acknowledge senders.
async fn list(
    service: &Arc<Service>,
    caller: &Caller,
    query: InboxQuery,
    limit: Option<usize>,
    last: Option<u64>,
) -> Vec<u8> {
    if query.user.is_none() && !caller.is_root {
        return encode_line(&nerr_reply(ERROR_ACCESS_DENIED));
    }
    let request = PageRequest {
        query,
        limit: limit.unwrap_or(MAX_PAGE_MESSAGES).min(MAX_PAGE_MESSAGES),
        last,
        max_bytes: MAX_PAGE_BYTES,
    };
    let encoded = service
        .inbox
        .page(request, encoded_len_bound, |page| {
            encode_line(&Reply::Messages {
                messages: page.messages.iter().map(view).collect(),
                more: page.more,
                older: page.older,
            })
        })
        .await;
    encoded
        .unwrap_or_else(|e| encode_line(&Reply::error(NERR_INTERNAL_ERROR, format!("inbox: {e}"))))
}

async fn handle(service: &Arc<Service>, caller: &Caller, request: Request) -> Reply {
    match request {
        Request::Status => {
            let user = caller.user.clone();
            // On a reader: counting a large inbox must not hold up senders' acknowledgements.
            let unread = service
                .inbox
                .read(move |s| s.unread_count(&user))
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
        Request::InboxMarkRead { ids } => {
            match service.inbox.mark_read(caller.user.clone(), ids).await {
                Ok(count) => Reply::MarkedRead { count },
                Err(e) => Reply::error(NERR_INTERNAL_ERROR, format!("inbox: {e}")),
            }
        }
        // Answered by the connection itself (see `handle_connection`).
        Request::InboxFollow { .. } | Request::InboxList { .. } => {
            Reply::error(ERROR_INVALID_PARAMETER, "not a simple request")
        }
        Request::Send {
            target,
            from,
            text,
            allow_long,
            wait_secs,
            expire_secs,
        } => {
            let expire = match expire_secs
                .map(messenger_ipc::check_expire_secs)
                .transpose()
            {
                Ok(e) => e,
                Err(why) => return Reply::error(ERROR_INVALID_PARAMETER, why),
            };
            let options = SendOptions {
                from,
                allow_long,
                wait: wait_secs.map(|s| Duration::from_secs(s.min(MAX_WAIT_SECS))),
                expire,
            };
            // `/USERS` reports each login session it reached (see `per_session`).
            let sessions =
                matches!(target, SendTarget::Users).then(|| per_session::snapshot(service));
            let outcome = expiring::send(service, caller, target, text, options).await;
            send_reply(match sessions {
                Some(sessions) => outcome.map(|o| per_session::expand(o, &sessions)),
                None => outcome,
            })
        }
        Request::Deliver(delivery) => deliver::deliver(service, caller, delivery).await,
    }
}

/// The reply to a send: its outcome per recipient, or why it failed as a whole.
fn send_reply(outcome: Result<Vec<Outcome>, SendError>) -> Reply {
    match outcome {
        Ok(outcomes) => Reply::sent(outcomes.into_iter().map(|o| SendResult {
            recipient: o.recipient,
            error: o.result.err().map(|e| IpcError {
                code: e.code,
                message: e.message,
            }),
            receipt: o.receipt,
            notice: o.notice,
        })),
        Err(e) => Reply::error(e.code, e.message),
    }
}

async fn name_add(service: &Arc<Service>, caller: &Caller, typed: &str) -> Reply {
    let name = match parse_messaging_name(typed) {
        Ok(n) => n,
        Err(e) => return Reply::error(e.nerr(), e.to_string()),
    };
    if !caller.is_root {
        // Names belong to their users: another account's login name, or the name of someone
        // logged in here, is not anyone else's alias. The account lookups may block.
        let logged_in: Vec<String> = {
            let sessions = service.sessions.read().unwrap_or_else(|e| e.into_inner());
            crate::host::utmp::users(&sessions).into_iter().collect()
        };
        let identity = caller.identity();
        let typed = typed.to_owned();
        let verdict = tokio::task::spawn_blocking(move || {
            access::check_alias(&identity, &typed, &logged_in, &SystemAccounts)
        })
        .await;
        match verdict {
            Ok(Ok(())) => {}
            Ok(Err(refused)) => return Reply::error(refused.nerr(), refused.to_string()),
            Err(_) => return Reply::error(NERR_INTERNAL_ERROR, "the account lookup failed"),
        }
    }
    let owner = Owner {
        uid: caller.uid,
        name: caller.user.clone(),
    };
    let per_user_cap =
        (!caller.is_root).then_some(service.settings.config.limits.max_names_per_user);
    if let Err(code) = service.add_alias(name, owner.clone(), per_user_cap) {
        return nerr_reply(code);
    }
    let waiter = lock(&service.names).wait_for(&name);
    let outcome = tokio::time::timeout(NAME_ADD_TIMEOUT, waiter).await;
    match outcome {
        Ok(Ok(Ok(()))) => {
            // A user whose login name this is may have logged in meanwhile and taken it.
            if !service.is_alias_of(&name, owner.uid) {
                return Reply::error(
                    ERROR_ACCESS_DENIED,
                    "the name is now the name of a user who logged in",
                );
            }
            let record = messenger_core::names::MessagingName {
                name,
                kind: NameKind::Alias,
                owner,
            }
            .to_record(now_micros());
            match service.inbox.with_store(move |s| s.add_name(&record)).await {
                Ok(_) => Reply::Done,
                Err(e) => {
                    service.remove_alias_of(&name, caller.uid);
                    Reply::error(NERR_INTERNAL_ERROR, format!("could not save the name: {e}"))
                }
            }
        }
        Ok(Ok(Err(code))) => {
            // The conflict is logged by the name service. The name is not kept, neither in our
            // table nor in the name service's (where it would show as CNF in node status).
            service.remove_alias_of(&name, caller.uid);
            nerr_reply(code)
        }
        _ => {
            service.remove_alias_of(&name, caller.uid);
            Reply::error(NERR_INTERNAL_ERROR, "the name registration did not finish")
        }
    }
}

async fn name_delete(service: &Arc<Service>, caller: &Caller, typed: &str) -> Reply {
    let name = match parse_messaging_name(typed) {
        Ok(n) => n,
        Err(e) => return Reply::error(e.nerr(), e.to_string()),
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
    use messenger_core::message::TransportKind;

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
                transport: TransportKind::Mailslot,
                text: text.to_owned(),
                raw: Vec::new(),
            },
            read: false,
            read_by: Vec::new(),
            expires_at: Some(i64::MIN),
            expired: true,
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
