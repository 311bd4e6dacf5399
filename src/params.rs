// SPDX-License-Identifier: GPL-2.0

//! Module parameters: `kapi::params` reads the shim's variables.

pub(crate) use crate::kapi::params::*;
