//! Timing commands as a user runs them: `messenger send` and `smbclient -M` from process
//! start to exit, and a broadcast from `messenger send *` until the last inbox holds it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use messenger_core::message::InboxQuery;
use messenger_store::Store;

use crate::record::Record;
use crate::stats::Latencies;
use crate::RecordArgs;

/// How often the inboxes are looked at while waiting for a broadcast.
const INBOX_POLL_INTERVAL: Duration = Duration::from_micros(500);
/// Longest wait for a broadcast to reach every inbox.
const FANOUT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between broadcast runs, so that one run's stragglers do not overlap the next.
const FANOUT_PAUSE: Duration = Duration::from_millis(200);
/// In command arguments, replaced by a marker unique to each run.
const MARKER_PLACEHOLDER: &str = "{marker}";

/// `time` options.
#[derive(Debug, clap::Args)]
pub struct TimeArgs {
    /// Measured runs.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Unmeasured runs first (page cache, name caches).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Text written to the command's standard input (`smbclient -M` reads the message there).
    #[arg(long)]
    stdin: Option<String>,
    /// Count a run as failed when its output contains this (for `smbclient`, which exits 0
    /// when delivery failed).
    #[arg(long)]
    fail_pattern: Option<String>,
    #[command(flatten)]
    record: RecordArgs,
    /// The command and its arguments; `{marker}` becomes a per-run marker.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Runs a command `runs` times and records `p50_ms`, `p99_ms`, `mean_ms`.
pub fn time(args: TimeArgs) -> anyhow::Result<()> {
    let mut latencies = Latencies::default();
    let mut total = Duration::ZERO;
    for run in 0..args.warmup + args.runs {
        let marker = format!("bench-{}-{run}", std::process::id());
        let started = Instant::now();
        run_once(&args, &marker)?;
        let took = started.elapsed();
        if run >= args.warmup {
            latencies.push(took);
            total += took;
        }
    }
    let p50 = latencies.percentile_ms(50.0);
    let p99 = latencies.percentile_ms(99.0);
    let mean = total.as_secs_f64() * 1000.0 / args.runs.max(1) as f64;
    println!(
        "time {} {}: p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms over {} runs",
        args.record.subject, args.record.label, p50, p99, mean, args.runs
    );
    let mut record = Record::new("time", &args.record);
    record
        .set("p50_ms", p50)
        .set("p99_ms", p99)
        .set("mean_ms", mean)
        .set("runs", args.runs as f64);
    record.save(&args.record)
}

fn substitute(command: &[String], marker: &str) -> Vec<String> {
    command
        .iter()
        .map(|a| a.replace(MARKER_PLACEHOLDER, marker))
        .collect()
}

fn run_once(args: &TimeArgs, marker: &str) -> anyhow::Result<()> {
    let argv = substitute(&args.command, marker);
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(if args.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", argv[0]))?;
    if let (Some(text), Some(mut stdin)) = (&args.stdin, child.stdin.take()) {
        stdin.write_all(text.replace(MARKER_PLACEHOLDER, marker).as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let mut all = String::from_utf8_lossy(&output.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("{} failed ({}): {}", argv[0], output.status, all.trim());
    }
    if let Some(pattern) = &args.fail_pattern {
        if all.contains(pattern.as_str()) {
            bail!("{} reported a failure: {}", argv[0], all.trim());
        }
    }
    Ok(())
}

/// `fanout` options.
#[derive(Debug, clap::Args)]
pub struct FanoutArgs {
    /// An inbox database that must receive the message (repeat for each host).
    #[arg(long = "inbox", required = true)]
    inboxes: Vec<PathBuf>,
    /// Measured broadcasts.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[command(flatten)]
    record: RecordArgs,
    /// The sending command; `{marker}` becomes a per-run marker that must appear in the text.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Broadcasts `runs` times and records `p50_ms`, `max_ms` (until the last inbox has it) and
/// `exit_ms` (until the sending command exited).
pub fn fanout(args: FanoutArgs) -> anyhow::Result<()> {
    let stores = args
        .inboxes
        .iter()
        .map(|p| Store::open_read_only(p).with_context(|| format!("opening {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut last_ids = stores
        .iter()
        .map(last_id)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut times = Latencies::default();
    let mut exits = Latencies::default();
    for run in 0..args.runs {
        let marker = format!("fanout-{}-{run}", std::process::id());
        let argv = substitute(&args.command, &marker);
        let started = Instant::now();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", argv[0]))?;
        let mut pending: Vec<usize> = (0..stores.len()).collect();
        let mut exited = None;
        while !pending.is_empty() {
            if started.elapsed() > FANOUT_TIMEOUT {
                let _ = child.kill();
                bail!(
                    "after {FANOUT_TIMEOUT:?} {} of {} inboxes still lack the message",
                    pending.len(),
                    stores.len()
                );
            }
            if exited.is_none() {
                if let Some(status) = child.try_wait()? {
                    if !status.success() {
                        bail!("{} failed ({status})", argv[0]);
                    }
                    exited = Some(started.elapsed());
                }
            }
            let mut still = Vec::with_capacity(pending.len());
            for i in pending {
                if !has_marker(&stores[i], &mut last_ids[i], &marker)? {
                    still.push(i);
                }
            }
            pending = still;
            if !pending.is_empty() {
                std::thread::sleep(INBOX_POLL_INTERVAL);
            }
        }
        times.push(started.elapsed());
        let status = child.wait()?;
        if !status.success() {
            bail!("{} failed ({status})", argv[0]);
        }
        exits.push(exited.unwrap_or_else(|| started.elapsed()));
        std::thread::sleep(FANOUT_PAUSE);
    }
    let p50 = times.percentile_ms(50.0);
    let max = times.percentile_ms(100.0);
    let exit = exits.percentile_ms(50.0);
    println!(
        "fanout {} {}: last inbox after p50 {:.1} ms (max {:.1} ms); sender exited after p50 {:.1} ms",
        args.record.subject, args.record.label, p50, max, exit
    );
    let mut record = Record::new("fanout", &args.record);
    record
        .set("hosts", stores.len() as f64)
        .set("p50_ms", p50)
        .set("max_ms", max)
        .set("exit_ms", exit);
    record.save(&args.record)
}

fn last_id(store: &Store) -> anyhow::Result<i64> {
    let all = store.list(&InboxQuery::default())?;
    Ok(all.last().map_or(0, |m| m.id))
}

/// Whether a message newer than `after` holds `marker`; moves `after` past what was read.
fn has_marker(store: &Store, after: &mut i64, marker: &str) -> anyhow::Result<bool> {
    let query = InboxQuery {
        after_id: Some(*after),
        ..InboxQuery::default()
    };
    let mut found = false;
    for m in store.list(&query)? {
        *after = (*after).max(m.id);
        found |= m.message.text.contains(marker);
    }
    Ok(found)
}
