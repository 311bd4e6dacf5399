// SPDX-License-Identifier: GPL-2.0

//! The generic vhost layer (C's `drivers/vhost/vhost.c`): a device with
//! its owner, memory table, dirty log, device IOTLB and worker ([`dev`]),
//! the virtqueue and its vring ioctls ([`vq`]), the owner's memory and
//! guest address translation as a round reaches them ([`access`]), the
//! generic steps of a worker round ([`round`]), the IOTLB message queue
//! ([`iotlb`]), guest memory maps ([`memmap`]) and the work queue
//! ([`worker`]). Nothing here knows vhost-net: `net` builds on it.

pub(crate) mod access;
pub(crate) mod dev;
pub(crate) mod iotlb;
pub(crate) mod memmap;
pub(crate) mod round;
pub(crate) mod vq;
pub(crate) mod worker;
