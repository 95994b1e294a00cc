//! A sender's acknowledgement latency while users list a large inbox: one sender sends a
//! message at a time (each on a connection of its own, timed from `connect` to the final SMB
//! response, which messengerd sends only after the durable commit), first with nothing else
//! going on, then while `--listers` copies of a listing command run again and again. If
//! listings shared the inbox writer with commits, the second figure would grow with the
//! listings' length; the goal is that it stays within a few milliseconds of the first.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use netbios::smb::{OutgoingMessage, SenderOptions};
use netbios::{NetbiosName, QualifiedName};

use crate::record::Record;
use crate::stats::Latencies;
use crate::RecordArgs;

/// Longest a single message may take before it counts as failed.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// `ack` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Session service address (`10.99.0.1:139`).
    #[arg(long)]
    target: SocketAddr,
    /// Called name (without suffix; `<03>` is added).
    #[arg(long, default_value = "BENCHHOST")]
    called: String,
    /// Seconds measured in each phase (idle, then listing).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Pause between two messages, milliseconds: the sender measures latency, not throughput.
    #[arg(long, default_value_t = 10)]
    interval_ms: u64,
    /// Listing commands running at once in the second phase.
    #[arg(long, default_value_t = 8)]
    listers: usize,
    /// Run the listing commands at this nice level (`nice -n`), to tell CPU contention from
    /// waiting inside the service.
    #[arg(long)]
    lister_nice: Option<i32>,
    #[command(flatten)]
    record: RecordArgs,
    /// The listing command and its arguments (its output is discarded; it must exit 0).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Runs both phases and records, per phase (`--label` + `idle` / `listing`), `p50_ms`,
/// `p99_ms`, `max_ms`, `messages`, `errors`; for the listings `listings`, `failed` and
/// `listing_p50_s`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let called =
        NetbiosName::new_uppercase(args.called.as_bytes(), netbios::name::SUFFIX_MESSENGER)
            .context("called name")?;
    let calling = NetbiosName::new_uppercase(b"ACKSENDER", netbios::name::SUFFIX_WORKSTATION)
        .context("calling name")?;
    let message = OutgoingMessage {
        calling: QualifiedName::new(calling),
        called: QualifiedName::new(called),
        from: b"BENCH".to_vec(),
        to: called.name_bytes().to_vec(),
        text: b"Acknowledgement latency test from messenger-bench.".to_vec(),
    };
    let options = SenderOptions {
        prefer_single_block: true,
        response_timeout: MESSAGE_TIMEOUT,
        ..SenderOptions::default()
    };
    let phase = Duration::from_secs_f64(args.duration);
    let interval = Duration::from_millis(args.interval_ms);
    let send_for = |how_long: Duration| -> anyhow::Result<(Latencies, u64)> {
        runtime.block_on(async {
            let end = Instant::now() + how_long;
            let mut lat = Latencies::default();
            let mut errors = 0;
            while Instant::now() < end {
                let began = Instant::now();
                let sent = tokio::time::timeout(
                    MESSAGE_TIMEOUT,
                    crate::receive::send_one(args.target, &message, options),
                )
                .await;
                match sent {
                    Ok(Ok(())) => lat.push(began.elapsed()),
                    Ok(Err(e)) => {
                        errors += 1;
                        eprintln!("  send failed: {e:#}");
                    }
                    Err(_) => errors += 1,
                }
                tokio::time::sleep(interval).await;
            }
            Ok((lat, errors))
        })
    };

    // The service registers its name a moment after it starts answering: send until it
    // takes a message before measuring anything.
    let ready_by = Instant::now() + MESSAGE_TIMEOUT;
    while runtime
        .block_on(crate::receive::send_one(args.target, &message, options))
        .is_err()
    {
        if Instant::now() > ready_by {
            bail!("the service took no message within {MESSAGE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (idle, idle_errors) = send_for(phase)?;
    report(&args.record, "idle", idle, idle_errors, None)?;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let listings = Arc::new(Mutex::new((Latencies::default(), 0u64)));
    let mut threads = Vec::new();
    for _ in 0..args.listers.max(1) {
        let (stop, started, listings) = (stop.clone(), started.clone(), listings.clone());
        let command: Vec<String> = match args.lister_nice {
            Some(n) => ["nice".to_owned(), "-n".to_owned(), n.to_string()]
                .into_iter()
                .chain(args.command.iter().cloned())
                .collect(),
            None => args.command.clone(),
        };
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let mut first = true;
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let mut child = Command::new(&command[0])
                    .args(&command[1..])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| format!("starting {}", command[0]))?;
                if first {
                    started.fetch_add(1, Ordering::Relaxed);
                    first = false;
                }
                let status = child.wait()?;
                let mut l = listings.lock().unwrap_or_else(|e| e.into_inner());
                if status.success() {
                    l.0.push(began.elapsed());
                } else {
                    l.1 += 1;
                }
            }
            Ok(())
        }));
    }
    while started.load(Ordering::Relaxed) < args.listers.max(1) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let loaded = send_for(phase);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a listing thread panicked"))??;
    }
    let (loaded, loaded_errors) = loaded?;
    let (listed, failed) = {
        let l = listings.lock().unwrap_or_else(|e| e.into_inner());
        (l.0.clone(), l.1)
    };
    report(
        &args.record,
        "listing",
        loaded,
        loaded_errors,
        Some((listed, failed, args.listers.max(1))),
    )?;
    if failed > 0 {
        bail!("{failed} listings failed");
    }
    Ok(())
}

fn report(
    args: &RecordArgs,
    phase: &str,
    mut lat: Latencies,
    errors: u64,
    listings: Option<(Latencies, u64, usize)>,
) -> anyhow::Result<()> {
    let (p50, p99, max) = (
        lat.percentile_ms(50.0),
        lat.percentile_ms(99.0),
        lat.percentile_ms(100.0),
    );
    println!(
        "ack {} {phase}: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms ({} messages, {errors} errors)",
        args.subject,
        lat.len()
    );
    let mut label_args = args.clone();
    label_args.label = if args.label.is_empty() {
        phase.to_owned()
    } else {
        format!("{} {phase}", args.label)
    };
    let mut record = Record::new("ack", &label_args);
    record
        .set("p50_ms", p50)
        .set("p99_ms", p99)
        .set("max_ms", max)
        .set("messages", lat.len() as f64)
        .set("errors", errors as f64);
    if let Some((mut listed, failed, listers)) = listings {
        let p50_s = listed.percentile_ms(50.0) / 1000.0;
        println!(
            "  listings: {} completed (p50 {p50_s:.2} s), {failed} failed",
            listed.len()
        );
        record
            .set("listers", listers as f64)
            .set("listings", listed.len() as f64)
            .set("failed", failed as f64)
            .set("listing_p50_s", p50_s);
    }
    record.save(args)
}
