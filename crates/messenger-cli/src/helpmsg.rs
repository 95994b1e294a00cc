//! `helpmsg N`: the text of a NET error number, as `NET HELPMSG` prints it (a blank line, the
//! text, a blank line).

use messenger_core::nerr;

use crate::output::{self, Exit};

/// Runs `helpmsg`.
pub fn run(number: &str) -> Exit {
    let Ok(code) = number.trim().parse::<u32>() else {
        output::usage_error(&format!(
            "{number} is not a valid network message number (try, for example, 2273)"
        ));
        return Exit::Usage;
    };
    match nerr::text(code) {
        Some(text) => {
            println!("\n{text}\n");
            Exit::Ok
        }
        None => {
            eprintln!("{code} is not a valid network message number.");
            Exit::Failed
        }
    }
}
