//! The hand-written man page `packaging/messengerd.8` documents every option the program
//! takes: its options are read from `messengerd --help`, so a new option without a line in
//! the page fails here.

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_messengerd");
const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../packaging/messengerd.8");

/// The long options (`--name`) in `text`.
fn long_options(text: &str) -> Vec<String> {
    let mut options: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_owned)
        .collect();
    options.sort();
    options.dedup();
    options
}

#[test]
fn the_man_page_documents_every_option() {
    let out = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let options = long_options(&help);
    assert!(
        options.iter().any(|o| o == "--check-config"),
        "options read from --help: {options:?}"
    );
    let page = std::fs::read_to_string(PAGE).unwrap();
    // roff writes a hyphen as `\-`.
    let page = page.replace("\\-", "-");
    for option in &options {
        assert!(
            page.contains(&format!(".B {option}"))
                || page.contains(&format!(".BI {option} "))
                || page.contains(&format!(".BR {option} "))
                || page.contains(&format!(", \" {option}")),
            "{option} is not documented in packaging/messengerd.8"
        );
    }
}
