// SPDX-License-Identifier: GPL-2.0

//! vhost-net in Rust: a drop-in replacement for the kernel's C `vhost_net`.
//!
//! The misc device `/dev/vhost-net` (minor 238) takes a guest's memory map,
//! virtqueue addresses, eventfds and a tap/macvtap/packet socket through the
//! ioctls of `include/uapi/linux/vhost.h`; a worker moves packets between the
//! guest's rings and the socket.

use kernel::prelude::*;

mod kapi;
mod net;
mod params;
mod vcore;
mod vhost;

// The module's identity; `module!` took one `author` until 6.17 made it a
// list of `authors`.
#[cfg(vhost_linux = "6.12")]
module! {
    type: VhostNetModule,
    name: "vhost_net_rs",
    author: "The vhost-net-rs developers",
    description: "Host kernel accelerator for virtio net, in Rust",
    license: "GPL",
    alias: ["char-major-10-238", "devname:vhost-net"],
}
#[cfg(not(vhost_linux = "6.12"))]
module! {
    type: VhostNetModule,
    name: "vhost_net_rs",
    authors: ["The vhost-net-rs developers"],
    description: "Host kernel accelerator for virtio net, in Rust",
    license: "GPL",
    alias: ["char-major-10-238", "devname:vhost-net"],
}

/// The module: owns the registration of `/dev/vhost-net`.
struct VhostNetModule {
    _misc: kapi::miscdev::Registration<net::device::VhostNet>,
}

impl kernel::Module for VhostNetModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        match kapi::miscdev::Registration::register(module) {
            Ok(misc) => {
                pr_info!(
                    "version {} loaded: max_mem_regions={} max_iotlb_entries={} fork_from_owner_default={} experimental_zcopytx={} in_order={}\n",
                    kapi::diag::version(),
                    params::max_mem_regions(),
                    params::max_iotlb_entries_raw(),
                    params::fork_from_owner_default(),
                    u8::from(params::experimental_zcopytx()),
                    match params::in_order() {
                        Some(true) => 1,
                        Some(false) => 0,
                        None => -1,
                    },
                );
                Ok(Self { _misc: misc })
            }
            Err(e) => {
                let holder = match kapi::diag::c_vhost_net() {
                    kapi::diag::CModule::Loaded => {
                        "the C vhost_net module is loaded (rmmod vhost_net first)"
                    }
                    kapi::diag::CModule::BuiltIn => {
                        "the C vhost_net is built into this kernel (CONFIG_VHOST_NET=y), which ours cannot replace"
                    }
                    kapi::diag::CModule::Absent => "no C vhost_net is loaded; another driver holds it",
                };
                if e == EBUSY {
                    pr_err!(
                        "cannot register /dev/vhost-net (misc minor 238): error {}: {}\n",
                        e.to_errno(),
                        holder
                    );
                } else {
                    pr_err!(
                        "cannot register /dev/vhost-net (misc minor 238): error {}\n",
                        e.to_errno()
                    );
                }
                Err(e)
            }
        }
    }
}
