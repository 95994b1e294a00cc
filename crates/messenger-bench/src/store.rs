//! Scale set-up and memory: filling an inbox with generated messages, adding messaging names
//! through the control socket, and reading a process's resident memory.

use std::path::PathBuf;

use anyhow::{bail, Context};
use messenger_core::message::{NewMessage, TransportKind};
use messenger_ipc::{Client, Reply, Request};
use messenger_store::Store;

use crate::record::Record;
use crate::RecordArgs;

/// Messages per transaction while filling.
const FILL_BATCH: usize = 10_000;
/// Synthetic users the generated messages are addressed to.
const FILL_USERS: usize = 100;
/// One message in this many is for everyone (to the computer name or a broadcast).
const FOR_EVERYONE_EVERY: usize = 100;
/// Microseconds between generated messages' timestamps.
const FILL_SPACING_MICROS: i64 = 1_000;

/// `fill` options.
#[derive(Debug, clap::Args)]
pub struct FillArgs {
    /// The inbox database (created if missing).
    #[arg(long)]
    db: PathBuf,
    /// Messages to add.
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    /// The user whose `inbox --unread` is timed: every message for everyone is marked read by
    /// them, and the last `unread` messages are addressed to them, unread.
    #[arg(long, default_value = "root")]
    reader: String,
    /// Unread messages left for `reader`.
    #[arg(long, default_value_t = 20)]
    unread: usize,
    /// Every message for everyone, and none read: the inbox a user meets after a broadcast
    /// flood (`reader` and `unread` are then unused).
    #[arg(long)]
    for_everyone: bool,
}

/// Fills the inbox: addressed messages for synthetic users, one in a hundred for everyone
/// (read by `reader`), and the last few unread for `reader`.
pub fn fill(args: FillArgs) -> anyhow::Result<()> {
    let mut store = Store::open(&args.db).with_context(|| format!("{}", args.db.display()))?;
    let started = std::time::Instant::now();
    let base = jiff::Timestamp::now().as_microsecond() - args.messages as i64 * FILL_SPACING_MICROS;
    let source = Some("127.0.0.1:40000".parse()?);
    let mut everyone_ids = Vec::new();
    let mut batch = Vec::with_capacity(FILL_BATCH);
    let unread_from = args.messages.saturating_sub(args.unread);
    for i in 0..args.messages {
        let recipients = if args.for_everyone {
            Vec::new()
        } else if i >= unread_from {
            vec![args.reader.clone()]
        } else if i % FOR_EVERYONE_EVERY == 0 {
            Vec::new()
        } else {
            vec![format!("user{:03}", i % FILL_USERS)]
        };
        batch.push(NewMessage {
            received_at: base + i as i64 * FILL_SPACING_MICROS,
            from: "BENCH".into(),
            to: recipients
                .first()
                .cloned()
                .unwrap_or_else(|| "BENCHHOST".into()),
            recipients,
            source,
            transport: TransportKind::Session,
            text: format!("Generated message {i} for the scale benchmark."),
            raw: format!("Generated message {i} for the scale benchmark.").into_bytes(),
        });
        if batch.len() == FILL_BATCH || i + 1 == args.messages {
            let ids = store.insert_batch(&batch)?;
            for (m, id) in batch.iter().zip(ids) {
                if m.recipients.is_empty() {
                    everyone_ids.push(id);
                }
            }
            batch.clear();
        }
    }
    if !args.for_everyone {
        for chunk in everyone_ids.chunks(FILL_BATCH) {
            store.mark_read(&args.reader, chunk)?;
        }
    }
    println!(
        "fill {}: {} messages in {:.1} s",
        args.db.display(),
        args.messages,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `add-names` options.
#[derive(Debug, clap::Args)]
pub struct AddNamesArgs {
    /// The service's control socket.
    #[arg(long)]
    socket: PathBuf,
    /// Names to try to add.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    #[command(flatten)]
    record: RecordArgs,
}

/// Control connections adding names at once. Each `/ADD` waits for the name's registration
/// broadcasts (three, 250 ms apart: RFC 1002 s.6), so one connection adds about one name a
/// second; the service serves up to 256 control connections.
const ADD_NAMES_CONNECTIONS: usize = 128;

/// Adds `BN00000`, `BN00001`, ... over several connections until `count` or the first
/// refusal; records `added`.
pub fn add_names(args: AddNamesArgs) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let added = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let refusal: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut workers = Vec::new();
        for _ in 0..ADD_NAMES_CONNECTIONS.min(args.count.max(1)) {
            let mut client = Client::connect(&args.socket)?;
            let (next, added, stop, refusal) = (&next, &added, &stop, &refusal);
            let count = args.count;
            workers.push(scope.spawn(move || -> anyhow::Result<()> {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let request = Request::NameAdd {
                        name: format!("BN{i:05}"),
                    };
                    match client.call(&request)? {
                        Reply::Error(e) => {
                            stop.store(true, Ordering::Relaxed);
                            refusal
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert_with(|| e.to_string());
                        }
                        _ => {
                            added.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(())
            }));
        }
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("an adding thread panicked"))??;
        }
        Ok(())
    })?;
    let added = added.into_inner();
    let refusal = refusal.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut client = Client::connect(&args.socket)?;
    let listed = match client.call(&Request::NameList)? {
        Reply::Names { names } => names.len(),
        other => bail!("unexpected reply {other:?}"),
    };
    println!(
        "add-names: {added} of {} added, {listed} names in the table{}",
        args.count,
        refusal
            .as_deref()
            .map(|r| format!(" (then refused: {r})"))
            .unwrap_or_default()
    );
    let mut record = Record::new("names-added", &args.record);
    record
        .set("added", added as f64)
        .set("table", listed as f64);
    record.save(&args.record)
}

/// `memory` options.
#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// The process.
    #[arg(long)]
    pid: u32,
    #[command(flatten)]
    record: RecordArgs,
}

/// Records `rss_kib` (VmRSS) and `hwm_kib` (VmHWM, the peak) of a process.
pub fn memory(args: MemoryArgs) -> anyhow::Result<()> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", args.pid))
        .with_context(|| format!("process {}", args.pid))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .with_context(|| format!("{name} missing from /proc/{}/status", args.pid))
    };
    let rss = field("VmRSS:")?;
    let hwm = field("VmHWM:")?;
    println!(
        "memory {} {}: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        args.record.subject,
        args.record.label,
        rss / 1024.0,
        hwm / 1024.0
    );
    let mut record = Record::new("memory", &args.record);
    record.set("rss_kib", rss).set("hwm_kib", hwm);
    record.save(&args.record)
}
