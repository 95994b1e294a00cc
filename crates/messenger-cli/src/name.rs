//! `name`: list this computer's messaging names, add or delete one. All of it is the
//! service's business (it registers the names on the network and owns the table), so without
//! the service this says so (2284) and exits 3.

use messenger_core::names::parse_messaging_name;
use messenger_ipc::{NameInfo, Reply, Request};

use crate::cli::NameArgs;
use crate::context::Context;
use crate::output::{self, Exit};

/// Runs `name`.
pub fn run(ctx: &Context, args: NameArgs) -> Exit {
    let request = match &args.name {
        None => Request::NameList,
        Some(name) => {
            // Refuse what cannot be a name before bothering the service: the same checks and
            // error numbers it applies (87 for too long, 123 for bad characters).
            if let Err(e) = parse_messaging_name(name) {
                output::net_error_with_detail(e.nerr(), Some(&format!("{name}: {e}.")));
                return Exit::Usage;
            }
            if args.delete {
                Request::NameDelete { name: name.clone() }
            } else {
                Request::NameAdd { name: name.clone() }
            }
        }
    };
    let mut client = match ctx.connect() {
        Ok(c) => c,
        Err(e) if e.not_running() => {
            output::net_error(messenger_core::nerr::NERR_MSG_NOT_STARTED);
            return Exit::NotRunning;
        }
        Err(e) => {
            output::error(&e.to_string());
            return Exit::Failed;
        }
    };
    match client.call(&request) {
        Ok(Reply::Names { names }) => {
            print_names(&names);
            output::completed();
            Exit::Ok
        }
        Ok(Reply::Done) => {
            output::completed();
            Exit::Ok
        }
        other => output::failed_reply(other),
    }
}

/// The listing: `NET NAME`'s header and rule, one name per line with its kind and owner, and
/// the state when the name is not simply registered.
fn print_names(names: &[NameInfo]) {
    println!("{:<17}{:<10}Owner", "Name", "Kind");
    println!("{}", "-".repeat(79));
    for n in names {
        let mut line = format!(
            "{:<17}{:<10}{}",
            output::safe(&n.name),
            output::safe(&n.kind),
            output::safe(n.owner.as_deref().unwrap_or(""))
        );
        if n.state != "registered" {
            line.push_str(&format!(" ({})", output::safe(&n.state)));
        }
        println!("{}", line.trim_end());
    }
}
