//! Replays the fuzz corpus and every saved crash through the fuzz targets' checks, so that
//! `cargo test` catches a regression without the fuzzer: `fuzz/corpus/<target>/*` (seeds and
//! what fuzzing found interesting) and `fuzz/regressions/<target>/*` (inputs that once crashed).

use std::path::{Path, PathBuf};

use netbios::fuzzing::{seed_corpus, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn seeds_pass_every_check() {
    for (target, name, bytes) in seed_corpus() {
        let (_, check) = TARGETS
            .iter()
            .find(|(t, _)| *t == target)
            .unwrap_or_else(|| panic!("seed {name} for unknown target {target}"));
        check(&bytes);
    }
}

#[test]
fn committed_corpus_and_regressions_replay() {
    let mut replayed = 0;
    for (target, check) in TARGETS {
        for kind in ["corpus", "regressions"] {
            for file in files(&fuzz_dir().join(kind).join(target)) {
                let data = std::fs::read(&file).expect("read corpus file");
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(outcome.is_ok(), "{} fails {target}", file.display());
                replayed += 1;
            }
        }
    }
    // The seed corpus is committed; finding nothing means the path is wrong, not that all
    // is well.
    assert!(
        replayed >= seed_corpus().len(),
        "only {replayed} corpus files found"
    );
}

#[test]
fn every_target_has_a_seed() {
    for (target, _) in TARGETS {
        assert!(
            seed_corpus().iter().any(|(t, _, _)| t == target),
            "no seed for {target}"
        );
    }
}
