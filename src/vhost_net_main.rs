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
            Ok(misc) => Ok(Self { _misc: misc }),
            Err(e) => {
                pr_err!(
                    "cannot register /dev/vhost-net (misc minor 238): error {}; is the C vhost_net loaded?\n",
                    e.to_errno()
                );
                Err(e)
            }
        }
    }
}
