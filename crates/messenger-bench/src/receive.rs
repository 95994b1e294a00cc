//! Receive throughput: `N` concurrent senders, each message a whole connection (connect,
//! session request, 0xD5, 0xD7, 0xD6), timed from `connect` to the 0xD6 response. A server
//! that acknowledges only after its durable commit (messengerd) is timed to that commit.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use netbios::smb::{OutgoingMessage, SendOutcome, SenderOptions, SenderSession};
use netbios::{NetbiosName, QualifiedName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::record::Record;
use crate::stats::Latencies;
use crate::RecordArgs;

/// Longest a single message may take before it counts as failed.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer per connection: the responses are a few dozen bytes each.
const READ_BUF_LEN: usize = 1024;
/// The messenger name suffix (`NAME<03>`).
const MESSENGER_SUFFIX: u8 = netbios::name::SUFFIX_MESSENGER;
/// The suffix of the calling name, as `smbclient` sends it (`NAME<00>`).
const WORKSTATION_SUFFIX: u8 = netbios::name::SUFFIX_WORKSTATION;
/// Pause after a failed message so that a refusing server does not spin the client.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// `receive` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Session service address (`127.0.0.1:139`).
    #[arg(long)]
    target: SocketAddr,
    /// Called name (without suffix; `<03>` is added).
    #[arg(long, default_value = "BENCHHOST")]
    called: String,
    /// Concurrent senders.
    #[arg(long, short = 'n', default_value_t = 8)]
    concurrency: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Bytes of message text.
    #[arg(long, default_value_t = 64)]
    text_len: usize,
    /// Client runtime threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Send SMB frames without a session request (only for non-139 ports).
    #[arg(long)]
    no_session_request: bool,
    /// The server's process: its CPU time per message is recorded too (`cpu_us`).
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(flatten)]
    record: RecordArgs,
}

/// Runs the benchmark and records `rate`, `p50_ms`, `p99_ms`, `messages`, `errors`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let called = NetbiosName::new_uppercase(args.called.as_bytes(), MESSENGER_SUFFIX)
        .context("called name")?;
    let calling =
        NetbiosName::new_uppercase(b"BENCHSENDER", WORKSTATION_SUFFIX).context("calling name")?;
    let text: Vec<u8> = b"Benchmark message from messenger-bench. "
        .iter()
        .copied()
        .cycle()
        .take(args.text_len.max(1))
        .collect();
    let message = OutgoingMessage {
        calling: QualifiedName::new(calling),
        called: QualifiedName::new(called),
        from: b"BENCH".to_vec(),
        to: called.name_bytes().to_vec(),
        text,
    };
    let options = SenderOptions {
        session_request: !args.no_session_request,
        prefer_single_block: false,
        retry_multi_block: false,
        response_timeout: MESSAGE_TIMEOUT,
        ..SenderOptions::default()
    };
    let warmup = Duration::from_secs_f64(args.warmup);
    let measured = Duration::from_secs_f64(args.duration);
    let cpu_meter = args.server_pid.map(|pid| {
        std::thread::spawn(move || {
            std::thread::sleep(warmup);
            let before = cpu_seconds(pid);
            std::thread::sleep(measured);
            Some(cpu_seconds(pid)? - before?)
        })
    });
    let (mut latencies, errors, first_error) = runtime.block_on(async {
        let start = Instant::now();
        let measure_from = start + warmup;
        let end = measure_from + measured;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..args.concurrency.max(1) {
            let message = message.clone();
            let target = args.target;
            tasks.spawn(async move {
                let mut lat = Latencies::default();
                let mut errors = 0u64;
                let mut first_error = None;
                while Instant::now() < end {
                    let began = Instant::now();
                    let result =
                        tokio::time::timeout(MESSAGE_TIMEOUT, send_one(target, &message, options))
                            .await
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
                    let done = Instant::now();
                    let counted = began >= measure_from && done <= end;
                    match result {
                        Ok(()) if counted => lat.push(done - began),
                        Ok(()) => {}
                        Err(e) => {
                            if counted {
                                errors += 1;
                            }
                            first_error.get_or_insert_with(|| format!("{e:#}"));
                            tokio::time::sleep(ERROR_BACKOFF).await;
                        }
                    }
                }
                (lat, errors, first_error)
            });
        }
        let mut all = Latencies::default();
        let mut errors = 0;
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let (lat, e, first) = joined?;
            all.extend(lat);
            errors += e;
            if first_error.is_none() {
                first_error = first;
            }
        }
        anyhow::Ok((all, errors, first_error))
    })?;
    let messages = latencies.len();
    let rate = messages as f64 / measured.as_secs_f64();
    let server_cpu = cpu_meter.and_then(|t| t.join().ok().flatten());
    let p50 = latencies.percentile_ms(50.0);
    let p99 = latencies.percentile_ms(99.0);
    println!(
        "receive {} {}: N={} {:.0} messages/s, p50 {:.2} ms, p99 {:.2} ms ({} messages, {} errors)",
        args.record.subject, args.target, args.concurrency, rate, p50, p99, messages, errors
    );
    let cpu_us = server_cpu.map(|s| s * 1e6 / messages.max(1) as f64);
    if let Some(us) = cpu_us {
        println!("  server CPU {us:.1} µs per message");
    }
    if let Some(e) = &first_error {
        eprintln!("  first error: {e}");
    }
    if messages == 0 {
        bail!("no message was delivered");
    }
    let mut record = Record::new("receive", &args.record);
    record
        .set("n", args.concurrency as f64)
        .set("rate", rate)
        .set("p50_ms", p50)
        .set("p99_ms", p99)
        .set("messages", messages as f64)
        .set("errors", errors as f64);
    if let Some(us) = cpu_us {
        record.set("cpu_us", us);
    }
    record.save(&args.record)
}

/// Clock ticks per second of `/proc/PID/stat` times (USER_HZ, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds used so far by process `pid` (all its threads).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Sends one message on a connection of its own and waits for its final response.
pub(crate) async fn send_one(
    target: SocketAddr,
    message: &OutgoingMessage,
    options: SenderOptions,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    let mut session = SenderSession::new(message.clone(), options, std::time::Instant::now())?;
    let mut buf = [0u8; READ_BUF_LEN];
    loop {
        while let Some(bytes) = session.poll_transmit() {
            stream.write_all(&bytes).await?;
        }
        match session.outcome() {
            Some(SendOutcome::Delivered(_)) => {
                // Close with a reset rather than a FIN: at thousands of connections a second
                // from one client, TIME_WAIT would exhaust the ephemeral ports and the kernel's
                // search for a free one would become the bottleneck of the benchmark. The
                // server has answered everything by now, so nothing is lost either way.
                stream.set_zero_linger()?;
                return Ok(());
            }
            Some(other) => bail!("not delivered: {other:?}"),
            None => {}
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            session.handle_eof();
        } else {
            session.handle_bytes(std::time::Instant::now(), &buf[..n]);
        }
    }
}
