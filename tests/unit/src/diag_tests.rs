//! The diagnostics of src/vcore/diag.rs: reasons, the fdinfo line, the
//! log's rate limit.

use crate::vcore::diag::*;

#[test]
fn reasons_are_listed_in_order_with_distinct_names() {
    for (i, r) in Reason::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i);
        assert_eq!(Reason::from_u8(i as u8), Some(*r));
        assert!(!r.message().is_empty());
        let name = r.name();
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        for other in &Reason::ALL[..i] {
            assert_ne!(other.name(), name);
        }
    }
    assert_eq!(Reason::from_u8(NREASONS as u8), None);
}

#[test]
fn c_reports_a_broken_indirect_table_twice() {
    // get_indirect's vq_err, then vhost_get_vq_desc's; every other
    // condition once.
    for r in Reason::ALL {
        let twice = r.name().starts_with("indirect_");
        assert_eq!(r.c_reports(), if twice { 2 } else { 1 }, "{}", r.name());
    }
}

#[test]
fn fdinfo_line_of_an_idle_ring() {
    let s = VqStats::default();
    let mut out = String::new();
    write_vq_line(&mut out, 0, &s.snapshot()).unwrap();
    assert_eq!(
        out,
        "vq0: packets=0 bytes=0 kicks=0 calls=0 rounds=0 busypoll_hits=0 drops=- last_error=-\n"
    );
}

#[test]
fn fdinfo_line_with_counts_drops_and_last_error() {
    let s = VqStats::default();
    s.packets.add(3);
    s.bytes.add(180);
    s.calls.add(2);
    s.rounds.add(4);
    s.busypoll_hits.add(1);
    s.drop_packet(Reason::RxTooBig);
    s.error(Reason::DescLoop, 12_345_678_901);
    s.error(Reason::DescLoop, 42_000_001_000);
    let mut snap = s.snapshot();
    snap.kicks = 5;
    assert_eq!(snap.last_error, Some((Reason::DescLoop, 42_000_001_000)));
    let mut out = String::new();
    write_vq_line(&mut out, 1, &snap).unwrap();
    assert_eq!(
        out,
        "vq1: packets=3 bytes=180 kicks=5 calls=2 rounds=4 busypoll_hits=1 \
         drops=desc_loop:2,rx_too_big:1 last_error=desc_loop@42.000001\n"
    );
}

#[test]
fn a_drop_alone_is_not_an_error() {
    let s = VqStats::default();
    s.drop_packet(Reason::TxSend);
    assert_eq!(s.snapshot().last_error, None);
}

#[test]
fn rate_limit_lets_a_burst_through_per_interval() {
    let l = RateLimit::new();
    let t0 = 1_000;
    for _ in 0..RATELIMIT_BURST {
        assert_eq!(l.allow(t0), Some(0));
    }
    assert_eq!(l.allow(t0 + 1), None);
    assert_eq!(l.allow(t0 + RATELIMIT_INTERVAL_NS - 1), None);
    // A new interval: the first message says how many were suppressed.
    assert_eq!(l.allow(t0 + RATELIMIT_INTERVAL_NS), Some(2));
    assert_eq!(l.allow(t0 + RATELIMIT_INTERVAL_NS), Some(0));
}
