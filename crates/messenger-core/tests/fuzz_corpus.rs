//! Replays the corpus and saved crashes of this crate's fuzz targets (`fuzz/corpus/TARGET/`,
//! `fuzz/regressions/TARGET/`) through their checks, so `cargo test` catches regressions.

use std::path::Path;

#[test]
fn sanitize_corpus_and_regressions_replay() {
    replay("sanitize", messenger_core::fuzzing::sanitize_check);
}

#[test]
fn smbstatus_corpus_and_regressions_replay() {
    replay("smbstatus", messenger_core::fuzzing::smbstatus_check);
}

fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
            let data = std::fs::read(&path).expect("read corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{} fails the {target} check",
                path.display()
            );
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no {target} corpus found under {}",
        fuzz.display()
    );
}
