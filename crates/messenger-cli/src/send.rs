//! `send`: a message to a name, an address, a workgroup, or every session here.
//!
//! With the service running the message goes through it (`Request::Send`): it knows this
//! computer's own names and its users' sessions. Without it, names, addresses and workgroups
//! are reached directly over the network with the same code the service uses
//! (`messenger-net`); only `/USERS` needs the service. On a Samba host `/USERS` also reaches
//! the clients with an SMB session to smbd (`smb_users`).

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::Duration;

use messenger_core::access::{self, SystemAccounts};
use messenger_core::nerr;
use messenger_ipc::{IpcError, Receipt, Reply, Request, SendResult, SendTarget};
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

/// The most recipients `@FILE` may list: a department's worth, sent one after the other;
/// larger audiences are what workgroup broadcasts and `/USERS` are for.
pub const MAX_FILE_RECIPIENTS: usize = 1000;
/// The largest `@FILE` read: 1,000 names of at most 15 characters with room for comments.
const MAX_RECIPIENT_FILE_BYTES: u64 = 64 * 1024;

/// How a send reports its outcome.
#[derive(Debug, Clone, Copy)]
struct Reporting {
    /// Print every recipient's outcome, not only failures.
    each: bool,
    /// The wait asked for, in seconds.
    wait: Option<u64>,
}

/// Runs `send`.
pub fn run(ctx: &Context, args: SendArgs) -> Exit {
    let (recipients, words) = match recipients(&args) {
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
    // Every recipient's limits before anything is sent: a list is sent whole or not at all.
    for recipient in &recipients {
        if let Err(e) = check_text(recipient, &text, config.code_page(), limit) {
            return input_error(&e);
        }
    }
    let many = recipients.len() > 1;
    let reporting = Reporting {
        each: args.verbose || !many,
        wait: args.wait,
    };

    let mut client = match ctx.connect() {
        Ok(client) => Some(client),
        Err(e) if e.not_running() => None,
        Err(e) => {
            output::error(&e.to_string());
            return Exit::Failed;
        }
    };
    if let (Some(client), Some(wait)) = (client.as_mut(), args.wait) {
        let timeout = Duration::from_secs(wait) + messenger_ipc::CLIENT_REPLY_TIMEOUT;
        if let Err(e) = client.set_reply_timeout(timeout) {
            output::error(&e.to_string());
            return Exit::Failed;
        }
    }
    if client.is_none() && args.time.is_some() {
        // Sent straight over NetBIOS: nothing here keeps the message, so nothing expires it.
        println!(
            "The Messenger service is not running here: the message is sent without its expiry."
        );
    }
    let mut tally = Tally::default();
    for recipient in &recipients {
        let exit = match client.as_mut() {
            Some(client) => {
                let target = match recipient {
                    Recipient::Name(n) => SendTarget::Name { name: n.clone() },
                    Recipient::Workgroup(w) => SendTarget::Workgroup { name: w.clone() },
                    Recipient::Users => SendTarget::Users,
                };
                let request = Request::Send {
                    target,
                    from: args.from.clone(),
                    text: text.clone(),
                    allow_long: args.long,
                    wait_secs: args.wait,
                    expire_secs: args.time,
                };
                let samba_users =
                    *recipient == Recipient::Users && crate::smb_users::samba_here(config);
                match client.call(&request) {
                    Ok(Reply::Sent { results }) if samba_users => {
                        users_with_smb(ctx, config, Ok(results), &args, &text, limit, reporting)
                    }
                    Ok(Reply::Error(e)) if samba_users => {
                        users_with_smb(ctx, config, Err(e), &args, &text, limit, reporting)
                    }
                    Ok(Reply::Sent { results }) => report(&results, reporting),
                    Ok(Reply::Error(e)) => request_failed(recipient, &e),
                    other => output::failed_reply(other),
                }
            }
            None => {
                let from = args.from.clone().unwrap_or_else(|| identity.login.clone());
                send_direct(ctx, recipient, &from, &text, limit, reporting)
            }
        };
        // A usage error (a name that cannot be one) stops a list where it is.
        if exit == Exit::Usage || exit == Exit::NotRunning {
            return exit;
        }
        if !many {
            return exit;
        }
        tally.add(exit);
    }
    if many && !args.verbose {
        println!(
            "The message was sent to {} of {} recipients.",
            tally.delivered,
            recipients.len()
        );
    }
    tally.exit()
}

/// The outcomes of a send to several recipients, as one exit status.
#[derive(Debug, Default)]
struct Tally {
    delivered: usize,
    failed: usize,
    partial: bool,
    not_read: bool,
}

impl Tally {
    fn add(&mut self, exit: Exit) {
        match exit {
            Exit::Ok => self.delivered += 1,
            Exit::NotRead => {
                self.delivered += 1;
                self.not_read = true;
            }
            Exit::Partial => {
                self.delivered += 1;
                self.partial = true;
            }
            _ => self.failed += 1,
        }
    }

    fn exit(&self) -> Exit {
        if self.partial || (self.failed > 0 && self.delivered > 0) {
            Exit::Partial
        } else if self.failed > 0 {
            Exit::NotDelivered
        } else if self.not_read {
            Exit::NotRead
        } else {
            Exit::Ok
        }
    }
}

/// The recipients, and the words of the message.
fn recipients(args: &SendArgs) -> Result<(Vec<Recipient>, Vec<String>), String> {
    if args.users {
        return Ok((vec![Recipient::Users], args.words.clone()));
    }
    if let Some(domain) = &args.domain {
        let name = (!domain.is_empty()).then(|| domain.clone());
        return Ok((vec![Recipient::Workgroup(name)], args.words.clone()));
    }
    let Some((first, rest)) = args.words.split_first() else {
        return Err("missing the recipient: NAME, *, /DOMAIN[:NAME], /USERS or @FILE".to_owned());
    };
    let first = first.trim();
    if let Some(path) = first.strip_prefix('@') {
        return Ok((recipients_in_file(Path::new(path))?, rest.to_vec()));
    }
    Ok((vec![recipient(first)?], rest.to_vec()))
}

/// One recipient as written: a name, `*`, or a workgroup name ending in `*`.
fn recipient(word: &str) -> Result<Recipient, String> {
    Ok(if word == "*" {
        Recipient::Workgroup(None)
    } else if let Some(group) = word.strip_suffix('*').filter(|g| !g.is_empty()) {
        // A name ending in `*` is a workgroup, sent by mailslot ([MS-MSRP] note <25>).
        Recipient::Workgroup(Some(group.to_owned()))
    } else if word.is_empty() {
        return Err("the recipient is empty".to_owned());
    } else {
        Recipient::Name(word.to_owned())
    })
}

/// The recipients listed in `path` (`msg @file`): one per line; blank lines and lines
/// starting with `#` are skipped.
fn recipients_in_file(path: &Path) -> Result<Vec<Recipient>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_RECIPIENT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_RECIPIENT_FILE_BYTES {
        return Err(format!(
            "{shown} is larger than {MAX_RECIPIENT_FILE_BYTES} bytes; it should list names, one per line"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8 text"))?;
    let mut recipients = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if recipients.len() == MAX_FILE_RECIPIENTS {
            return Err(format!(
                "{shown} lists more than {MAX_FILE_RECIPIENTS} recipients"
            ));
        }
        let r = recipient(line).map_err(|e| format!("{shown}:{}: {e}", number + 1))?;
        recipients.push(r);
    }
    if recipients.is_empty() {
        return Err(format!("{shown} lists no recipients"));
    }
    Ok(recipients)
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
fn report(results: &[SendResult], reporting: Reporting) -> Exit {
    let mut ok = 0;
    let mut not_read = false;
    for r in results {
        match &r.error {
            None => {
                ok += 1;
                if reporting.each {
                    success(&r.recipient);
                }
                if let Some(notice) = &r.notice {
                    println!("{}", output::safe(notice));
                }
                not_read |= report_receipt(&r.recipient, r.receipt, reporting);
            }
            Some(e) => failure(&r.recipient, e.code, Some(&e.message)),
        }
    }
    if results.is_empty() {
        // /USERS with nobody logged in: nothing to deliver, nothing failed.
        println!("There is no user session on this computer to send the message to.");
        return Exit::Ok;
    }
    if ok == results.len() && not_read {
        Exit::NotRead
    } else if ok == results.len() {
        Exit::Ok
    } else if ok == 0 {
        Exit::NotDelivered
    } else {
        Exit::Partial
    }
}

/// `/USERS` on a Samba host: the local users' results from the service (`Err` when it
/// refused), then one copy to each client with an SMB session. Each client's success is
/// printed with `--verbose`, otherwise counted; failures always are.
fn users_with_smb(
    ctx: &Context,
    config: &messenger_core::config::Config,
    local: Result<Vec<SendResult>, IpcError>,
    args: &SendArgs,
    text: &str,
    limit: LengthLimit,
    reporting: Reporting,
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
    let from = args
        .from
        .clone()
        .unwrap_or_else(|| context::identity().login);
    let Some(runtime) = network_runtime() else {
        return Exit::Failed;
    };
    let smb = runtime.block_on(crate::smb_users::send(
        config, &computer, &from, text, limit,
    ));
    if let Some(e) = nobody_here.filter(|_| smb.results.is_empty() && smb.left_out == 0) {
        // Nobody anywhere: as without Samba.
        return request_failed(&Recipient::Users, &e);
    }
    let local_exit = (!local.is_empty()).then(|| report(&local, reporting));
    // SMB clients over NetBIOS only say that they accepted a message (see --wait).
    let smb_reporting = Reporting {
        each: args.verbose,
        ..reporting
    };
    let mut smb_ok = 0;
    for r in &smb.results {
        match &r.error {
            None => {
                smb_ok += 1;
                if smb_reporting.each {
                    success(&r.recipient);
                }
                let accepted = reporting.wait.map(|_| messenger_ipc::Receipt::AcceptedOnly);
                report_receipt(&r.recipient, accepted, smb_reporting);
            }
            Some(e) => failure(&r.recipient, e.code, Some(&e.message)),
        }
    }
    if !args.verbose && smb_ok > 0 {
        println!(
            "The message was successfully sent to {smb_ok} client{} with an SMB session to this \
             server (--verbose lists them).",
            if smb_ok == 1 { "" } else { "s" }
        );
    }
    if let Some(note) = crate::smb_users::left_out_note(smb.left_out) {
        eprintln!("{note}");
    }
    let smb_total = smb.results.len() + smb.left_out;
    let smb_exit = if smb_total == 0 {
        None
    } else if smb_ok == smb_total {
        Some(Exit::Ok)
    } else if smb_ok == 0 {
        Some(Exit::NotDelivered)
    } else {
        Some(Exit::Partial)
    };
    match (local_exit, smb_exit) {
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => {
            println!("There is no user session on this computer to send the message to.");
            Exit::Ok
        }
        (Some(local), Some(smb)) => {
            let all = |e: Exit| matches!(e, Exit::Ok | Exit::NotRead);
            if all(local) && all(smb) {
                local
            } else if local == Exit::NotDelivered && smb == Exit::NotDelivered {
                Exit::NotDelivered
            } else {
                Exit::Partial
            }
        }
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

/// Says whether `recipient` read the message, for a send that waited; returns whether they
/// did not in time.
fn report_receipt(recipient: &str, receipt: Option<Receipt>, reporting: Reporting) -> bool {
    let (Some(wait), Some(receipt)) = (reporting.wait, receipt) else {
        return false;
    };
    let recipient = output::safe(recipient);
    match receipt {
        Receipt::Read => {
            if reporting.each {
                println!("{recipient} has read the message.");
            }
            false
        }
        Receipt::NotReadInTime => {
            println!("{recipient} has not read the message within {wait} seconds.");
            true
        }
        Receipt::Expired => {
            println!("{recipient} has not read the message; it expired unread.");
            true
        }
        Receipt::AcceptedOnly => {
            if reporting.each {
                println!(
                    "{recipient} accepted the message; it does not report whether it was read."
                );
            }
            false
        }
    }
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
    reporting: Reporting,
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
    let Some(runtime) = network_runtime() else {
        return Exit::Failed;
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
            if reporting.each {
                success(&shown);
            }
            // Sent straight over the network: the receiver only says it accepted it.
            report_receipt(&shown, Some(Receipt::AcceptedOnly), reporting);
            Exit::Ok
        }
        Err(e) if e.is_input_error() => input_error(&e),
        Err(e) => {
            failure(&display(recipient), e.nerr(), Some(&e.to_string()));
            Exit::NotDelivered
        }
    }
}

/// The single-threaded runtime a send without the service runs on; `None`, said, when it
/// cannot be started.
fn network_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| output::error(&format!("cannot start the network runtime: {e}")))
        .ok()
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
            wait: None,
            time: None,
            verbose: false,
            words: words.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn one(args: &SendArgs) -> (Recipient, Vec<String>) {
        let (mut r, w) = super::recipients(args).unwrap();
        assert_eq!(r.len(), 1);
        (r.remove(0), w)
    }

    #[test]
    fn recipients() {
        let (r, w) = one(&args(&["bob", "hi", "there"]));
        assert_eq!(r, Recipient::Name("bob".into()));
        assert_eq!(w, vec!["hi", "there"]);
        assert_eq!(one(&args(&["*", "x"])).0, Recipient::Workgroup(None));
        assert_eq!(
            one(&args(&["LAB*", "x"])).0,
            Recipient::Workgroup(Some("LAB".into()))
        );
        let mut a = args(&["hello"]);
        a.users = true;
        assert_eq!(one(&a), (Recipient::Users, vec!["hello".into()]));
        let mut a = args(&["hello"]);
        a.domain = Some(String::new());
        assert_eq!(one(&a).0, Recipient::Workgroup(None));
        a.domain = Some("OTHER".into());
        assert_eq!(one(&a).0, Recipient::Workgroup(Some("OTHER".into())));
        assert!(super::recipients(&args(&[])).is_err());
    }

    #[test]
    fn a_recipient_file_lists_one_per_line_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("team");
        std::fs::write(&file, "# the team\nalice\n\n  bob  \nLAB*\n").unwrap();
        let word = format!("@{}", file.display());
        let (r, w) = super::recipients(&args(&[&word, "hi"])).unwrap();
        assert_eq!(
            r,
            vec![
                Recipient::Name("alice".into()),
                Recipient::Name("bob".into()),
                Recipient::Workgroup(Some("LAB".into())),
            ]
        );
        assert_eq!(w, vec!["hi"]);

        std::fs::write(&file, "# nobody\n\n").unwrap();
        let err = super::recipients(&args(&[&word, "hi"])).unwrap_err();
        assert!(err.contains("lists no recipients"), "{err}");
        let many: String = (0..=MAX_FILE_RECIPIENTS)
            .map(|i| format!("U{i}\n"))
            .collect();
        std::fs::write(&file, many).unwrap();
        let err = super::recipients(&args(&[&word, "hi"])).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        std::fs::write(&file, vec![b'a'; 70 * 1024]).unwrap();
        assert!(super::recipients(&args(&[&word, "hi"])).is_err());
        let missing = format!("@{}", dir.path().join("absent").display());
        let err = super::recipients(&args(&[&missing, "hi"])).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn a_list_exits_by_what_became_of_all_of_it() {
        let tally = |exits: &[Exit]| {
            let mut t = Tally::default();
            for e in exits {
                t.add(*e);
            }
            t.exit()
        };
        assert_eq!(tally(&[Exit::Ok, Exit::Ok]), Exit::Ok);
        assert_eq!(tally(&[Exit::Ok, Exit::NotRead]), Exit::NotRead);
        assert_eq!(
            tally(&[Exit::NotDelivered, Exit::Failed]),
            Exit::NotDelivered
        );
        assert_eq!(tally(&[Exit::Ok, Exit::NotDelivered]), Exit::Partial);
        assert_eq!(tally(&[Exit::Partial]), Exit::Partial);
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
