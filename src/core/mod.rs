// SPDX-License-Identifier: GPL-2.0

//! The logic of vhost-net that does not need the kernel.
//!
//! These files are compiled twice: into the kernel module (`no_std`, kernel
//! lints) and into the host test crate `tests/unit`. They therefore use only
//! `core`, refer to each other through `super::`, and report failures as
//! [`errno::Errno`] values that the kernel glue converts. Atomics come
//! through [`sync`], so that the host tests can compile a file again with
//! a model checker's (`workq.rs` under `loom`).

pub(crate) mod busypoll;
pub(crate) mod dirtylog;
pub(crate) mod errno;
pub(crate) mod features;
pub(crate) mod intervalmap;
pub(crate) mod ring;
pub(crate) mod sync;
pub(crate) mod teardown;
pub(crate) mod uapi;
pub(crate) mod validate;
pub(crate) mod workq;
