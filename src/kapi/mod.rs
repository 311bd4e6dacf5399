// SPDX-License-Identifier: GPL-2.0

//! Small safe wrappers over kernel APIs that the 6.12 `kernel` crate lacks.
//!
//! Each wrapper is shaped like the upstream abstraction of a newer kernel
//! (`kernel::miscdevice`, `kernel::mm`), so that moving to those later is
//! mostly a deletion.

pub(crate) mod miscdev;
pub(crate) mod mm;
