//! Replays the `sanitize` fuzz target's corpus and saved crashes (`fuzz/corpus/sanitize/`,
//! `fuzz/regressions/sanitize/`) through its check, so `cargo test` catches regressions.

use std::path::Path;

#[test]
fn sanitize_corpus_and_regressions_replay() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join("sanitize")) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
            let data = std::fs::read(&path).expect("read corpus file");
            let outcome =
                std::panic::catch_unwind(|| messenger_core::fuzzing::sanitize_check(&data));
            assert!(
                outcome.is_ok(),
                "{} fails the sanitizer check",
                path.display()
            );
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no sanitize corpus found under {}",
        fuzz.display()
    );
}
