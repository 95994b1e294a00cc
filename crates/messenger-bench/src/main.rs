//! `messenger-bench`: the system benchmarks of the Messenger service.
//!
//! Each subcommand measures one thing against whatever server it is pointed at (messengerd or
//! Samba's smbd/nmbd), prints a line for people, and appends a JSON record to `--record` so
//! that `report` can put both sides in one table with their ratio. `scripts/bench` starts the
//! servers (in network namespaces) and runs the subcommands in order; nothing here starts a
//! server or asserts a number.
#![forbid(unsafe_code)]

mod ack;
mod names;
mod process;
mod receive;
mod record;
mod report;
mod stats;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// System benchmarks of the Messenger service.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive throughput: concurrent senders, one message per connection.
    Receive(receive::Args),
    /// A sender's acknowledgement latency, idle and while listings of the inbox run.
    Ack(ack::Args),
    /// Unicast name queries answered per second.
    Names(names::Args),
    /// A trivial name-query responder, to show what the name load client can drive.
    Reflector(names::ReflectorArgs),
    /// Wall time of a command run again and again (process start to exit 0).
    Time(process::TimeArgs),
    /// Time from running a command until every listed inbox holds a message with a marker.
    Fanout(process::FanoutArgs),
    /// Fills an inbox database with generated messages.
    Fill(store::FillArgs),
    /// Adds messaging names through the control socket until the service refuses.
    AddNames(store::AddNamesArgs),
    /// Resident memory of a process (VmRSS and VmHWM).
    Memory(store::MemoryArgs),
    /// Writes BENCHMARKS.md from the records.
    Report(report::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Receive(a) => receive::run(a),
        Command::Ack(a) => ack::run(a),
        Command::Names(a) => names::run(a),
        Command::Reflector(a) => names::reflector(a),
        Command::Time(a) => process::time(a),
        Command::Fanout(a) => process::fanout(a),
        Command::Fill(a) => store::fill(a),
        Command::AddNames(a) => store::add_names(a),
        Command::Memory(a) => store::memory(a),
        Command::Report(a) => report::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("messenger-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where a subcommand appends its record, and under which labels.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordArgs {
    /// JSON-lines file to append the result to.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// What was measured (`messengerd`, `samba`, ...).
    #[arg(long, default_value = "messengerd")]
    pub subject: String,
    /// A label for the run inside its benchmark (`N=64`, `hosts=8`, ...).
    #[arg(long, default_value = "")]
    pub label: String,
}
