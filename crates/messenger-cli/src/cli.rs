//! The command-line definition: one clap tree from which parsing, `--help`, the shell
//! completions and the man page all come.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The exit statuses, shown at the end of `--help` and in the man page.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success: every recipient accepted the message, or the command completed
  1  the command failed (the NET error is printed, e.g. a name taken on the network)
  2  usage error: bad syntax, unknown switch, empty or too long message, invalid name
  3  the Messenger service is not running and the command needs it
  4  the message reached none of its recipients
  5  the message reached some recipients but not all
  6  --wait: the message was delivered, but not every recipient read it in time
     (with --time: it expired unread)";

/// Shown after the exit statuses in `--help`.
const ENVIRONMENT_HELP: &str = "\
Environment:
  MESSENGER_SOCKET  the service's control socket (as --socket)
  MESSENGER_CONFIG  the service's configuration file (as --config)

Invoked through a link named `net`, the program takes the Windows syntax:
  net send {name | * | /domain[:name] | /users} message
  net name [name [/add | /delete]]
  net start messenger, net stop messenger, net helpmsg number";

/// Send and receive Windows Messenger (`NET SEND`) messages.
#[derive(Debug, Parser)]
#[command(
    name = "messenger",
    version,
    about = "Send and receive Windows Messenger (NET SEND) messages",
    long_about = "Send and receive Windows Messenger (NET SEND) messages.\n\n\
        Messages go to NetBIOS messaging names (NAME<03>) over the NetBIOS session service, \
        or as broadcasts to a workgroup; they interoperate with Windows, Samba (smbclient -M) \
        and WinPopup. The Messenger service (messengerd) receives messages for this \
        computer's names and keeps them in each user's inbox.",
    after_long_help = const_format_help(),
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// The Messenger service's control socket [default: `control_socket` of the configuration,
    /// else /run/messenger/control.sock, the system service's, for every user]
    #[arg(long, global = true, value_name = "PATH", env = "MESSENGER_SOCKET")]
    pub socket: Option<PathBuf>,

    /// Read settings (ports, code page, workgroup, control socket) from the service's
    /// configuration file [default: /etc/messenger/messenger.toml if it exists]
    #[arg(long, global = true, value_name = "PATH", env = "MESSENGER_CONFIG")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `after_long_help` takes one string; the two sections are joined here once.
fn const_format_help() -> String {
    format!("{EXIT_STATUS_HELP}\n\n{ENVIRONMENT_HELP}")
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a message to a user or computer, a workgroup, or every user of this computer
    #[command(
        long_about = "Send a message.\n\n\
            NAME is a messaging name (a user or computer name, or an alias added with \
            `name /ADD`), an IPv4 address or a DNS host name. `*` or `/DOMAIN` sends to every \
            computer of this computer's workgroup, `/DOMAIN:OTHER` to another workgroup or \
            domain (a broadcast of at most 128 characters), `/USERS` to every user session on \
            this computer. Switches are case-insensitive. Options must come before NAME: \
            everything after NAME is the message. With no MESSAGE the text is read from \
            standard input.\n\n\
            Directed messages are limited to 652 bytes, the Windows limit; --long allows up \
            to 1600 bytes, which Samba and this project's service accept.",
        after_long_help = EXIT_STATUS_HELP
    )]
    Send(SendArgs),

    /// List this computer's messaging names, or add or delete one
    #[command(
        long_about = "List this computer's messaging names with their owners, or add \
            (`NAME /ADD`, --add) or delete (`NAME /DELETE`, --delete) an alias. A name has at \
            most 15 characters. The computer name cannot be deleted, and users can delete \
            only the names they own.",
        after_long_help = EXIT_STATUS_HELP
    )]
    Name(NameArgs),

    /// Start the Messenger service
    Start,

    /// Stop the Messenger service
    Stop,

    /// Show whether the Messenger service runs, and how it is set up
    Status,

    /// Show the messages received for you (oldest first, newest last)
    #[command(
        long_about = "Show the messages received for you, oldest first, newest last.\n\n\
            Without --limit the newest 100 are shown, and a last line says how many older \
            ones there are; --limit N shows the newest N, --limit all every message, and \
            --after ID the messages after the one numbered ID (all of them, or the first N \
            with --limit N). With --json every message is listed unless --limit says \
            otherwise. Large inboxes are fetched from the service page by page. Messages \
            shown are marked read unless --keep-unread.",
        after_long_help = EXIT_STATUS_HELP
    )]
    Inbox(InboxArgs),

    /// Show your messages as desktop notifications (run in your graphical session)
    #[command(
        long_about = "Run the desktop agent: follow your inbox and show each new message as a \
            desktop notification (org.freedesktop.Notifications on the session bus) that \
            stays until dismissed; messages to everyone are critical. At start the unread \
            messages are shown, a few one by one and the rest in one summary. Dismissing a \
            notification, or its OK action, marks the message read; one that expired or that \
            the notification server closed stays unread. The agent reconnects when the \
            service or the notification server restarts and misses nothing meanwhile. One \
            agent runs per user (a lock in $XDG_RUNTIME_DIR). Usually started by the \
            systemd user unit messenger-agent.service or the XDG autostart entry; it runs \
            until SIGTERM.",
        after_long_help = EXIT_STATUS_HELP
    )]
    Agent,

    /// Store a message that Samba's smbd received (for smbd's `message command`)
    #[command(
        long_about = "Store a message that Samba's smbd received in the Messenger service's \
            inbox, as the network message it was. Meant as smbd's `message command` on a host \
            where Samba owns the NetBIOS ports and the service runs with `netbios = false`:\n\n  \
            message command = /usr/bin/messenger deliver --file=%s --from=%f --to=%L \
            --machine=%m --address=%I\n\n\
            The file is removed once the service has answered. Only root and smbd's guest \
            account (smb.conf `guest account`, default nobody) may deliver.",
        after_long_help = EXIT_STATUS_HELP
    )]
    Deliver(DeliverArgs),

    /// Explain a NET error number (as NET HELPMSG does)
    Helpmsg {
        /// The error number, e.g. 2273
        #[arg(value_name = "NUMBER")]
        number: String,
    },

    /// Print a shell completion script
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the man page (roff)
    Manpage,

    /// `net start` without a service name: list the started services
    #[command(hide = true, name = "started-services")]
    StartedServices,
}

/// `send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Send to every computer of a workgroup or domain: this computer's own when NAME is
    /// left out (same as `*` and `/DOMAIN`), else NAME (same as `/DOMAIN:NAME`)
    #[arg(
        long,
        value_name = "NAME",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    pub domain: Option<String>,

    /// Send a copy to every user session on this computer (same as `/USERS`)
    #[arg(long, conflicts_with = "domain")]
    pub users: bool,

    /// The sender name shown to the recipient [default: your login name; only root may set
    /// another]
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,

    /// Allow messages up to 1600 bytes (Samba's limit) instead of Windows' 652
    #[arg(long)]
    pub long: bool,

    /// Wait until each recipient has read the message (dismissed or confirmed it on their
    /// desktop, listed it with `messenger inbox`, or had it shown on their terminal), at most
    /// SECONDS [default: 3600]. Hosts of the organisation (over NATS) report reads too;
    /// Windows, Samba and other hosts over NetBIOS only say that they accepted a message, and
    /// for them it says so instead of waiting
    #[arg(
        long,
        value_name = "SECONDS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = DEFAULT_WAIT_SECS,
        value_parser = clap::value_parser!(u64).range(1..=messenger_ipc::MAX_WAIT_SECS),
    )]
    pub wait: Option<u64>,

    /// The message expires after SECONDS (1 to 86400) unless a recipient read it by then
    /// (msg.exe's /TIME): its notification closes and it stays in the inbox marked expired.
    /// This computer's service and the organisation's (over NATS) keep the expiry; hosts over
    /// NetBIOS get the message without it
    #[arg(long, value_name = "SECONDS", value_parser = parse_expire_secs)]
    pub time: Option<u64>,

    /// Report every recipient's outcome (with @FILE, and for the clients with an SMB session
    /// that /USERS reaches on a Samba server, only failures and a count are reported
    /// otherwise)
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// `NAME MESSAGE...`: the recipient (`NAME`, `*`, `/DOMAIN[:NAME]`, `/USERS`, an IP address
    /// or a host name, or `@FILE`: the recipients listed in FILE, one per line), then the
    /// message; without --domain or --users the first word is the recipient
    #[arg(
        value_name = "NAME MESSAGE",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub words: Vec<String>,
}

/// `--time`: checked as the service checks it (`messenger_ipc::check_expire_secs`).
fn parse_expire_secs(value: &str) -> Result<u64, String> {
    let secs: u64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number of seconds"))?;
    messenger_ipc::check_expire_secs(secs).map(|_| secs)
}

/// How long `send --wait` waits without SECONDS: an hour, long enough for someone away
/// from their desk for a meeting, short enough that a forgotten waiting command ends.
const DEFAULT_WAIT_SECS: &str = "3600";

/// `deliver`.
#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// The file holding the text (smbd's %s)
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,

    /// The sender's name (smbd's %f)
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub from: String,

    /// The name the sender called (smbd's %L): a user's name or alias delivers to that user,
    /// anything else to everyone on this computer. (Not %t: since Samba 4.12 it is a time.)
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub to: Option<String>,

    /// The sending machine's NetBIOS name (smbd's %m)
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub machine: String,

    /// The sending machine's IP address (smbd's %I)
    #[arg(long, value_name = "IP")]
    pub address: String,
}

/// `name`.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The name to add or delete; without it the names are listed
    #[arg(value_name = "NAME")]
    pub name: Option<String>,

    /// Add NAME (the default when a NAME is given; same as `/ADD`)
    #[arg(long, requires = "name", conflicts_with = "delete")]
    pub add: bool,

    /// Delete NAME (same as `/DELETE`)
    #[arg(long, requires = "name")]
    pub delete: bool,
}

/// `inbox`.
#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Only messages you have not read yet
    #[arg(long)]
    pub unread: bool,

    /// Keep printing new messages as they arrive (until interrupted)
    #[arg(long, short = 'f')]
    pub follow: bool,

    /// One JSON object per line and message: id, received_at (RFC 3339), from, to, text,
    /// source, transport, read
    #[arg(long)]
    pub json: bool,

    /// Do not mark the messages shown as read
    #[arg(long)]
    pub keep_unread: bool,

    /// Every user's messages, not only yours (root only; marks nothing read)
    #[arg(long)]
    pub all: bool,

    /// How many messages to show: a number (the newest N, or with --after the first N after
    /// ID) or `all` [default: 100; with --json or --after, all]
    #[arg(long, short = 'n', value_name = "N|all", value_parser = parse_limit)]
    pub limit: Option<Limit>,

    /// Only the messages after the one with this number (the `#ID` a listing shows), oldest
    /// first
    #[arg(long, value_name = "ID")]
    pub after: Option<i64>,
}

/// `inbox --limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Every message.
    All,
    /// At most this many (at least 1).
    Count(u64),
}

fn parse_limit(text: &str) -> Result<Limit, String> {
    if text.eq_ignore_ascii_case("all") {
        return Ok(Limit::All);
    }
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Limit::Count(n)),
        _ => Err(format!(
            "{text:?} is not a number of messages (1 or more) or `all`"
        )),
    }
}

/// The command-line definition, for completions and the man page.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
