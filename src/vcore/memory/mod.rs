// SPDX-License-Identifier: GPL-2.0

//! Guest memory as the device reaches it: the translation of guest
//! addresses (the memory table and the device IOTLB are [`intervalmap`]s)
//! and the dirty log of the pages the device writes ([`dirtylog`]).

pub(crate) mod dirtylog;
pub(crate) mod intervalmap;
