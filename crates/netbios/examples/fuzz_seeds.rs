//! Writes the seed corpus of every fuzz target: `cargo run -p netbios --example fuzz_seeds --
//! fuzz/corpus`. The seeds are packets built by this crate's encoders (see
//! `netbios::fuzzing::seed_corpus`), so the committed corpus can always be regenerated.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    for (target, name, bytes) in netbios::fuzzing::seed_corpus() {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir)?;
        std::fs::write(target_dir.join(format!("seed-{name}")), bytes)?;
    }
    println!("seed corpus written to {}", dir.display());
    Ok(())
}
