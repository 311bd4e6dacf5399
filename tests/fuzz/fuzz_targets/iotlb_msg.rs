//! Fuzzes the IOTLB write() path of the device fd: random buffers are
//! parsed and applied as the module does (iotlb_write_layout, the message
//! decode, process_iotlb_msg) and as C's vhost_chr_write_iter does over a
//! naive IOTLB model; results, errno (EINVAL or EFAULT only), access_ok
//! calls and the IOTLB must agree after every write. Any panic is a finding.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vhost_core_tests::fuzz_iotlb_msg(data);
});
