// SPDX-License-Identifier: GPL-2.0

//! One open `/dev/vhost-net` (C's `struct vhost_net`): the generic device
//! with net virtqueues, the sockets' polls, and the ioctls vhost-net adds
//! or handles itself (`VHOST_NET_SET_BACKEND`, features, owner, release).
//! The lock order is the generic device's (`vhost::dev`).

use crate::kapi::errno;
use crate::kapi::iov::IovIter;
use crate::kapi::miscdev::MiscDevice;
use crate::kapi::poll::PollTable;
use crate::kapi::poll::{PollEntry, EPOLLIN, EPOLLOUT};
use crate::kapi::socket::Socket;
use crate::kapi::task::{cond_resched, synchronize_rcu, TaskBody, Unpublished};
use crate::kapi::uaccess;
use crate::kapi::xdp::XdpBatch;
use crate::net::vq::{NetCtx, NetVq, HEADS};
use crate::net::zerocopy::ZcRing;
use crate::net::{rx, tx};
use crate::params;
use crate::vcore::features;
use crate::vcore::teardown::{teardown, TeardownHost};
use crate::vcore::uapi::{self, VhostVringFile};
use crate::vcore::validate;
use crate::vhost::dev::{Dev, DevState, NVQS};
use crate::vhost::memmap::GuestMap;
use crate::vhost::worker::{Worker, WORK_RX, WORK_TX};
use kernel::prelude::*;
use kernel::sync::{Arc, ArcBorrow};

/// What `VHOST_GET_FEATURES` offers and `VHOST_SET_FEATURES` accepts:
/// C's `VHOST_NET_FEATURES`, and `VIRTIO_F_IN_ORDER` (which 7.3's C
/// offers and 6.12's does not) when the `in_order` parameter is set.
fn offered_features() -> u64 {
    let in_order = if params::in_order() {
        1u64 << uapi::VIRTIO_F_IN_ORDER
    } else {
        0
    };
    uapi::VHOST_NET_FEATURES | in_order
}

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

    /// `VHOST_SET_FEATURES`.
    fn set_features(&self, value: u64) -> Result<isize> {
        let f = features::set_net_features(value, offered_features()).map_err(errno)?;
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
                drop(nvq);
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
            drop(nvq);
            let tx = self.dev.vq(1);
            // C resets the zerocopy heuristics (`tx_packets`,
            // `tx_zcopy_err`, `tx_flush`) when either ring's backend
            // changes. Lock order: device, then one ring at a time.
            if let Some(z) = tx.lock().zc.as_deref_mut() {
                z.restart();
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
            uapi::VHOST_GET_FEATURES => uaccess::write(arg, &offered_features()).map(|()| 0),
            uapi::VHOST_SET_FEATURES => this.set_features(uaccess::read(arg)?),
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
    fn run(&self) -> bool {
        let worker = self.dev.worker();
        let work = worker.take();
        if work.is_empty() {
            return false;
        }
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
        true
    }

    fn killed(&self) {
        self.dev.worker().kill();
    }
}
