//! Durable delivery through a real 3-node JetStream cluster (replicas 3) on loopback.
//!
//! `cargo bench -p messenger-nats --bench delivery [-- --messages N --latency-messages M
//! --senders C --queued Q]`
//!
//! One host sends to a name another host holds, with [`NatsTransport::send`] (a directory
//! look-up, then a publish acknowledged by a quorum); the receiving host's durable consumer
//! commits each message to a messenger-store inbox (SQLite, WAL, `synchronous = FULL`)
//! before it acknowledges it. Measured:
//!
//! - latency: one message at a time, from the call to `send` until the receiving inbox's
//!   commit has returned (and, separately, until `send` returned: the sender's
//!   acknowledgement);
//! - throughput: `--senders` concurrent senders, from the first send until the last message
//!   is committed in the receiving inbox, with the CPU time of the three servers and of this
//!   process (sender, consumer and inbox together) over that interval;
//! - a user's login: `--queued` messages sent to a user logged in nowhere wait in their
//!   queue; then the user's consumer starts (their login) and the time until every message
//!   is committed in the inbox is taken.
//!
//! Needs nats-server (Debian package `nats-server`). Prints Markdown table rows.
#![forbid(unsafe_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use messenger_core::transport::{Outgoing, Recipient, Transport};
use messenger_nats::consumer::{self, Inbox, Received, StoreInbox};
use messenger_nats::subject::EncodedName;
use messenger_nats::NatsTransport;
use messenger_store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Messages sent before measuring, so that the stream, the consumer and the connections are
/// warm.
const WARM_UP: usize = 200;
/// Default number of messages of the throughput run.
const DEFAULT_MESSAGES: usize = 5_000;
/// Default number of messages timed one at a time.
const DEFAULT_LATENCY_MESSAGES: usize = 1_000;
/// Default number of concurrent senders of the throughput run.
const DEFAULT_SENDERS: usize = 32;
/// Default number of messages queued for a user logged in nowhere, delivered at their login.
const DEFAULT_QUEUED: usize = 10_000;
/// How long the bench waits for every message to arrive before it gives up.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(120);

struct Args {
    messages: usize,
    latency_messages: usize,
    senders: usize,
    queued: usize,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        messages: DEFAULT_MESSAGES,
        latency_messages: DEFAULT_LATENCY_MESSAGES,
        senders: DEFAULT_SENDERS,
        queued: DEFAULT_QUEUED,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v: &usize| v > 0)
                .ok_or_else(|| format!("{name} takes a positive number"))
        };
        match arg.as_str() {
            // Passed by `cargo bench`.
            "--bench" => {}
            "--messages" => args.messages = value("--messages")?,
            "--latency-messages" => args.latency_messages = value("--latency-messages")?,
            "--senders" => args.senders = value("--senders")?,
            "--queued" => args.queued = value("--queued")?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// The receiving inbox, recording when each message's commit returned.
#[derive(Clone)]
struct TimedInbox {
    inner: StoreInbox,
    arrived: Arc<Mutex<HashMap<String, Instant>>>,
    notify: Arc<Notify>,
}

impl Inbox for TimedInbox {
    async fn commit(&self, received: Received) -> Result<bool, String> {
        let stored = self.commit_batch(vec![received]).await?;
        Ok(stored.first().copied().unwrap_or(false))
    }

    async fn commit_batch(&self, batch: Vec<Received>) -> Result<Vec<bool>, String> {
        let texts: Vec<String> = batch.iter().map(|r| r.message.text.clone()).collect();
        let stored = self.inner.commit_batch(batch).await?;
        let now = Instant::now();
        {
            let mut arrived = self.arrived.lock().unwrap_or_else(|e| e.into_inner());
            for (text, _) in texts.into_iter().zip(&stored).filter(|(_, &s)| s) {
                arrived.insert(text, now);
            }
        }
        self.notify.notify_waiters();
        Ok(stored)
    }
}

impl TimedInbox {
    fn arrival(&self, text: &str) -> Option<Instant> {
        self.arrived
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(text)
            .copied()
    }

    fn count(&self) -> usize {
        self.arrived.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits until `done` holds, or fails after [`ARRIVAL_TIMEOUT`].
    async fn wait(&self, what: &str, done: impl Fn(&Self) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + ARRIVAL_TIMEOUT;
        loop {
            let notified = self.notify.notified();
            if done(self) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("timed out waiting for {what}"));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
        }
    }
}

fn outgoing(text: String) -> Outgoing {
    outgoing_to("BOB", text)
}

fn outgoing_to(to: &str, text: String) -> Outgoing {
    Outgoing {
        from: "ALICE".into(),
        to: Recipient::Name(to.into()),
        text,
        allow_long: false,
    }
}

/// Sends `count` messages to `to` from `senders` concurrent tasks, texts `{prefix} {i}`.
async fn send_concurrently(
    transport: &NatsTransport,
    to: &'static str,
    prefix: &'static str,
    count: usize,
    senders: usize,
) -> Result<(), String> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (transport, next) = (transport.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return Ok::<(), String>(());
                }
                transport
                    .send(&outgoing_to(to, format!("{prefix} {i}")))
                    .await
                    .map_err(|e| e.message)?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// User plus system CPU time of process `pid`, from /proc.
fn cpu_time(pid: &str, ticks_per_second: f64) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("unexpected /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, that is 12 and 13 after the command name.
    let ticks: u64 = fields
        .get(11..13)
        .ok_or("short /proc stat")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(Duration::from_secs_f64(ticks as f64 / ticks_per_second))
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

async fn run(args: Args) -> Result<(), String> {
    let cluster = common::Cluster::start().ok_or("nats-server is not installed")?;
    let (a, dir_a) = common::host(cluster.settings(), "HOSTA").await;
    let (b, dir_b) = common::host(cluster.settings(), "HOSTB").await;
    dir_b.claim("BOB").await.map_err(|e| e.to_string())?;
    let transport = NatsTransport::new(a, dir_a);

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = Store::open(dir.path().join("inbox.db")).map_err(|e| e.to_string())?;
    let inbox = TimedInbox {
        inner: StoreInbox::new(store),
        arrived: Arc::default(),
        notify: Arc::default(),
    };
    let stop = CancellationToken::new();
    let receiver = {
        let (inbox, stop) = (inbox.clone(), stop.clone());
        tokio::spawn(async move {
            let host = EncodedName::new("HOSTB").expect("a valid name");
            consumer::run(&b, &host, &inbox, stop.cancelled_owned()).await;
        })
    };

    for i in 0..WARM_UP {
        transport
            .send(&outgoing(format!("warm-up {i}")))
            .await
            .map_err(|e| e.message)?;
    }
    inbox
        .wait("the warm-up", |inbox| inbox.count() >= WARM_UP)
        .await?;

    // Latency: one message at a time.
    let mut delivered = Vec::with_capacity(args.latency_messages);
    let mut acknowledged = Vec::with_capacity(args.latency_messages);
    for i in 0..args.latency_messages {
        let text = format!("latency {i}");
        let started = Instant::now();
        transport
            .send(&outgoing(text.clone()))
            .await
            .map_err(|e| e.message)?;
        acknowledged.push(started.elapsed());
        inbox
            .wait("a timed message", |inbox| inbox.arrival(&text).is_some())
            .await?;
        let arrived = inbox.arrival(&text).expect("waited for");
        delivered.push(arrived.duration_since(started));
    }
    delivered.sort();
    acknowledged.sort();

    // Throughput: concurrent senders.
    let ticks = clock_ticks();
    let pids: Vec<String> = cluster.pids().iter().map(u32::to_string).collect();
    let cpu = |pids: &[String]| -> Result<Duration, String> {
        pids.iter().map(|p| cpu_time(p, ticks)).sum()
    };
    let before = inbox.count();
    let servers_before = cpu(&pids)?;
    let own_before = cpu_time("self", ticks)?;
    let started = Instant::now();
    send_concurrently(&transport, "BOB", "throughput", args.messages, args.senders).await?;
    let all_sent = started.elapsed();
    inbox
        .wait("the throughput run", |inbox| {
            inbox.count() >= before + args.messages
        })
        .await?;
    let elapsed = started.elapsed();
    let servers = cpu(&pids)? - servers_before;
    let own = cpu_time("self", ticks)? - own_before;

    stop.cancel();
    receiver.await.map_err(|e| e.to_string())?;

    // Messages for a user logged in nowhere, then their login on HOSTB.
    let carol = EncodedName::new("CAROL").expect("a valid name");
    consumer::create_user_queue(&transport_nats(&cluster).await, &carol)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    send_concurrently(&transport, "CAROL", "queued", args.queued, args.senders).await?;
    let queueing = started.elapsed();
    let before = inbox.count();
    let stop = CancellationToken::new();
    let (b, _) = common::host(cluster.settings(), "HOSTB").await;
    let started = Instant::now();
    let login = {
        let (inbox, stop) = (inbox.clone(), stop.clone());
        tokio::spawn(async move {
            consumer::run_user(&b, &carol, "carol", &inbox, stop.cancelled_owned()).await;
        })
    };
    inbox
        .wait("the queued messages", |inbox| {
            inbox.count() >= before + args.queued
        })
        .await?;
    let delivered_at_login = started.elapsed();
    stop.cancel();
    login.await.map_err(|e| e.to_string())?;

    let rate = args.messages as f64 / elapsed.as_secs_f64();
    println!(
        "durable delivery through a 3-node cluster, replicas 3, nats-server {}",
        server_version()
    );
    println!();
    println!(
        "| one message at a time ({} messages) | p50 ms | p99 ms | max ms |",
        args.latency_messages
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| send → committed in the receiving inbox | {} | {} | {} |",
        ms(percentile(&delivered, 0.5)),
        ms(percentile(&delivered, 0.99)),
        ms(*delivered.last().expect("at least one message"))
    );
    println!(
        "| send → JetStream's acknowledgement (the sender's answer) | {} | {} | {} |",
        ms(percentile(&acknowledged, 0.5)),
        ms(percentile(&acknowledged, 0.99)),
        ms(*acknowledged.last().expect("at least one message"))
    );
    println!();
    println!("| throughput | messages | senders | msg/s | all acknowledged after s | all in the inbox after s | servers' CPU s | bench process CPU s | servers' share |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| send → committed in the receiving inbox | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} % |",
        args.messages,
        args.senders,
        rate,
        all_sent.as_secs_f64(),
        elapsed.as_secs_f64(),
        servers.as_secs_f64(),
        own.as_secs_f64(),
        100.0 * servers.as_secs_f64() / (servers + own).as_secs_f64().max(f64::EPSILON)
    );
    println!();
    println!("| a user logged in nowhere | messages | s | msg/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| queued by {} senders (all acknowledged) | {} | {:.2} | {:.0} |",
        args.senders,
        args.queued,
        queueing.as_secs_f64(),
        args.queued as f64 / queueing.as_secs_f64()
    );
    println!(
        "| delivered at their login: consumer start → all committed in the inbox | {} | {:.2} | {:.0} |",
        args.queued,
        delivered_at_login.as_secs_f64(),
        args.queued as f64 / delivered_at_login.as_secs_f64()
    );
    Ok(())
}

/// A connection of its own to `cluster`.
async fn transport_nats(cluster: &common::Cluster) -> messenger_nats::Nats {
    common::host(cluster.settings(), "HOSTC").await.0
}

fn server_version() -> String {
    messenger_nats::testing::nats_server()
        .and_then(|server| {
            std::process::Command::new(server)
                .arg("--version")
                .output()
                .ok()
        })
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().trim_start_matches("nats-server: ").to_owned())
        .unwrap_or_else(|| "(version unknown)".to_owned())
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("delivery: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("delivery: {e}");
            ExitCode::FAILURE
        }
    }
}
