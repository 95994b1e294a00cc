//! `messenger`, the command line of the Messenger service; `net` when invoked through a link of
//! that name.
//!
//! Exit status (also in `--help` and the man page):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success: every recipient accepted the message, or the command completed |
//! | 1 | the command failed; the NET error is printed (a name taken on the network, …) |
//! | 2 | usage error: bad syntax, unknown switch, empty or too long message, invalid name |
//! | 3 | the Messenger service is not running and the command needs it |
//! | 4 | the message reached none of its recipients |
//! | 5 | the message reached some recipients but not all |
//!
//! Unlike `smbclient -M`, which exits 0 even when nothing was delivered, a send exits 0 only
//! when every recipient acknowledged the message.
#![forbid(unsafe_code)]

mod argv;
mod cli;
mod context;
mod deliver;
mod helpmsg;
mod inbox;
mod name;
mod output;
mod send;
mod service;
mod smb_users;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::argv::Prepared;
use crate::cli::{Cli, Command};
use crate::output::Exit;

fn main() -> ExitCode {
    let raw: Vec<OsString> = std::env::args_os().collect();
    let net_mode = raw.first().is_some_and(|a| argv::is_net_mode(a));
    let mut args = Vec::with_capacity(raw.len());
    for a in raw {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(bad) => {
                output::usage_error(&format!(
                    "the argument {:?} is not valid UTF-8",
                    bad.to_string_lossy()
                ));
                return Exit::Usage.into();
            }
        }
    }
    run(&args, net_mode).into()
}

fn run(args: &[String], net_mode: bool) -> Exit {
    let args = match argv::prepare(args, net_mode) {
        Prepared::Args(args) => args,
        Prepared::NetHelp { asked } => {
            output::net_syntax();
            return if asked { Exit::Ok } else { Exit::Usage };
        }
        Prepared::NetUnknownCommand(cmd) => {
            output::usage_error(&format!(
                "NET {} is not a command of this program; it takes NET SEND, NET NAME, \
                 NET START MESSENGER, NET STOP MESSENGER and NET HELPMSG (Samba's net has the others)",
                cmd.to_uppercase()
            ));
            return Exit::Usage;
        }
        Prepared::NetBadService(name) => {
            output::net_error_with_detail(
                output::NERR_BAD_SERVICE_NAME,
                Some(&format!(
                    "The service name {name} is invalid: the only service here is the Messenger."
                )),
            );
            return Exit::Usage;
        }
        Prepared::BadSwitch(switch) => {
            output::usage_error(&format!("unknown switch {switch}"));
            return Exit::Usage;
        }
    };
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            // clap prints help and version to stdout and errors to stderr itself.
            let _ = e.print();
            return code;
        }
    };
    let ctx = context::Context::new(cli.config.clone(), cli.socket.clone());
    match cli.command {
        Command::Send(a) => send::run(&ctx, a),
        Command::Name(a) => name::run(&ctx, a),
        Command::Start => service::start(&ctx),
        Command::Stop => service::stop(&ctx),
        Command::Status => service::status(&ctx),
        Command::StartedServices => service::list_started(&ctx),
        Command::Inbox(a) => inbox::run(&ctx, a),
        Command::Deliver(a) => deliver::run(&ctx, a),
        Command::Agent => agent(&ctx),
        Command::Helpmsg { number } => helpmsg::run(&number),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut cli::command(),
                "messenger",
                &mut std::io::stdout(),
            );
            Exit::Ok
        }
        Command::Manpage => {
            let man = clap_mangen::Man::new(cli::command());
            match man.render(&mut std::io::stdout()) {
                Ok(()) => Exit::Ok,
                // A reader that stopped early (`| head`) is not an error worth a message.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
                Err(e) => {
                    output::error(&format!("cannot write the man page: {e}"));
                    Exit::Failed
                }
            }
        }
    }
}

/// Runs `agent` until it is stopped.
fn agent(ctx: &context::Context) -> Exit {
    let socket = match ctx.socket() {
        Ok(s) => s,
        Err(e) => {
            output::error(&e.0);
            return Exit::Failed;
        }
    };
    messenger_agent::init_logging();
    match messenger_agent::run(messenger_agent::Options { socket }) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            output::error(&e.to_string());
            Exit::Failed
        }
    }
}
