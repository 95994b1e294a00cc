//! The per-message external command (`message_command`), Samba style.
//!
//! Substitutions: `%s` a file holding the text, `%f` sender, `%t` recipient (the real one:
//! Samba 4.12+ expands `%t` to the time by mistake), `%m` calling machine, `%I` source address,
//! `%%` a percent sign.
//!
//! Every value but `%s` comes from the network, so no value is ever pasted into the command
//! text: the values travel in environment variables (`MESSENGER_FILE`, `MESSENGER_FROM`,
//! `MESSENGER_TO`, `MESSENGER_MACHINE`, `MESSENGER_ADDRESS`) and each placeholder becomes a
//! reference to its variable, written to fit the template's quoting where it stands: `"$V"`
//! outside quotes, `$V` inside double quotes, and `'"$V"'` inside single quotes (the template's
//! quote is closed around the reference and reopened). The shell expands a parameter without
//! parsing its value again, so whatever a sender puts in a name (quotes, `$(...)`, backticks,
//! `;`, line breaks) stays text, whatever quoting the template uses. What no rewriting can
//! prevent: a template that hands a value to another interpreter (`sh -c '... %f'`, `eval`)
//! lets that interpreter parse it. A backslash before `%` keeps the `%` literal, as the shell
//! would. Environment variables are used rather than positional parameters so that a shell
//! function or `set --` in the template cannot change what a placeholder means.
//!
//! The commands run in the background on the service's task tracker: the sender's
//! acknowledgement never waits for them. At most [`MAX_RUNNING_COMMANDS`] run at once and
//! [`MAX_WAITING_COMMANDS`] more wait; beyond that a message's command is skipped (the message
//! is in the inbox all the same). A command still running after [`COMMAND_TIMEOUT`] is killed
//! with its whole process group. A command that puts work in the background (`... &`, as
//! Samba's examples do) is done, for this count, once its shell exits.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::{Arrival, Audience, DeliverySink};

/// Commands running at once. A notification hook, not a work queue: a handful keeps a flood
/// of messages from becoming a flood of processes on a two-core host.
pub const MAX_RUNNING_COMMANDS: usize = 4;
/// Commands waiting for a running slot; more messages than this in the queue skip their
/// command. Sixteen waiting per running command covers the default per-source burst (20) of
/// a few senders at once.
pub const MAX_WAITING_COMMANDS: usize = 64;
/// Longest a command may run before it is killed. Samba sets no limit; a popup that waits for
/// a click (`xmessage`, Samba's own example) should be started in the background with `&`.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The shell that runs the template, as Samba's `message command` does.
const SHELL: &str = "/bin/sh";
/// Mode of the spool directory and files: the text is the recipients' business only.
const SPOOL_DIR_MODE: u32 = 0o700;
/// Mode of a spool file.
const SPOOL_FILE_MODE: u32 = 0o600;

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

/// The environment variable of each placeholder.
const PLACEHOLDERS: [(char, &str); 5] = [
    ('s', "MESSENGER_FILE"),
    ('f', "MESSENGER_FROM"),
    ('t', "MESSENGER_TO"),
    ('m', "MESSENGER_MACHINE"),
    ('I', "MESSENGER_ADDRESS"),
];

fn variable(placeholder: char) -> Option<&'static str> {
    PLACEHOLDERS
        .iter()
        .find(|(c, _)| *c == placeholder)
        .map(|(_, v)| *v)
}

/// Where the shell stands at a point of the template.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    None,
    Single,
    Double,
}

/// The shell script that runs `template`: each placeholder replaced by a reference to its
/// environment variable that suits the quoting around it, `%%` by `%`; everything else as
/// written.
pub fn script(template: &str) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut quoting = Quoting::None;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoting, c) {
            (Quoting::None, '\'') => quoting = Quoting::Single,
            (Quoting::Single, '\'') => quoting = Quoting::None,
            (Quoting::None, '"') => quoting = Quoting::Double,
            (Quoting::Double, '"') => quoting = Quoting::None,
            (Quoting::None | Quoting::Double, '\\') => {
                // The escaped character is the shell's business, even a `%`.
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                }
                continue;
            }
            (_, '%') => {
                let next = chars.peek().copied();
                if next == Some('%') {
                    chars.next();
                    out.push('%');
                    continue;
                }
                if let Some(var) = next.and_then(variable) {
                    chars.next();
                    match quoting {
                        Quoting::None => out.push_str(&format!("\"${{{var}}}\"")),
                        Quoting::Double => out.push_str(&format!("${{{var}}}")),
                        Quoting::Single => out.push_str(&format!("'\"${{{var}}}\"'")),
                    }
                    continue;
                }
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Whether `template` uses the text file (`%s`), so that one must be written.
fn uses_text_file(template: &str) -> bool {
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('s') => return true,
                _ => continue,
            }
        }
    }
    false
}

/// An environment variable cannot hold a NUL byte; a sender's NUL becomes U+FFFD, so that it
/// cannot keep the command from running.
fn env_value(value: &str) -> String {
    value.replace('\0', "\u{FFFD}")
}

/// Why a command did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The spool file could not be written or the shell not started.
    #[error("message_command could not run: {0}")]
    Io(#[from] std::io::Error),
    /// It ran longer than [`COMMAND_TIMEOUT`] and was killed.
    #[error("message_command ran longer than {0:?} and was killed")]
    TimedOut(Duration),
}

/// Runs `message_command` for messages, within the bounds above.
pub struct CommandRunner {
    script: String,
    needs_text_file: bool,
    spool_dir: PathBuf,
    timeout: Duration,
    waiting: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

impl CommandRunner {
    /// A runner for `template`, writing text files into `spool_dir`.
    pub fn new(template: &str, spool_dir: PathBuf) -> Self {
        Self::with_timeout(template, spool_dir, COMMAND_TIMEOUT)
    }

    /// [`CommandRunner::new`] with another timeout (tests).
    pub fn with_timeout(template: &str, spool_dir: PathBuf, timeout: Duration) -> Self {
        Self {
            script: script(template),
            needs_text_file: uses_text_file(template),
            spool_dir,
            timeout,
            waiting: Arc::new(Semaphore::new(MAX_RUNNING_COMMANDS + MAX_WAITING_COMMANDS)),
            running: Arc::new(Semaphore::new(MAX_RUNNING_COMMANDS)),
        }
    }

    /// Commands running now.
    pub fn running(&self) -> usize {
        MAX_RUNNING_COMMANDS - self.running.available_permits()
    }

    /// Starts the command for one message on `tasks`; false (and a warning) when too many
    /// are already waiting.
    pub fn spawn(self: &Arc<Self>, tasks: &TaskTracker, ctx: CommandContext) -> bool {
        let Ok(admitted) = Arc::clone(&self.waiting).try_acquire_owned() else {
            tracing::warn!(
                waiting = MAX_WAITING_COMMANDS,
                "message_command skipped: too many commands waiting (the message is stored)"
            );
            return false;
        };
        let this = Arc::clone(self);
        tasks.spawn(async move {
            let _admitted = admitted;
            match this.run(ctx).await {
                Ok(status) if !status.success() => {
                    tracing::warn!(%status, "message_command failed")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "message_command"),
            }
        });
        true
    }

    /// Waits for a running slot, writes the text file (if the template uses it) and runs the
    /// command to its end or its timeout.
    pub async fn run(&self, ctx: CommandContext) -> Result<ExitStatus, CommandError> {
        let _running = self
            .running
            .acquire()
            .await
            .map_err(|_| std::io::Error::other("command runner closed"))?;
        let mut command = tokio::process::Command::new(SHELL);
        command
            .arg("-c")
            .arg(&self.script)
            .env("MESSENGER_FROM", env_value(&ctx.from))
            .env("MESSENGER_TO", env_value(&ctx.to))
            .env("MESSENGER_MACHINE", env_value(&ctx.machine))
            .env("MESSENGER_ADDRESS", env_value(&ctx.address))
            .env_remove("MESSENGER_FILE")
            .stdin(Stdio::null())
            // Its own process group, so that a timeout kills what it started too.
            .process_group(0)
            .kill_on_drop(true);
        if self.needs_text_file {
            let dir = self.spool_dir.clone();
            let text = ctx.text;
            let file = tokio::task::spawn_blocking(move || write_text_file(&dir, &text))
                .await
                .map_err(std::io::Error::other)??;
            command.env("MESSENGER_FILE", file);
        }
        let mut child = command.spawn()?;
        // Killed with its group if this task is dropped (the service stops) before it ends.
        let group = ProcessGroup(child.id());
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(status) => {
                std::mem::forget(group);
                Ok(status?)
            }
            Err(_) => {
                drop(group);
                let _ = child.wait().await;
                Err(CommandError::TimedOut(self.timeout))
            }
        }
    }
}

/// A running command's process group, killed when this is dropped.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Writes `text` to a new private file in `dir` and returns its path.
fn write_text_file(dir: &Path, text: &str) -> std::io::Result<PathBuf> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(SPOOL_DIR_MODE)
        .create(dir)?;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("msg.{}.{n}", std::process::id()));
        // create_new: never through a link or into a file someone else made.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(SPOOL_FILE_MODE)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(text.as_bytes())?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The message command as one of the service's delivery sinks: it runs for every stored
/// message, whoever is logged in, and shows nothing to anyone itself.
pub struct CommandSink {
    runner: Arc<CommandRunner>,
    tasks: TaskTracker,
}

impl CommandSink {
    /// Runs `runner`'s command on `tasks`.
    pub fn new(runner: Arc<CommandRunner>, tasks: TaskTracker) -> Self {
        Self { runner, tasks }
    }
}

impl DeliverySink for CommandSink {
    fn acts_without_sessions(&self) -> bool {
        true
    }

    fn deliver(&self, arrival: &Arrival, _audience: &Audience) -> Vec<String> {
        let message = &arrival.stored.message;
        self.runner.spawn(
            &self.tasks,
            CommandContext {
                from: message.from.clone(),
                to: message.to.clone(),
                machine: arrival.machine.clone(),
                address: message
                    .source
                    .map(|s| s.ip().to_string())
                    .unwrap_or_default(),
                text: message.text.clone(),
            },
        );
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(from: &str, machine: &str) -> CommandContext {
        CommandContext {
            from: from.into(),
            to: "BOB".into(),
            machine: machine.into(),
            address: "10.0.0.1".into(),
            text: "hello".into(),
        }
    }

    fn runner(template: &str, dir: &Path) -> CommandRunner {
        CommandRunner::new(template, dir.join("spool"))
    }

    #[test]
    fn placeholders_become_references_that_fit_their_quoting() {
        assert_eq!(
            script("echo %f '%t' \"%m\" 'on %I, %s' 100%% %x \\%f"),
            "echo \"${MESSENGER_FROM}\" ''\"${MESSENGER_TO}\"'' \"${MESSENGER_MACHINE}\" \
             'on '\"${MESSENGER_ADDRESS}\"', '\"${MESSENGER_FILE}\"'' 100% %x \\%f"
        );
        // A quote escaped outside quotes or inside double quotes opens nothing.
        assert_eq!(
            script("echo \\' %f \"\\\"%f\""),
            "echo \\' \"${MESSENGER_FROM}\" \"\\\"${MESSENGER_FROM}\""
        );
        assert!(uses_text_file("cat %s"));
        assert!(!uses_text_file("echo %%s %f"));
    }

    /// Values a sender chooses, each trying to break out of one kind of quoting and run
    /// `touch MARKER`.
    fn hostile_values(marker: &Path) -> Vec<String> {
        let m = marker.display();
        vec![
            format!("$(touch {m})"),
            format!("x'$(touch {m})'y"),
            format!("'; touch {m}; '"),
            format!("\"; touch {m}; \""),
            format!("`touch {m}`"),
            format!("a;touch {m}"),
            format!("a\ntouch {m}"),
            format!("'\"$(touch {m})\"'"),
            format!("\\'$(touch {m})"),
        ]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_value_from_the_network_is_ever_run_whatever_the_quoting() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let out = dir.path().join("out");
        let o = out.display();
        // (template, what it prints for from = V and machine = V)
        type Expected = fn(&str) -> String;
        let cases: Vec<(String, Expected)> = vec![
            (format!("printf '%%s' %f > {o}"), |v| v.to_owned()),
            (format!("printf '%%s' '%f' > {o}"), |v| v.to_owned()),
            (format!("printf '%%s' \"%f\" > {o}"), |v| v.to_owned()),
            (format!("printf '%%s' 'from %f on %m' > {o}"), |v| {
                format!("from {v} on {v}")
            }),
            (format!("printf '%%s' \"from %f on %m\" > {o}"), |v| {
                format!("from {v} on {v}")
            }),
            (format!("printf '%%s|' %f%m > {o}"), |v| format!("{v}{v}|")),
            (
                format!("f() {{ printf '%%s' %f; }}; set -- x; f > {o}"),
                |v| v.to_owned(),
            ),
        ];
        for (template, expected) in &cases {
            let runner = runner(template, dir.path());
            for value in hostile_values(&marker) {
                let status = runner.run(ctx(&value, &value)).await.unwrap();
                assert!(status.success(), "{template:?} with {value:?}: {status}");
                assert!(
                    !marker.exists(),
                    "{template:?} ran code from the value {value:?}"
                );
                assert_eq!(
                    std::fs::read_to_string(&out).unwrap(),
                    expected(&value),
                    "{template:?} with {value:?}"
                );
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn command_gets_the_text_and_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let template = format!(
            "{{ cat %s; echo %f; echo '%t'; echo \"%I\"; }} > {o}; rm %s",
            o = out.display()
        );
        let status = runner(&template, dir.path())
            .run(ctx("ALICE'; rm -rf / #", "PC"))
            .await
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "helloALICE'; rm -rf / #\nBOB\n10.0.0.1\n"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
            0
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nul_from_the_network_does_not_stop_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let template = format!("printf '%%s' %f > {}", out.display());
        let status = runner(&template, dir.path())
            .run(ctx("A\0B", ""))
            .await
            .unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "A\u{FFFD}B");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_command_past_its_timeout_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild");
        // The shell starts a sleeper of its own and waits for it: both must go.
        let template = format!(
            "sleep 600 & echo $! > {p}.tmp; mv {p}.tmp {p}; wait",
            p = pid_file.display()
        );
        let runner = CommandRunner::with_timeout(
            &template,
            dir.path().join("spool"),
            Duration::from_secs(5),
        );
        let result = runner.run(ctx("A", "B")).await;
        assert!(
            matches!(result, Err(CommandError::TimedOut(_))),
            "{result:?}"
        );
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("the command started its child before its timeout")
            .trim()
            .parse()
            .unwrap();
        // Killed: gone, or a zombie until init reaps it. SIGKILL is delivered asynchronously,
        // so a process being killed on a busy machine may still show as running for a moment.
        let state = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .to_owned()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !(state().is_empty() || state().starts_with('Z'))
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let state = state();
        assert!(
            state.is_empty() || state.starts_with('Z'),
            "the command's own child survived: {state}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_beyond_the_queue_are_skipped_not_queued() {
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("gate");
        // Each command waits until the test opens the gate (or its timeout ends it).
        let template = format!(
            "while [ ! -e {g} ]; do sleep 0.05; done",
            g = gate.display()
        );
        let runner = Arc::new(runner(&template, dir.path()));
        let tasks = TaskTracker::new();
        let admitted = (0..MAX_RUNNING_COMMANDS + MAX_WAITING_COMMANDS)
            .filter(|_| runner.spawn(&tasks, ctx("A", "B")))
            .count();
        assert_eq!(admitted, MAX_RUNNING_COMMANDS + MAX_WAITING_COMMANDS);
        assert!(!runner.spawn(&tasks, ctx("A", "B")), "one more was queued");
        // Never more than the limit at once.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while runner.running() < MAX_RUNNING_COMMANDS {
            assert!(
                std::time::Instant::now() < deadline,
                "commands did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(runner.running(), MAX_RUNNING_COMMANDS);
        std::fs::write(&gate, b"").unwrap();
        tasks.close();
        tasks.wait().await;
        assert!(runner.spawn(&tasks, ctx("A", "B")), "room again");
        tasks.wait().await;
    }
}
