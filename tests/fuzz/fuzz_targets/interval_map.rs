//! Fuzzes the interval map behind the memory table and the IOTLB: a random
//! sequence of add_range, del_range, reset, first/next and translate, on
//! both flag variants and both storages, is run on the map and on a naive
//! model of C's vhost_iotlb, which must agree after every step; the map's
//! invariants hold and translations around its entries (zero-size, across
//! entries, past u64::MAX) agree piece by piece. Any panic is a finding.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vhost_core_tests::fuzz_interval_map(data);
});
