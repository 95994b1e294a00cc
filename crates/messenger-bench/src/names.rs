//! Name service load: unicast NAME QUERY REQUESTs for one name, many in flight on several
//! sockets, counting positive answers per second. And a reflector that answers every query
//! at once, to show how fast the client itself can go (it must outrun both servers for the
//! comparison to mean anything).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use netbios::nbns::Packet;
use netbios::{NetbiosName, QualifiedName};

use crate::record::Record;
use crate::RecordArgs;

/// Wait for an answer before refilling the window with fresh queries (lost datagrams, or a
/// server shedding load).
const REFILL_TIMEOUT: Duration = Duration::from_millis(20);
/// Largest datagram read; name query responses are about 60 bytes.
const RECV_BUF_LEN: usize = 1500;
/// Header flags of a unicast query to an end node: opcode QUERY, no recursion desired (what
/// `nmblookup -U` sends without `--recursion`).
const UNICAST_QUERY_FLAGS: u16 = 0x0000;
/// The response bit of the flags (RFC 1002 4.2.1.1, R).
const RESPONSE_BIT: u8 = 0x80;
/// The RCODE bits of the second flags byte.
const RCODE_MASK: u8 = 0x0F;

/// `names` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name service address (`10.99.0.1:137`).
    #[arg(long)]
    target: SocketAddr,
    /// Name asked for, without suffix.
    #[arg(long, default_value = "BENCHHOST")]
    name: String,
    /// Suffix of the name, in hex.
    #[arg(long, default_value = "03", value_parser = parse_hex_u8)]
    suffix: u8,
    /// Client sockets, one thread each.
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// Queries in flight per socket.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    #[command(flatten)]
    record: RecordArgs,
}

fn parse_hex_u8(s: &str) -> Result<u8, String> {
    u8::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| e.to_string())
}

/// Runs the name query load and records `rate` (positive answers per second) and `negative`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let name = NetbiosName::new_uppercase(args.name.as_bytes(), args.suffix).context("name")?;
    let mut template = Packet::name_query(0, QualifiedName::new(name), false).encode();
    template[2..4].copy_from_slice(&UNICAST_QUERY_FLAGS.to_be_bytes());
    let bind: SocketAddr = if args.target.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let warmup = Duration::from_secs_f64(args.warmup);
    let measured = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measured;
    let mut threads = Vec::new();
    for index in 0..args.sockets.max(1) {
        let socket = UdpSocket::bind(bind)?;
        socket.connect(args.target)?;
        socket.set_read_timeout(Some(REFILL_TIMEOUT))?;
        let template = template.clone();
        let in_flight = args.in_flight.max(1);
        threads.push(std::thread::spawn(move || {
            query_loop(&socket, &template, index, in_flight, measure_from, end)
        }));
    }
    let mut positive = 0u64;
    let mut negative = 0u64;
    for t in threads {
        let (p, n) = t
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        positive += p;
        negative += n;
    }
    let rate = positive as f64 / measured.as_secs_f64();
    println!(
        "names {} {}: {:.0} answers/s ({} sockets x {} in flight; {} positive, {} negative)",
        args.record.subject, args.target, rate, args.sockets, args.in_flight, positive, negative
    );
    if positive == 0 {
        bail!("no positive answer");
    }
    let mut record = Record::new("names", &args.record);
    record
        .set("rate", rate)
        .set("negative", negative as f64)
        .set("sockets", args.sockets as f64)
        .set("in_flight", args.in_flight as f64);
    record.save(&args.record)
}

/// One socket's loop: keeps `in_flight` queries outstanding; returns (positive, negative)
/// answers received in the measured window.
fn query_loop(
    socket: &UdpSocket,
    template: &[u8],
    index: usize,
    in_flight: usize,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<(u64, u64)> {
    let mut query = template.to_vec();
    // Transaction ids differ between sockets only for readability of captures.
    let mut id = (index as u16).wrapping_mul(0x1000);
    let mut send = |socket: &UdpSocket| -> std::io::Result<()> {
        id = id.wrapping_add(1);
        query[0..2].copy_from_slice(&id.to_be_bytes());
        socket.send(&query).map(|_| ())
    };
    for _ in 0..in_flight {
        send(socket)?;
    }
    let mut buf = [0u8; RECV_BUF_LEN];
    let (mut positive, mut negative) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok((positive, negative));
        }
        match socket.recv(&mut buf) {
            Ok(n) if n >= 4 && buf[2] & RESPONSE_BIT != 0 => {
                if now >= measure_from {
                    if buf[3] & RCODE_MASK == 0 {
                        positive += 1;
                    } else {
                        negative += 1;
                    }
                }
                send(socket)?;
            }
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                for _ in 0..in_flight {
                    send(socket)?;
                }
            }
            // ICMP port unreachable while the server starts or stops: keep going.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(REFILL_TIMEOUT);
                for _ in 0..in_flight {
                    send(socket)?;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `reflector` options.
#[derive(Debug, clap::Args)]
pub struct ReflectorArgs {
    /// Address to answer on.
    #[arg(long)]
    bind: SocketAddr,
    /// Threads reading the one socket.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
}

/// Answers every datagram with itself, response bit set: the least work a responder can do.
pub fn reflector(args: ReflectorArgs) -> anyhow::Result<()> {
    let socket = Arc::new(UdpSocket::bind(args.bind)?);
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let end = Instant::now() + Duration::from_secs_f64(args.seconds);
    let mut threads = Vec::new();
    for _ in 0..args.threads.max(1) {
        let socket = Arc::clone(&socket);
        let stop = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; RECV_BUF_LEN];
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    if n >= 4 {
                        buf[2] |= RESPONSE_BIT;
                        let _ = socket.send_to(&buf[..n], from);
                    }
                }
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    stop.store(true, Ordering::Relaxed);
    Ok(())
}
