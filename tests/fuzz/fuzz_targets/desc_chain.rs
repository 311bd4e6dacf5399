//! Fuzzes descriptor-chain parsing: a random guest (ring header, descriptor
//! table, available ring, buffers and indirect tables) is walked by the
//! ring and by the reference model, which must agree; the chains are then
//! given back and the notification calls run. Any panic is a finding.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vhost_core_tests::fuzz_desc_chain(data);
});
