//! The per-message external command (`message_command`), Samba style.
//!
//! Substitutions: `%s` a file holding the text, `%f` sender, `%t` recipient (the real one:
//! Samba 4.12+ expands `%t` to the time by mistake), `%m` calling machine, `%I` source address,
//! `%%` a percent sign. Every substituted value is shell-quoted, because all of them except
//! `%s` come from the network and would otherwise be a remote shell injection. The command
//! runs in the background: the sender's acknowledgement never waits for it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What the command is told about one message.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// Sender name.
    pub from: String,
    /// Recipient name.
    pub to: String,
    /// Calling NetBIOS name of the sender's machine, when the session request gave one.
    pub machine: String,
    /// Source IP address.
    pub address: String,
    /// The text.
    pub text: String,
}

/// Quotes `value` for `/bin/sh` so that it is one word whatever it contains.
pub fn shell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Expands the substitutions of `template`.
pub fn expand(template: &str, ctx: &CommandContext, text_file: &Path) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('s') => out.push_str(&shell_quote(&text_file.display().to_string())),
            Some('f') => out.push_str(&shell_quote(&ctx.from)),
            Some('t') => out.push_str(&shell_quote(&ctx.to)),
            Some('m') => out.push_str(&shell_quote(&ctx.machine)),
            Some('I') => out.push_str(&shell_quote(&ctx.address)),
            Some('%') => out.push('%'),
            _ => {
                out.push('%');
                continue;
            }
        }
        chars.next();
    }
    out
}

fn unique_file(dir: &Path) -> std::io::Result<PathBuf> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("msg.{}.{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes `ctx.text` to the spool file and runs the command; errors are logged, never
/// returned to the sender.
pub fn run_for_message(template: &str, ctx: CommandContext, spool_dir: PathBuf) {
    let template = template.to_owned();
    std::thread::spawn(move || {
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&spool_dir)?;
            let file = unique_file(&spool_dir)?;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&file)?
                .write_all(ctx.text.as_bytes())?;
            let command = expand(&template, &ctx, &file);
            let status = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&command)
                .stdin(std::process::Stdio::null())
                .status()?;
            if !status.success() {
                tracing::warn!(%status, "message_command failed");
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "message_command could not run");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CommandContext {
        CommandContext {
            from: "ALICE'; rm -rf / #".into(),
            to: "BOB".into(),
            machine: "ALICEPC".into(),
            address: "10.0.0.1".into(),
            text: "hello".into(),
        }
    }

    #[test]
    fn substitutions_are_quoted() {
        let out = expand("echo %f %t %m %I %s 100%% %x", &ctx(), Path::new("/tmp/m"));
        assert_eq!(
            out,
            "echo 'ALICE'\\''; rm -rf / #' 'BOB' 'ALICEPC' '10.0.0.1' '/tmp/m' 100% %x"
        );
    }

    #[test]
    fn command_gets_the_text_and_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let template = format!(
            "cat %s > {}.tmp; echo %f >> {}.tmp; mv {}.tmp {}; rm %s",
            out.display(),
            out.display(),
            out.display(),
            out.display()
        );
        run_for_message(&template, ctx(), dir.path().join("spool"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !out.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(got, "helloALICE'; rm -rf / #\n");
    }
}
