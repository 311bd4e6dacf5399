//! Property tests: the interval map against the naive model in `model.rs`.

use proptest::prelude::*;

use crate::mapfuzz::{check_query, check_state, check_translate};
use crate::model::Model;
use crate::storage::{ArrayStorage, VecStorage};
use crate::vcore::memory::intervalmap::{IntervalMap, Storage, FLAG_RETIRE};

/// Capacity of the fixed-array storage; smaller than some limits, so that
/// allocation failures (`ENOMEM`) happen too.
const ARRAY_CAP: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    Add {
        start: u64,
        last: u64,
        addr: u64,
        perm: u32,
    },
    Del {
        start: u64,
        last: u64,
    },
    Query {
        start: u64,
        last: u64,
    },
    Translate {
        addr: u64,
        len: u32,
        access: u32,
        cap: usize,
    },
}

/// Addresses concentrated where things happen: small values (many overlaps),
/// the ends of the space, its middle (the split point), anything.
fn addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..64u64,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        2 => (u64::MAX - 64)..=u64::MAX,
        1 => (u64::MAX / 2 - 8)..=(u64::MAX / 2 + 8),
        1 => any::<u64>(),
    ]
}

/// A range: mostly short ones after `start`, sometimes unrelated ends
/// (including `last < start`), sometimes the whole space.
fn range() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        6 => (addr(), 0..40u64).prop_map(|(s, l)| (s, s.saturating_add(l))),
        2 => (addr(), addr()),
        1 => Just((0u64, u64::MAX)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (range(), addr(), 0..5u32).prop_map(|((start, last), addr, perm)| Op::Add {
            start,
            last,
            addr,
            perm
        }),
        2 => range().prop_map(|(start, last)| Op::Del { start, last }),
        3 => range().prop_map(|(start, last)| Op::Query { start, last }),
        4 => (
            addr(),
            prop_oneof![8 => 0..100u32, 1 => Just(u32::MAX), 1 => any::<u32>()],
            1..4u32,
            0..6usize
        )
            .prop_map(|(addr, len, access, cap)| Op::Translate {
                addr,
                len,
                access,
                cap
            }),
    ]
}

fn check<S: Storage>(storage: S, capacity: usize, limit: u32, flags: u32, ops: &[Op]) {
    let mut map = IntervalMap::new(storage, limit, flags);
    let mut model = Model::new(limit, flags, capacity);
    for op in ops {
        match *op {
            Op::Add {
                start,
                last,
                addr,
                perm,
            } => {
                assert_eq!(
                    map.add_range(start, last, addr, perm),
                    model.add_range(start, last, addr, perm),
                    "{op:?}"
                );
            }
            Op::Del { start, last } => {
                map.del_range(start, last);
                model.del_range(start, last);
            }
            // first() and then the whole next() chain.
            Op::Query { start, last } => check_query(&map, &model, start, last),
            Op::Translate {
                addr,
                len,
                access,
                cap,
            } => check_translate(&map, &model, addr, len, access, cap),
        }
        check_state(&map, &model, limit, flags);
    }
}

fn limit() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(3),
        Just(5),
        Just(8),
        Just(64)
    ]
}

fn flags() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(FLAG_RETIRE)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn vec_storage_matches_model(
        limit in limit(),
        flags in flags(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        check(VecStorage::default(), usize::MAX, limit, flags, &ops);
    }

    #[test]
    fn array_storage_matches_model(
        limit in limit(),
        flags in flags(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        check(ArrayStorage::<ARRAY_CAP>::default(), ARRAY_CAP, limit, flags, &ops);
    }
}
