// SPDX-License-Identifier: GPL-2.0

//! Every C function and variable the module reaches beyond the kernel
//! crate's `bindings`: the C shim's (`src/shim/shim.h`) and the exported
//! functions of headers the kernel crate does not bind (misc devices,
//! `vhost_task`, tun/tap).
//!
//! The declarations are generated from `src/shim/shim.h` at build time by
//! the kernel's bindgen with the kernel's C flags (the `shim_bindgen` rule
//! of `Kbuild`); nothing here is written by hand, so a prototype that
//! changes in C changes here or fails to compile. The types they name are
//! the kernel crate's (`kernel::bindings`), except the few the kernel crate
//! lacks (`miscdevice`, `vhost_task`, `ptr_ring`, `tun_msg_ctl`, the shim's
//! XDP batch), which the rule generates too.

#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    improper_ctypes,
    unreachable_pub,
    missing_docs,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]

#[allow(unused_imports)]
use kernel::bindings::*;
#[allow(unused_imports)]
use kernel::ffi;

include!("shim_generated.rs");
