// SPDX-License-Identifier: GPL-2.0

//! vhost-net on top of the generic layer (C's `drivers/vhost/net.c` on
//! `vhost.c`): the device file and its ioctls ([`device`]), the net
//! virtqueue that embeds the generic one ([`vq`]), and the worker's
//! packet handlers ([`tx`], [`rx`], with zerocopy TX in [`zerocopy`]).
//!
//! The data path takes a [`vq::NetCtx`], the narrow view of the device it
//! needs, never the device itself: `device` calls `tx` and `rx`, not the
//! other way round.

pub(crate) mod device;
pub(crate) mod rx;
pub(crate) mod tx;
pub(crate) mod vq;
pub(crate) mod zerocopy;
