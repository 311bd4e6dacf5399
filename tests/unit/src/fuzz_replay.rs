//! Replays the committed fuzz corpus and the hand-made seeds through the
//! fuzz entry point, so `cargo test` covers it without cargo-fuzz.

use std::path::Path;

use crate::ringsim::seed_inputs;
use crate::vcore::errno::Errno;

fn corpus_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/desc_chain")
}

#[test]
fn replay_seeds() {
    let mut got = Vec::new();
    for (name, input) in seed_inputs() {
        got.push((name, crate::fuzz_desc_chain(&input)));
    }
    // Each seed reaches the path it was made for.
    let einval = Some(Errno::EINVAL.0);
    assert_eq!(
        got,
        [
            ("simple", (1, None)),
            ("indirect_wrap", (2, None)),
            ("iotlb_miss", (0, Some(Errno::EAGAIN.0))),
            ("loop", (0, einval)),
            ("many_fragmented", (8, None)),
            ("out_after_in", (0, einval)),
        ]
    );
}

#[test]
fn replay_committed_corpus() {
    let dir = corpus_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fuzz/corpus/desc_chain is missing") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("corpus {}", path.display());
        crate::fuzz_desc_chain(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus");
}

/// Writes the hand-made seeds into the corpus directory:
/// `cargo test -- --ignored write_seed_corpus`.
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, input) in seed_inputs() {
        std::fs::write(dir.join(format!("seed-{name}")), input).unwrap();
    }
}
