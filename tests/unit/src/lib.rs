//! Host tests for the kernel-independent logic in `src/vcore`.
//!
//! The module tree of `src/vcore` is compiled here exactly as in the kernel
//! module, by path; its tests are all here, in the modules below, which also
//! provide the storages and the naive reference model the interval map is
//! checked against.

// Not every item of the core is used by the tests of this crate.
#[allow(dead_code)]
#[path = "../../../src/vcore/mod.rs"]
mod vcore;

// The simulated guest, the naive interval-map model and the storages are
// shared with the fuzz targets, so they are not test-only.
#[allow(dead_code)]
mod mapfuzz;
#[allow(dead_code)]
mod model;
#[allow(dead_code)]
mod ringsim;
#[allow(dead_code)]
mod storage;

pub use mapfuzz::{fuzz_interval_map, fuzz_iotlb_msg};
pub use ringsim::fuzz_desc_chain;

#[cfg(test)]
mod busypoll_tests;
#[cfg(test)]
mod contract_tests;
#[cfg(test)]
mod diag_tests;
#[cfg(test)]
mod dirtylog_tests;
#[cfg(test)]
mod errno_tests;
#[cfg(test)]
mod features_tests;
#[cfg(test)]
mod fuzz_replay;
#[cfg(test)]
mod intervalmap_props;
#[cfg(test)]
mod intervalmap_tests;
#[cfg(test)]
mod iotlb_msg_tests;
#[cfg(test)]
mod nostd_check;
#[cfg(test)]
mod overflow_tests;
#[cfg(test)]
mod ring_budget_tests;
#[cfg(test)]
mod ring_props;
#[cfg(test)]
mod ring_tests;
#[cfg(test)]
mod teardown_loom;
#[cfg(test)]
mod uapi_tests;
#[cfg(test)]
mod validate_tests;
#[cfg(test)]
mod workq_loom;
