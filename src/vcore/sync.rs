// SPDX-License-Identifier: GPL-2.0

//! The atomics the core uses, through one path (`super::sync::atomic`) so
//! that a model checker can compile a core file with its own: the host
//! tests include `workq.rs` a second time beside a `sync` module that
//! re-exports `loom`'s atomics (tests/unit/src/workq_loom.rs).

pub(crate) use core::sync::atomic;
