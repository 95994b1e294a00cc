//! `deliver`: hands a message that Samba's smbd received to the Messenger service's inbox.
//! It is meant to be smbd's `message command`, on a host where nmbd and smbd own the NetBIOS
//! ports and the service runs with `netbios = false`:
//!
//! ```text
//! message command = /usr/bin/messenger deliver --file=%s --from=%f --to=%L --machine=%m --address=%I
//! ```
//!
//! smbd writes the text to a temporary file (converted from the DOS code page to UTF-8, CR LF
//! folded to LF) and waits for the command, and the sending PC waits for smbd; so this returns
//! as soon as the service has the message on disk. (No `&` at the end, as Samba's examples
//! have: smbd passes it to the command as an argument.) The file is removed once the service has
//! answered (stored or refused); when the service cannot be reached it is left in place, so
//! that the message can still be recovered, and the exit status says so.

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use messenger_ipc::{Delivery, Reply, Request};

use crate::cli::DeliverArgs;
use crate::context::Context;
use crate::output::{self, Exit};

/// Longest text file read. smbd puts no bound on a multi-block message; the service takes at
/// most `max_message_len` bytes of OEM text (1600 by default), which is at most four times as
/// many bytes of UTF-8. Anything far beyond is not a message to read into memory.
pub const MAX_DELIVER_FILE_LEN: u64 = 64 * 1024;

/// Runs `deliver`.
pub fn run(ctx: &Context, args: DeliverArgs) -> Exit {
    let address: IpAddr = match args.address.parse() {
        Ok(a) => a,
        Err(_) => {
            output::usage_error(&format!(
                "--address {:?} is not an IP address (give smbd's %I)",
                args.address
            ));
            return Exit::Usage;
        }
    };
    let text = match read_text(&args.file) {
        Ok(Some(t)) => t,
        Ok(None) => {
            // No message smbd takes from a real sender is this long: it is a flood, and left
            // in place it would only fill smbd's temporary directory.
            output::error(&format!(
                "{} is longer than {MAX_DELIVER_FILE_LEN} bytes, not a message; removed",
                args.file.display()
            ));
            let _ = std::fs::remove_file(&args.file);
            return Exit::Failed;
        }
        Err(e) => {
            output::error(&format!("cannot read {}: {e}", args.file.display()));
            return Exit::Failed;
        }
    };
    let delivery = Delivery {
        from: args.from,
        to: args.to.filter(|t| !t.is_empty()),
        machine: args.machine,
        address,
        text,
    };
    let mut client = match ctx.connect() {
        Ok(c) => c,
        Err(e) if e.not_running() => {
            output::error(&format!(
                "the Messenger service is not running; the message stays in {}",
                args.file.display()
            ));
            return Exit::NotRunning;
        }
        Err(e) => {
            output::error(&e.to_string());
            return Exit::Failed;
        }
    };
    let reply = client.call(&Request::Deliver(delivery));
    if matches!(&reply, Ok(Reply::Delivered { .. }) | Ok(Reply::Error(_))) {
        if let Err(e) = std::fs::remove_file(&args.file) {
            output::error(&format!("cannot remove {}: {e}", args.file.display()));
        }
    }
    match reply {
        Ok(Reply::Delivered { .. }) => Exit::Ok,
        other => output::failed_reply(other),
    }
}

/// The text of `path` as UTF-8, or `None` when it is longer than [`MAX_DELIVER_FILE_LEN`]
/// bytes. smbd wrote it in the UNIX character set; anything that is not UTF-8 is replaced,
/// never refused, so that no message is lost to its encoding.
fn read_text(path: &Path) -> std::io::Result<Option<String>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_DELIVER_FILE_LEN + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DELIVER_FILE_LEN {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}
