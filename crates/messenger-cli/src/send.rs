//! `send`: a message to a name, an address, a workgroup, or every session here.
//!
//! With the service running the message goes through it (`Request::Send`): it knows this
//! computer's own names and its users' sessions. Without it, names, addresses and workgroups
//! are reached directly over the network with the same code the service uses
//! (`messenger-net`); only `/USERS` needs the service. On a Samba host `/USERS` also reaches
//! the clients with an SMB session to smbd (`smb_users`).

use std::io::{IsTerminal, Read};

use messenger_core::access::{self, SystemAccounts};
use messenger_core::nerr;
use messenger_ipc::{IpcError, Reply, Request, SendResult, SendTarget};
use messenger_net::{LengthLimit, NetError, Settings};

use crate::cli::SendArgs;
use crate::context::{self, Context};
use crate::output::{self, Exit};

/// Errors that mean the message did not get through (rather than a refused request).
const DELIVERY_ERRORS: &[u32] = &[
    nerr::NERR_NAME_NOT_FOUND,
    nerr::NERR_NETWORK_ERROR,
    nerr::NERR_PAUSED_REMOTE,
    nerr::NERR_BAD_RECEIVE,
];

/// Who gets the message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Recipient {
    Name(String),
    Workgroup(Option<String>),
    Users,
}

/// Runs `send`.
pub fn run(ctx: &Context, args: SendArgs) -> Exit {
    let (recipient, words) = match recipient(&args) {
        Ok(r) => r,
        Err(message) => {
            output::usage_error(&message);
            return Exit::Usage;
        }
    };
    let text = if words.is_empty() {
        match read_stdin() {
            Ok(t) => t,
            Err(message) => {
                output::usage_error(&message);
                return Exit::Usage;
            }
        }
    } else {
        words.join(" ")
    };
    if text.trim().is_empty() {
        output::usage_error("the message is empty");
        return Exit::Usage;
    }
    let identity = context::identity();
    if let Some(from) = &args.from {
        if !access::may_send_as(&identity, from) {
            output::net_error_with_detail(nerr::ERROR_ACCESS_DENIED, Some(access::SEND_AS_REFUSED));
            return Exit::Failed;
        }
    }
    let config = match ctx.config() {
        Ok(c) => c,
        Err(e) => {
            output::error(&e.0);
            return Exit::Failed;
        }
    };
    let limit = LengthLimit::from_allow_long(args.long);
    if let Err(e) = check_text(&recipient, &text, config.code_page(), limit) {
        return input_error(&e);
    }

    match ctx.connect() {
        Ok(mut client) => {
            let target = match &recipient {
                Recipient::Name(n) => SendTarget::Name { name: n.clone() },
                Recipient::Workgroup(w) => SendTarget::Workgroup { name: w.clone() },
                Recipient::Users => SendTarget::Users,
            };
            let request = Request::Send {
                target,
                from: args.from.clone(),
                text: text.clone(),
                allow_long: args.long,
            };
            let local = match client.call(&request) {
                Ok(Reply::Sent { results }) => Ok(results),
                Ok(Reply::Error(e)) => Err(e),
                other => return output::failed_reply(other),
            };
            if recipient == Recipient::Users && crate::smb_users::samba_here(config) {
                let from = args.from.clone().unwrap_or(identity.login);
                return users_with_smb(ctx, config, local, &from, &text, limit, args.verbose);
            }
            match local {
                Ok(results) => report(&results),
                Err(e) => request_failed(&recipient, &e),
            }
        }
        Err(e) if e.not_running() => {
            let from = args.from.clone().unwrap_or(identity.login);
            send_direct(ctx, &recipient, &from, &text, limit)
        }
        Err(e) => {
            output::error(&e.to_string());
            Exit::Failed
        }
    }
}

/// The recipient, and the words of the message.
fn recipient(args: &SendArgs) -> Result<(Recipient, Vec<String>), String> {
    if args.users {
        return Ok((Recipient::Users, args.words.clone()));
    }
    if let Some(domain) = &args.domain {
        let name = (!domain.is_empty()).then(|| domain.clone());
        return Ok((Recipient::Workgroup(name), args.words.clone()));
    }
    let Some((first, rest)) = args.words.split_first() else {
        return Err("missing the recipient: NAME, *, /DOMAIN[:NAME] or /USERS".to_owned());
    };
    let first = first.trim();
    let recipient = if first == "*" {
        Recipient::Workgroup(None)
    } else if let Some(group) = first.strip_suffix('*').filter(|g| !g.is_empty()) {
        // A name ending in `*` is a workgroup, sent by mailslot ([MS-MSRP] note <25>).
        Recipient::Workgroup(Some(group.to_owned()))
    } else if first.is_empty() {
        return Err("the recipient is empty".to_owned());
    } else {
        Recipient::Name(first.to_owned())
    };
    Ok((recipient, rest.to_vec()))
}

/// The message from standard input, without its final line breaks.
fn read_stdin() -> Result<String, String> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Type the message, then Ctrl-D on a line of its own:");
    }
    let mut bytes = Vec::new();
    stdin
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the message from standard input: {e}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| "the message on standard input is not UTF-8 text".to_owned())?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Checks the text against the recipient's limits in the code page of the configuration,
/// before anything is sent, so that a too-long message fails the same way with and without
/// the service.
fn check_text(
    recipient: &Recipient,
    text: &str,
    cp: netbios::oem::CodePage,
    limit: LengthLimit,
) -> Result<(), NetError> {
    match recipient {
        Recipient::Workgroup(_) => messenger_net::text::encode_broadcast(text, cp).map(drop),
        _ => messenger_net::text::encode_directed(text, cp, limit).map(drop),
    }
}

/// A problem with the text or a name: usage error.
fn input_error(e: &NetError) -> Exit {
    output::usage_error(&format!("{e}"));
    if let NetError::TooLong {
        unit: "bytes", max, ..
    } = e
    {
        if *max == messenger_net::text::WINDOWS_MAX_TEXT_LEN {
            eprintln!("Use --long to send up to 1600 bytes to receivers that take them (Samba).");
        }
    }
    Exit::Usage
}

/// Prints the outcome of each recipient; the exit status says whether all, some or none got
/// it.
fn report(results: &[SendResult]) -> Exit {
    let mut ok = 0;
    for r in results {
        match &r.error {
            None => {
                ok += 1;
                success(&r.recipient);
            }
            Some(e) => failure(&r.recipient, e.code, Some(&e.message)),
        }
    }
    if results.is_empty() {
        // /USERS with nobody logged in: nothing to deliver, nothing failed.
        println!("There is no user session on this computer to send the message to.");
        return Exit::Ok;
    }
    if ok == results.len() {
        Exit::Ok
    } else if ok == 0 {
        Exit::NotDelivered
    } else {
        Exit::Partial
    }
}

/// `/USERS` on a Samba host: the local users' results from the service (`Err` when it
/// refused), then one copy to each client with an SMB session. Each client's result is
/// printed with `verbose`; otherwise a failure is, and the successes are counted.
fn users_with_smb(
    ctx: &Context,
    config: &messenger_core::config::Config,
    local: Result<Vec<SendResult>, IpcError>,
    from: &str,
    text: &str,
    limit: LengthLimit,
    verbose: bool,
) -> Exit {
    // Nobody logged in here: the SMB clients may still be there.
    let (local, nobody_here) = match local {
        Ok(results) => (results, None),
        Err(e) if e.code == nerr::NERR_NAME_NOT_FOUND => (Vec::new(), Some(e)),
        Err(e) => return request_failed(&Recipient::Users, &e),
    };
    let computer = match ctx.computer_name() {
        Ok(n) => n,
        Err(e) => {
            output::error(&e.0);
            return Exit::Failed;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            output::error(&format!("cannot start the network runtime: {e}"));
            return Exit::Failed;
        }
    };
    let smb = runtime.block_on(crate::smb_users::send(config, &computer, from, text, limit));
    if let Some(e) = nobody_here.filter(|_| smb.results.is_empty() && smb.left_out == 0) {
        // Nobody anywhere: as without Samba.
        return request_failed(&Recipient::Users, &e);
    }
    let mut ok = 0;
    for r in &local {
        match &r.error {
            None => {
                ok += 1;
                success(&r.recipient);
            }
            Some(e) => failure(&r.recipient, e.code, Some(&e.message)),
        }
    }
    let mut smb_ok = 0;
    for r in &smb.results {
        match &r.error {
            None => {
                smb_ok += 1;
                if verbose {
                    success(&r.recipient);
                }
            }
            Some(e) => failure(&r.recipient, e.code, Some(&e.message)),
        }
    }
    if !verbose && smb_ok > 0 {
        println!(
            "The message was successfully sent to {smb_ok} client{} with an SMB session to this \
             server (--verbose lists them).",
            if smb_ok == 1 { "" } else { "s" }
        );
    }
    if let Some(note) = crate::smb_users::left_out_note(smb.left_out) {
        eprintln!("{note}");
    }
    let total = local.len() + smb.results.len() + smb.left_out;
    let delivered = ok + smb_ok;
    if total == 0 {
        println!("There is no user session on this computer to send the message to.");
        Exit::Ok
    } else if delivered == total {
        Exit::Ok
    } else if delivered == 0 {
        Exit::NotDelivered
    } else {
        Exit::Partial
    }
}

/// The service refused the request as a whole. A bad recipient or text is a usage error in
/// the service's words, which are `messenger-net`'s, as when sending without the service.
fn request_failed(recipient: &Recipient, e: &IpcError) -> Exit {
    if Exit::for_code(e.code) == Exit::Usage {
        output::usage_error(&e.message);
        return Exit::Usage;
    }
    if DELIVERY_ERRORS.contains(&e.code) {
        failure(&display(recipient), e.code, Some(&e.message));
        return Exit::NotDelivered;
    }
    output::net_error_with_detail(e.code, Some(&e.message));
    Exit::for_code(e.code)
}

fn success(recipient: &str) {
    println!(
        "The message was successfully sent to {}.",
        output::safe(recipient)
    );
}

fn failure(recipient: &str, code: u32, detail: Option<&str>) {
    eprintln!(
        "An error occurred while sending a message to {}.\n",
        output::safe(recipient)
    );
    output::net_error_with_detail(code, detail);
}

fn display(recipient: &Recipient) -> String {
    match recipient {
        Recipient::Name(n) => n.to_uppercase(),
        Recipient::Workgroup(Some(w)) => format!("domain {}", w.to_uppercase()),
        Recipient::Workgroup(None) => "the workgroup".to_owned(),
        Recipient::Users => "the users of this computer".to_owned(),
    }
}

/// Sends without the service.
fn send_direct(
    ctx: &Context,
    recipient: &Recipient,
    from: &str,
    text: &str,
    limit: LengthLimit,
) -> Exit {
    if *recipient == Recipient::Users {
        output::net_error_with_detail(
            nerr::NERR_MSG_NOT_STARTED,
            Some("Sending to /USERS needs the Messenger service (messenger start)."),
        );
        return Exit::NotRunning;
    }
    let (config, computer) = match (ctx.config(), ctx.computer_name()) {
        (Ok(c), Ok(n)) => (c, n),
        (Err(e), _) | (_, Err(e)) => {
            output::error(&e.0);
            return Exit::Failed;
        }
    };
    // The same rule the service applies to its callers: broadcasts are for root and the
    // configured broadcast group. (Anyone can still write their own datagram sender; the
    // receivers' `broadcast_sources` is what stops those.)
    if matches!(recipient, Recipient::Workgroup(_))
        && !access::may_broadcast(
            &context::identity(),
            config.policy.broadcast_group.as_deref(),
            &SystemAccounts,
        )
    {
        output::net_error_with_detail(nerr::ERROR_ACCESS_DENIED, Some(access::BROADCAST_REFUSED));
        return Exit::Failed;
    }
    let settings = match Settings::from_config(config, &computer) {
        Ok(s) => s,
        Err(e) => {
            failure(
                &display(recipient),
                nerr::NERR_NETWORK_ERROR,
                Some(&e.to_string()),
            );
            return Exit::NotDelivered;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            output::error(&format!("cannot start the network runtime: {e}"));
            return Exit::Failed;
        }
    };
    let outcome = runtime.block_on(async {
        match recipient {
            Recipient::Name(target) => messenger_net::send_to(&settings, target, from, text, limit)
                .await
                .map(|_| target.to_uppercase()),
            Recipient::Workgroup(group) => {
                let group = group.clone().unwrap_or_else(|| config.workgroup());
                messenger_net::send_broadcast(&settings, &group, from, text)
                    .await
                    .map(|r| format!("domain {}", r.workgroup))
            }
            Recipient::Users => unreachable!("handled above"),
        }
    });
    match outcome {
        Ok(shown) => {
            success(&shown);
            Exit::Ok
        }
        Err(e) if e.is_input_error() => input_error(&e),
        Err(e) => {
            failure(&display(recipient), e.nerr(), Some(&e.to_string()));
            Exit::NotDelivered
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> SendArgs {
        SendArgs {
            domain: None,
            users: false,
            from: None,
            long: false,
            verbose: false,
            words: words.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn recipients() {
        let (r, w) = recipient(&args(&["bob", "hi", "there"])).unwrap();
        assert_eq!(r, Recipient::Name("bob".into()));
        assert_eq!(w, vec!["hi", "there"]);
        assert_eq!(
            recipient(&args(&["*", "x"])).unwrap().0,
            Recipient::Workgroup(None)
        );
        assert_eq!(
            recipient(&args(&["LAB*", "x"])).unwrap().0,
            Recipient::Workgroup(Some("LAB".into()))
        );
        let mut a = args(&["hello"]);
        a.users = true;
        assert_eq!(
            recipient(&a).unwrap(),
            (Recipient::Users, vec!["hello".into()])
        );
        let mut a = args(&["hello"]);
        a.domain = Some(String::new());
        assert_eq!(recipient(&a).unwrap().0, Recipient::Workgroup(None));
        a.domain = Some("OTHER".into());
        assert_eq!(
            recipient(&a).unwrap().0,
            Recipient::Workgroup(Some("OTHER".into()))
        );
        assert!(recipient(&args(&[])).is_err());
    }

    #[test]
    fn texts_are_checked_per_recipient_kind() {
        let name = Recipient::Name("bob".into());
        let wg = Recipient::Workgroup(None);
        assert!(check_text(
            &name,
            &"x".repeat(652),
            netbios::oem::CodePage::Cp850,
            LengthLimit::Windows
        )
        .is_ok());
        assert!(check_text(
            &name,
            &"x".repeat(653),
            netbios::oem::CodePage::Cp850,
            LengthLimit::Windows
        )
        .is_err());
        assert!(check_text(
            &name,
            &"x".repeat(653),
            netbios::oem::CodePage::Cp850,
            LengthLimit::Long
        )
        .is_ok());
        assert!(check_text(
            &wg,
            &"x".repeat(128),
            netbios::oem::CodePage::Cp850,
            LengthLimit::Windows
        )
        .is_ok());
        assert!(check_text(
            &wg,
            &"x".repeat(129),
            netbios::oem::CodePage::Cp850,
            LengthLimit::Long
        )
        .is_err());
    }
}
