// SPDX-License-Identifier: GPL-2.0

//! The virtqueue's rings, as the device side sees them.
//!
//! - [`desc`]: the formats of a descriptor and of a used element;
//! - [`access`]: what the kernel provides to the ring: the owner's memory
//!   and the translation of guest addresses;
//! - [`chain`]: taking a descriptor chain (direct and indirect
//!   descriptors), the budget of descriptor reads, logging a used chain;
//! - [`split`]: the split ring (virtio 1.x section 2.7): the available and
//!   used rings, their indices, notification in both directions, and the
//!   memory ordering the driver and the device share.
//!
//! A packed ring (`VIRTIO_F_RING_PACKED`) would be a file beside `split`,
//! with its own descriptor format: the [`chain::Chain::descs`] count is what
//! packed and in-order rings need to know which descriptors a used element
//! gives back.

pub(crate) mod access;
pub(crate) mod chain;
pub(crate) mod desc;
pub(crate) mod split;
