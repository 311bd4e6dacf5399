//! Replays the committed fuzz corpora and the hand-made seeds through the
//! fuzz entry points, so `cargo test` covers them without cargo-fuzz.

use std::path::{Path, PathBuf};

use crate::mapfuzz::{iotlb_seed_inputs, map_seed_inputs};
use crate::ringsim::seed_inputs;
use crate::vcore::errno::Errno;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Runs every file of a target's committed corpus through `run`.
fn replay(target: &str, run: impl Fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("tests/fuzz/corpus/{target} is missing: {e}"))
    {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("corpus {}", path.display());
        run(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus of {target}");
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
fn replay_interval_map_seeds() {
    let got: Vec<_> = map_seed_inputs()
        .into_iter()
        .map(|(name, input)| (name, crate::fuzz_interval_map(&input)))
        .collect();
    // Each seed reaches the path it was made for: (entries at the end,
    // result of every insertion).
    let (efault, einval, enospc, enomem) = (
        Errno::EFAULT.0,
        Errno::EINVAL.0,
        Errno::ENOSPC.0,
        Errno::ENOMEM.0,
    );
    assert_eq!(
        got,
        [
            ("basic", (1, vec![0, 0])),
            ("retire", (2, vec![0; 4])),
            ("whole_space", (2, vec![enospc, 0, enospc])),
            ("overlap_ties", (2, vec![0; 4])),
            (
                "array_enomem",
                (
                    6,
                    [vec![0; 6], vec![enomem; 2], vec![0; 6], vec![enomem; 2]].concat()
                )
            ),
            ("errors", (0, vec![einval, efault, 0])),
            ("wrap_top", (2, vec![0, 0])),
        ]
    );
}

#[test]
fn replay_iotlb_msg_seeds() {
    let got: Vec<_> = iotlb_seed_inputs()
        .into_iter()
        .map(|(name, input)| (name, crate::fuzz_iotlb_msg(&input)))
        .collect();
    // Each seed reaches the path it was made for: the result of each write.
    let ok = Ok(72);
    let (einval, efault) = (Err(Errno::EINVAL.0), Err(Errno::EFAULT.0));
    assert_eq!(
        got,
        [
            ("v1_update_invalidate", vec![ok; 3]),
            ("v2_invalidate_all", vec![ok; 3]),
            (
                "short_and_bad",
                vec![einval, einval, einval, ok, einval, einval, efault, efault, efault]
            ),
            ("no_iotlb", vec![efault, efault, ok, efault]),
            ("asid", vec![efault, ok, einval, ok]),
            ("access_ok", vec![efault, ok, efault, efault, ok]),
            (
                "retire_and_bounds",
                [vec![ok; 5], vec![efault, ok, efault, ok]].concat()
            ),
        ]
    );
}

#[test]
fn replay_committed_corpora() {
    replay("desc_chain", |d| {
        crate::fuzz_desc_chain(d);
    });
    replay("interval_map", |d| {
        crate::fuzz_interval_map(d);
    });
    replay("iotlb_msg", |d| {
        crate::fuzz_iotlb_msg(d);
    });
}

/// Writes the hand-made seeds into the corpus directories:
/// `cargo test -- --ignored write_seed_corpus`.
#[test]
#[ignore]
fn write_seed_corpus() {
    let targets = [
        ("desc_chain", seed_inputs()),
        ("interval_map", map_seed_inputs()),
        ("iotlb_msg", iotlb_seed_inputs()),
    ];
    for (target, seeds) in targets {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, input) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), input).unwrap();
        }
    }
}
