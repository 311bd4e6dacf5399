// SPDX-License-Identifier: GPL-2.0

//! The logic of vhost-net that does not need the kernel.
//!
//! These files are compiled twice: into the kernel module (`no_std`, kernel
//! lints) and into the host test crate `tests/unit`, whose tests are all
//! there. They therefore use only `core`, refer to each other through
//! `super::`, and report failures as [`errno::Errno`] values that the
//! kernel glue converts. Atomics come through [`sync`], so that the host
//! tests can compile a file again with a model checker's (`workq.rs` under
//! `loom`).
//!
//! - [`ring`]: the virtqueue's rings: descriptors, chains, the split ring;
//! - [`memory`]: guest memory: address translation, the dirty log;
//! - [`validate`]: argument checks of the ioctls; [`iotlb_msg`]: IOTLB
//!   messages written to the device fd; [`features`]: feature negotiation;
//! - [`contract`]: what each served kernel's C module answers, where they
//!   differ;
//! - [`workq`], [`teardown`], [`busypoll`]: the worker's protocols;
//! - [`diag`]: the reasons logged where C calls `vq_err`, the per-ring
//!   counters of fdinfo and their format;
//! - [`uapi`], [`errno`], [`sync`]: the kernel's ABI, error numbers and
//!   atomics.

pub(crate) mod busypoll;
#[allow(
    dead_code,
    reason = "every kernel's contract is compiled (the host tests check them all); the module reads the one it is built for"
)]
pub(crate) mod contract;
pub(crate) mod diag;
pub(crate) mod errno;
pub(crate) mod features;
pub(crate) mod iotlb_msg;
pub(crate) mod memory;
pub(crate) mod ring;
pub(crate) mod sync;
pub(crate) mod teardown;
#[allow(
    dead_code,
    reason = "a whole mirror of the uapi headers: tests/vmtest includes the file too, and the host tests check every ioctl number against C's"
)]
pub(crate) mod uapi;
pub(crate) mod validate;
pub(crate) mod workq;
