// SPDX-License-Identifier: GPL-2.0

//! One open `/dev/vhost-net` (C's `struct vhost_net`): the generic device
//! with net virtqueues, the sockets' polls, and the ioctls vhost-net adds
//! or handles itself (`VHOST_NET_SET_BACKEND`, features, owner, release).
//! The lock order is the generic device's (`vhost::dev`).

use crate::kapi::diag::SeqFile;
use crate::kapi::errno;
use crate::kapi::iov::IovIter;
use crate::kapi::miscdev::MiscDevice;
use crate::kapi::poll::PollTable;
use crate::kapi::poll::{PollEntry, EPOLLIN, EPOLLOUT};
use crate::kapi::socket::Socket;
use crate::kapi::task::{cond_resched, synchronize_rcu, TaskBody, Unpublished};
use crate::kapi::uaccess;
use crate::kapi::version::CONTRACT;
use crate::kapi::xdp::XdpBatch;
use crate::net::vq::{NetCtx, NetVq, HEADS};
use crate::net::zerocopy::ZcRing;
use crate::net::{rx, tx};
use crate::params;
use crate::vcore::contract::{self, FEATURE_WORDS};
use crate::vcore::diag;
use crate::vcore::errno::Errno;
use crate::vcore::features;
use crate::vcore::teardown::{teardown, TeardownHost};
use crate::vcore::uapi::{self, VhostVringFile};
use crate::vcore::validate;
use crate::vhost::dev::{Dev, DevState, NVQS};
use crate::vhost::memmap::GuestMap;
use crate::vhost::worker::{Worker, WORK_RX, WORK_TX};
use kernel::prelude::*;
use kernel::sync::{Arc, ArcBorrow};

/// One open file of `/dev/vhost-net`.
#[pin_data]
pub(crate) struct VhostNet {
    /// The generic device: owner, memory, log, IOTLB, rings, worker.
    #[pin]
    dev: Dev<NetVq>,
    /// Polls the backend for readable data (C's `n->poll[VHOST_NET_VQ_RX]`).
    #[pin]
    rx_sock: PollEntry<Worker>,
    /// Polls the backend for room to send.
    #[pin]
    tx_sock: PollEntry<Worker>,
}

/// What `cleanup` took from the rings, dropped after the locks are
/// released (the sockets after the worker stopped, as C's release puts
/// them last).
struct Detached {
    _vqs: KVec<NetVq>,
    _socks: [Option<Socket>; 2],
}

/// The steps of [`VhostNet::cleanup`]'s teardown of the worker, in the
/// order of src/vcore/teardown.rs.
struct Teardown<'a> {
    /// The device.
    net: &'a VhostNet,
    /// The worker's task once unpublished, stopped by `stop_task`.
    unpublished: Option<Unpublished>,
    /// The backends taken from the rings (RX, TX), dropped by the caller
    /// outside the locks.
    socks: [Option<Socket>; 2],
}

impl TeardownHost for Teardown<'_> {
    fn detach_rings(&mut self) {
        for index in 0..2 {
            let mut vq = self.net.dev.vq(index).lock();
            self.net.stop_polls(index, &mut vq);
            self.socks[index] = vq.vq.backend.take();
        }
    }

    fn drain_completions(&mut self) {
        self.net.zcopy_flush();
    }

    fn flush(&mut self) {
        self.net.dev.worker().flush();
    }

    fn unpublish_task(&mut self) {
        self.unpublished = self.net.dev.worker().unpublish();
    }

    fn grace_period(&mut self) {
        match &mut self.unpublished {
            Some(task) => task.grace_period(),
            None => synchronize_rcu(),
        }
    }

    fn stop_task(&mut self) {
        drop(self.unpublished.take());
        self.net.dev.worker().task_stopped();
    }
}

impl VhostNet {
    /// The socket poll entry of a ring.
    fn sock_poll(&self, index: usize) -> &PollEntry<Worker> {
        if index == 0 {
            &self.rx_sock
        } else {
            &self.tx_sock
        }
    }

    /// Takes the work the thread's look found and runs its rings, then
    /// completes the flushes it carried. Returns whether it took any (it
    /// does: only this task takes work), so that the thread's loop
    /// tail-calls it; a constant `true` after the call kept a register
    /// across it.
    #[inline(never)]
    fn round(&self) -> bool {
        let worker = self.dev.worker();
        let work = worker.take_found();
        // As C's worker, yield between work items: a ring that requeues
        // itself (weights, a socket that is always writable) must not keep
        // a non-preemptible kernel's CPU.
        if work.has(WORK_RX) {
            rx::handle_rx(self.ctx(0), self.dev.vq(0));
            cond_resched();
        }
        if work.has(WORK_TX) {
            tx::handle_tx(self.ctx(1), self.dev.vq(1));
            cond_resched();
        }
        worker.done(&work);
        !work.is_empty()
    }

    /// What the packet handlers of ring `index` need.
    fn ctx(&self, index: usize) -> NetCtx<'_> {
        NetCtx {
            dev: self.dev.ctx(),
            sock_poll: self.sock_poll(index),
        }
    }

    /// Stops every poll of ring `index`, whose mutex the caller holds (the
    /// guard proves it).
    fn stop_polls(&self, index: usize, vq: &mut NetVq) {
        self.dev.stop_kick(index, vq);
        self.sock_poll(index).stop(&mut vq.sock_owner);
    }

    /// `VHOST_SET_OWNER`: the generic owner and worker, and the TX ring's
    /// batch and zerocopy state.
    /// The worker thread holds a reference on the device until `release`
    /// (or `VHOST_RESET_OWNER`) stops it in `cleanup`.
    fn set_owner(this: ArcBorrow<'_, VhostNet>) -> Result<isize> {
        let body: Arc<VhostNet> = this.into();
        let worker = this.dev.worker_arc();
        this.dev.set_owner(
            body,
            HEADS,
            || {
                // A batch on each ring, so that a round need not ask
                // (only TX fills it).
                let (rx_xdp, tx_xdp) = (XdpBatch::new()?, XdpBatch::new()?);
                // C allocates its zerocopy slots here too
                // (`vhost_net_set_ubuf_info`).
                let zc = if params::experimental_zcopytx() {
                    Some(ZcRing::new(worker.clone())?)
                } else {
                    None
                };
                Ok([(rx_xdp, None), (tx_xdp, zc)])
            },
            |vq, zc| vq.zc = zc,
        )
    }

    /// Waits until the socket has released every packet sent without
    /// copying (C's `vhost_net_flush` for the TX ring's ubufs); no new one
    /// is sent meanwhile. Callers hold the device mutex, which serialises
    /// flushes.
    fn zcopy_flush(&self) {
        let tx = self.dev.vq(1);
        let zc = {
            let mut tx = tx.lock();
            let Some(z) = tx.zc.as_deref_mut() else {
                return;
            };
            z.flushing = true;
            z.zc.clone()
        };
        zc.drain();
        if let Some(z) = tx.lock().zc.as_deref_mut() {
            z.flushing = false;
        }
    }

    /// Brings every ring and the device back to their state after `open`
    /// (C's `vhost_net_stop`, `vhost_net_flush`, `vhost_dev_cleanup` and
    /// `vhost_net_vq_reset`), leaving `umem` as given. Returns what must be
    /// dropped outside the locks.
    ///
    /// The order (src/vcore/teardown.rs, model-checked by the host tests)
    /// is what keeps the worker's wakers from outliving it:
    /// 1. each ring loses its polls and its backend (under its mutex, so
    ///    after any round in progress; `stopping` ends a busy poll first):
    ///    from then on a round sends and receives nothing, so no zerocopy
    ///    packet is armed any more;
    /// 2. the zerocopy packets in flight are drained (every completion has
    ///    run, `Zcopy::drain`), and the worker runs what they queued;
    /// 3. the task is unpublished, then an RCU grace period passes: a
    ///    completion runs in an RCU read-side section, so one that loaded
    ///    the task before it was cleared has returned; poll callbacks were
    ///    removed in step 1 under their wait queues' locks;
    /// 4. only then is the task stopped and freed.
    fn cleanup(&self, dev: &mut DevState, umem: Option<Arc<GuestMap>>) -> Detached {
        self.dev.set_stopping(true);
        let mut steps = Teardown {
            net: self,
            unpublished: None,
            socks: [None, None],
        };
        teardown(&mut steps);
        let socks = steps.socks;
        let vqs = self.dev.reset(dev, umem);
        self.dev.set_stopping(false);
        Detached {
            _vqs: vqs,
            _socks: socks,
        }
    }

    /// `VHOST_RESET_OWNER`: back to the state right after `open`, with an
    /// empty memory table.
    fn reset_owner(&self) -> Result<isize> {
        let garbage = {
            let mut dev = self.dev.state().lock();
            let umem = Dev::<NetVq>::reset_owner_prepare(&dev)?;
            self.cleanup(&mut dev, Some(umem))
        };
        drop(garbage);
        Ok(0)
    }

    /// `VHOST_SET_FEATURES` (word 0, the others 0) and
    /// `VHOST_SET_FEATURES_ARRAY`.
    fn set_features(&self, words: &[u64; FEATURE_WORDS]) -> Result<isize> {
        let f = features::set_net_features(words, &offered_features()).map_err(errno)?;
        self.dev
            .set_features(f.features, f.needs_log_check, f.iotlb, |vq| {
                vq.vhost_hlen = f.vhost_hlen;
                vq.sock_hlen = f.sock_hlen;
            })
    }

    /// `VHOST_NET_SET_BACKEND`: attach, replace or (fd -1) detach the
    /// socket of a ring.
    fn set_backend(&self, index: u32, fd: i32) -> Result<isize> {
        let old;
        {
            let dev = self.dev.state().lock();
            Dev::<NetVq>::check_owner(&dev)?;
            let index = validate::vring_index(index, NVQS).map_err(errno)?;
            let mut nvq = self.dev.vq(index).lock();
            if fd == -1 {
                self.dev.msgs().clear();
            }
            if !nvq.vq.access_ok() {
                return Err(EFAULT);
            }
            let sock = if fd == -1 {
                None
            } else {
                let mut s = Socket::lookup(fd)?;
                if index == 0 {
                    s.batch_rx()?;
                }
                Some(s)
            };
            let same = match (&nvq.vq.backend, &sock) {
                (Some(a), Some(b)) => a.same(b),
                (None, None) => true,
                _ => false,
            };
            if same {
                // The new reference goes; the ring keeps the one it has.
                // Over a backend C still flushes (`if (oldsock)`): work
                // queued before the call has run when it returns.
                drop(nvq);
                if sock.is_some() {
                    self.dev.worker().flush();
                }
                drop(dev);
                drop(sock);
                return Ok(0);
            }
            let poll = self.sock_poll(index);
            poll.stop(&mut nvq.sock_owner);
            let prev = core::mem::replace(&mut nvq.vq.backend, sock);
            let started = self
                .dev
                .init_access(&mut nvq.vq, index)
                .and_then(|()| Self::enable_vq(poll, &mut nvq));
            if let Err(e) = started {
                // Put the old backend back (and poll it again); the new
                // one is dropped.
                poll.stop(&mut nvq.sock_owner);
                let _new = core::mem::replace(&mut nvq.vq.backend, prev);
                let _ = Self::enable_vq(poll, &mut nvq);
                return Err(e);
            }
            old = prev;
            // C resets the zerocopy heuristics (`tx_packets`,
            // `tx_zcopy_err`, `tx_flush`) when either ring's backend
            // changes, under the mutex that installs the socket: for the
            // TX ring, before a round can run on the new socket (its poll
            // may have queued one already).
            if let Some(z) = nvq.zc.as_deref_mut() {
                z.restart();
            }
            drop(nvq);
            let tx = self.dev.vq(1);
            if index == 0 {
                // Lock order: device, then one ring at a time.
                if let Some(z) = tx.lock().zc.as_deref_mut() {
                    z.restart();
                }
            }
            if old.is_some() {
                self.dev.worker().flush();
            }
            if index == 1 {
                // Packets the old socket still holds: wait for them and
                // give their chains back (C waits for the old ubufs here).
                self.zcopy_flush();
                tx::zerocopy_signal_used(&self.ctx(1), &mut tx.lock());
            }
        }
        drop(old);
        Ok(0)
    }

    /// `vhost_net_enable_vq`: polls the ring's socket. A socket that
    /// reports an error when first polled (for example a tun file not
    /// attached to a device) is refused with `EINVAL`.
    fn enable_vq(poll: &PollEntry<Worker>, nvq: &mut NetVq) -> Result {
        let NetVq { vq, sock_owner, .. } = nvq;
        let Some(sock) = &vq.backend else {
            return Ok(());
        };
        poll.start(sock_owner, sock)
    }
}

/// The feature words this device offers: `VHOST_GET_FEATURES` (word 0),
/// `VHOST_GET_FEATURES_ARRAY`, and what the `SET` ioctls accept.
///
/// The kernel's C answer (`CONTRACT.features`), plus any bit a module
/// parameter opts into beyond it (Documentation/differences.rst, "By
/// kernel"). This is the one place such parameters join the offer.
pub(crate) fn offered_features() -> [u64; FEATURE_WORDS] {
    let mut words = CONTRACT.features;
    // `in_order`: VIRTIO_F_IN_ORDER (7.3's C offers it, 6.12's does not).
    match params::in_order() {
        Some(true) => words[0] |= 1 << uapi::VIRTIO_F_IN_ORDER,
        Some(false) => words[0] &= !(1 << uapi::VIRTIO_F_IN_ORDER),
        None => {}
    }
    words
}

/// `VHOST_GET_FEATURES_ARRAY` (C's `vhost_net_ioctl`): reads the count,
/// writes the first `min(count, FEATURE_WORDS)` offered words after it,
/// then zeroes the rest of the user's `count` words (`clear_user`: nothing
/// when the whole tail is not a user range). Any failed access is
/// `EFAULT`, after what was written before it. No owner is needed.
fn get_features_array(arg: usize) -> Result<isize> {
    let count: u64 = uaccess::read(arg)?;
    let words = offered_features();
    let copied = contract::array_words(count);
    let base = (arg as u64).wrapping_add(8);
    let mut bytes = [0u8; 8 * FEATURE_WORDS];
    for (chunk, w) in bytes.chunks_exact_mut(8).zip(words.iter()) {
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    uaccess::copy_to_user(base, &bytes[..8 * copied])?;
    let tail = base.wrapping_add(8 * copied as u64);
    let mut left = contract::array_tail_bytes(count);
    if !uaccess::access_ok(tail, left) {
        return Err(EFAULT);
    }
    const ZEROS: [u8; 64] = [0; 64];
    let mut at = tail;
    while left > 0 {
        let n = left.min(ZEROS.len() as u64);
        // `n <= 64`.
        uaccess::copy_to_user(at, &ZEROS[..n as usize])?;
        at = at.wrapping_add(n);
        left -= n;
    }
    Ok(0)
}

/// `VHOST_SET_FEATURES_ARRAY`'s words (C's `vhost_net_ioctl`): the count,
/// the first `min(count, FEATURE_WORDS)` words, then each further word the
/// user claims, which must be 0 (`EOPNOTSUPP` at the first that is not;
/// `EFAULT` at the first that cannot be read). The caller checks the bits
/// against the offer.
fn read_features_array(arg: usize) -> Result<[u64; FEATURE_WORDS]> {
    let count: u64 = uaccess::read(arg)?;
    let copied = contract::array_words(count);
    let base = (arg as u64).wrapping_add(8);
    let mut bytes = [0u8; 8 * FEATURE_WORDS];
    uaccess::copy_from_user(base, &mut bytes[..8 * copied])?;
    let mut words = [0u64; FEATURE_WORDS];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *w = u64::from_ne_bytes(b);
    }
    let mut i = copied as u64;
    while i < count {
        let mut b = [0u8; 8];
        uaccess::copy_from_user(base.wrapping_add(i.wrapping_mul(8)), &mut b)?;
        if u64::from_ne_bytes(b) != 0 {
            return Err(errno(Errno::EOPNOTSUPP));
        }
        i += 1;
        // C reads on without a break; a count of many zero words must not
        // hold the CPU (this changes no answer).
        if i % 4096 == 0 {
            cond_resched();
        }
    }
    Ok(words)
}

impl MiscDevice for VhostNet {
    type Ptr = Arc<VhostNet>;

    fn open() -> Result<Arc<VhostNet>> {
        let worker = Arc::pin_init(Worker::new(), GFP_KERNEL)?;
        let (w0, w1) = (worker.clone(), worker.clone());
        Arc::pin_init(
            pin_init!(VhostNet {
                dev <- Dev::new(worker),
                rx_sock <- PollEntry::new(EPOLLIN, WORK_RX, w0),
                tx_sock <- PollEntry::new(EPOLLOUT, WORK_TX, w1),
            }),
            GFP_KERNEL,
        )
    }

    fn read_iter(
        this: ArcBorrow<'_, VhostNet>,
        iter: &mut IovIter<'_>,
        nonblock: bool,
    ) -> Result<isize> {
        this.dev.msgs().read(iter, nonblock)
    }

    fn write_iter(this: ArcBorrow<'_, VhostNet>, iter: &mut IovIter<'_>) -> Result<isize> {
        this.dev.write_msg(iter)
    }

    fn poll(this: ArcBorrow<'_, VhostNet>, table: &PollTable<'_>) -> u32 {
        this.dev.msgs().poll(table)
    }

    /// One line of counters per ring (C shows nothing): see
    /// src/vcore/diag.rs and Documentation/usage.rst. The counters are
    /// read without a lock, each once: a snapshot, not a consistent cut.
    fn show_fdinfo(this: ArcBorrow<'_, VhostNet>, m: &mut SeqFile<'_>) {
        for index in 0..2 {
            let mut s = this.dev.ctx().stats[index].snapshot();
            s.kicks = this.dev.kicks(index);
            let _ = diag::write_vq_line(m, index, &s);
        }
    }

    fn release(device: Arc<VhostNet>) {
        let garbage = {
            let mut dev = device.dev.state().lock();
            device.cleanup(&mut dev, None)
        };
        drop(garbage);
    }

    fn ioctl(this: ArcBorrow<'_, VhostNet>, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            uapi::VHOST_NET_SET_BACKEND => {
                let f: VhostVringFile = uaccess::read(arg)?;
                this.set_backend(f.index, f.fd)
            }
            uapi::VHOST_GET_FEATURES => uaccess::write(arg, &offered_features()[0]).map(|()| 0),
            uapi::VHOST_SET_FEATURES => {
                let mut words = [0u64; FEATURE_WORDS];
                words[0] = uaccess::read(arg)?;
                this.set_features(&words)
            }
            uapi::VHOST_GET_FEATURES_ARRAY if CONTRACT.features_array => get_features_array(arg),
            uapi::VHOST_SET_FEATURES_ARRAY if CONTRACT.features_array => {
                this.set_features(&read_features_array(arg)?)
            }
            uapi::VHOST_GET_BACKEND_FEATURES => {
                uaccess::write(arg, &uapi::VHOST_NET_BACKEND_FEATURES).map(|()| 0)
            }
            uapi::VHOST_SET_BACKEND_FEATURES => {
                let value =
                    features::set_net_backend_features(uaccess::read(arg)?).map_err(errno)?;
                this.dev.set_backend_features(value)
            }
            uapi::VHOST_RESET_OWNER => this.reset_owner(),
            uapi::VHOST_SET_OWNER => VhostNet::set_owner(this),
            _ => this.dev.locked_ioctl(cmd, arg, || this.zcopy_flush()),
        }
    }
}

impl TaskBody for VhostNet {
    // Inlined into the thread's loop: a look that finds no work (about
    // half the calls when the worker sleeps between packets) costs a load
    // and a compare, without the round's frame (make profile: the
    // latency round trip called this 3.7 times, 1.7 of them for nothing).
    #[inline(always)]
    fn run(&self) -> bool {
        if !self.dev.worker().has_pending() {
            return false;
        }
        self.round()
    }

    fn killed(&self) {
        self.dev.worker().kill();
    }
}
