// SPDX-License-Identifier: GPL-2.0

//! The packet handlers the worker runs: TX (guest to socket) and RX
//! (socket to guest).

use crate::dev::VhostNet;
use crate::vq::Vq;
use kernel::sync::Mutex;

/// Runs the TX ring: sends what the guest posted.
pub(crate) fn handle_tx(_dev: &VhostNet, vq: &Mutex<Vq>) {
    let _vq = vq.lock();
}

/// Runs the RX ring: fills the guest's buffers from the socket.
pub(crate) fn handle_rx(_dev: &VhostNet, vq: &Mutex<Vq>) {
    let _vq = vq.lock();
}
