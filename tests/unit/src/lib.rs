//! Host tests for the kernel-independent logic in `src/core`.
//!
//! The module tree of `src/core` is compiled here exactly as in the kernel
//! module, by path; the tests live partly inside those files (`#[cfg(test)]`)
//! and partly in the modules below, which also provide the storages and the
//! naive reference model the interval map is checked against.

// Not every item of the core is used by the tests of this crate.
#[allow(dead_code)]
#[path = "../../../src/core/mod.rs"]
mod vcore;

#[cfg(test)]
mod intervalmap_props;
#[cfg(test)]
mod intervalmap_tests;
#[cfg(test)]
mod model;
#[cfg(test)]
mod nostd_check;
#[cfg(test)]
mod storage;
#[cfg(test)]
mod validate_tests;
