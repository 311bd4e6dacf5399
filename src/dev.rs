// SPDX-License-Identifier: GPL-2.0

//! One open `/dev/vhost-net`: the device state machine and the ioctl
//! dispatcher, with the C module's semantics, errno for errno.
//!
//! # Lock order
//!
//! `VhostNet::dev` (C's `dev->mutex`) first, then the virtqueue mutexes
//! (C's `vq->mutex`) in index order: RX (0) before TX (1); then, as leaves
//! (no other mutex of ours is taken while one is held), the device IOTLB's
//! mutex (`Iotlb`) and the IOTLB message lists' (`Msgs`). Both virtqueue
//! mutexes are held together only by `write_msg` (C's
//! `vhost_dev_lock_vqs`), so that an IOTLB message waits for a worker round
//! in progress. A worker round holds its ring's mutex from its first
//! translation to its last copy, and takes the IOTLB's mutex only around
//! each translation and the lists' to queue a miss; it never takes the
//! other ring's mutex or the device mutex. Nothing else is taken inside a
//! virtqueue mutex except the eventfd and socket internals (and the
//! owner's `mmap_lock`, on a fault in a user copy).
//!
//! References that may sleep or call back into us when dropped (eventfds,
//! sockets, memory maps) are dropped after the locks are released where the
//! C module does so too.

use crate::iotlb::{new_iotlb, Iotlb, Msgs};
use crate::kapi::errno;
use crate::kapi::eventfd::{EventFdCtx, EventFdFile};
use crate::kapi::iov::IovIter;
use crate::kapi::miscdev::MiscDevice;
use crate::kapi::mm::MmRef;
use crate::kapi::poll::{PollEntry, EPOLLIN, EPOLLOUT};
use crate::kapi::socket::Socket;
use crate::kapi::task::{
    cond_resched, current_pid, synchronize_rcu, Kthread, TaskBody, VhostTask, WorkerThread,
};
use crate::kapi::uaccess;
use crate::mem::{new_map, GuestMap};
use crate::net::{Scratch, ZcRing};
use crate::params;
use crate::vcore::errno::Errno;
use crate::vcore::features::{self, IotlbAction, SET_FEATURES_FAILED};
use crate::vcore::iotlb_msg::{self, IotlbOutcome};
use crate::vcore::memory::intervalmap::{Piece, TranslateError, PERM_RO};
use crate::vcore::teardown::{teardown, TeardownHost};
use crate::vcore::uapi::{self, VhostMemory, VhostMemoryRegion, VhostVringAddr, VhostVringFile};
use crate::vcore::uapi::{VhostVringState, VHOST_FILE_UNBIND};
use crate::vcore::validate;
use crate::vq::{memory_access_ok, Vq};
use crate::worker::{Worker, WORK_RX, WORK_TX};
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::{Arc, ArcBorrow, Mutex};

/// Number of virtqueues of a vhost-net device: RX (0) and TX (1).
const NVQS: u32 = validate::NET_VQ_MAX;

/// The device-wide state, under the device mutex.
struct DevState {
    /// The owner's address space, set by `VHOST_SET_OWNER`.
    owner: Option<MmRef>,
    /// Whether the worker will be a task of the owner (else a kthread).
    fork_owner: bool,
    /// The memory table; `None` until the first `VHOST_SET_MEM_TABLE`
    /// (and an empty table after `VHOST_RESET_OWNER`, as in C).
    umem: Option<Arc<GuestMap>>,
    /// The device IOTLB, present while `VIRTIO_F_ACCESS_PLATFORM` is acked.
    iotlb: Option<Arc<Iotlb>>,
    /// The dirty-log eventfd (`VHOST_SET_LOG_FD`).
    log_ctx: Option<Arc<EventFdCtx>>,
    /// The worker thread, from `VHOST_SET_OWNER` on.
    task: Option<WorkerThread>,
}

impl DevState {
    const fn new() -> Self {
        Self {
            owner: None,
            fork_owner: true,
            umem: None,
            iotlb: None,
            log_ctx: None,
            task: None,
        }
    }
}

/// One open file of `/dev/vhost-net`.
#[pin_data]
pub(crate) struct VhostNet {
    /// The device mutex: serialises the control plane.
    #[pin]
    dev: Mutex<DevState>,
    /// The receive queue (index 0).
    #[pin]
    rx: Mutex<Vq>,
    /// The transmit queue (index 1).
    #[pin]
    tx: Mutex<Vq>,
    /// IOTLB messages for userspace (`read`/`poll` on the fd).
    #[pin]
    msgs: Msgs,
    /// Pending work and flushing; the poll entries point at it.
    worker: Arc<Worker>,
    /// Set while `cleanup` detaches the rings: a round in a busy poll stops
    /// spinning, so release waits for no busy-loop timeout (C's does).
    stopping: AtomicBool,
    /// Polls the RX kick eventfd (C's `vq->poll`).
    #[pin]
    rx_kick: PollEntry<Worker>,
    /// Polls the TX kick eventfd.
    #[pin]
    tx_kick: PollEntry<Worker>,
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
    _vqs: KVec<Vq>,
    _socks: [Option<Socket>; 2],
}

/// The steps of [`VhostNet::cleanup`]'s teardown of the worker, in the
/// order of src/core/teardown.rs.
struct Teardown<'a> {
    /// The device.
    net: &'a VhostNet,
    /// The worker's task (the device's, under the device mutex).
    task: &'a mut Option<WorkerThread>,
    /// The backends taken from the rings (RX, TX), dropped by the caller
    /// outside the locks.
    socks: [Option<Socket>; 2],
}

impl TeardownHost for Teardown<'_> {
    fn detach_rings(&mut self) {
        for (index, m) in [&self.net.rx, &self.net.tx].into_iter().enumerate() {
            let mut vq = m.lock();
            self.net.stop_polls(index, &mut vq);
            self.socks[index] = vq.backend.take();
        }
    }

    fn drain_completions(&mut self) {
        self.net.zcopy_flush();
    }

    fn flush(&mut self) {
        self.net.worker.flush();
    }

    fn unpublish_task(&mut self) {
        self.net.worker.set_task(core::ptr::null_mut(), false);
    }

    fn grace_period(&mut self) {
        synchronize_rcu();
    }

    fn stop_task(&mut self) {
        drop(self.task.take());
    }
}

/// What a virtqueue ioctl has to release after the locks are dropped.
#[derive(Default)]
struct Garbage {
    ctx: Option<EventFdCtx>,
    file: Option<EventFdFile>,
    /// A poll was stopped: flush the worker before dropping its file.
    flush: bool,
}

impl VhostNet {
    /// The virtqueue with a checked index.
    fn vq(&self, index: usize) -> &Mutex<Vq> {
        if index == 0 {
            &self.rx
        } else {
            &self.tx
        }
    }

    /// The kick poll entry of a ring.
    fn kick_poll(&self, index: usize) -> &PollEntry<Worker> {
        if index == 0 {
            &self.rx_kick
        } else {
            &self.tx_kick
        }
    }

    /// The worker's queue.
    pub(crate) fn worker(&self) -> &Worker {
        &self.worker
    }

    /// Whether the device is being torn down: a busy poll ends at once.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// The IOTLB message queues.
    pub(crate) fn msgs(&self) -> &Msgs {
        &self.msgs
    }

    /// The socket poll entry of a ring.
    pub(crate) fn sock_poll(&self, index: usize) -> &PollEntry<Worker> {
        if index == 0 {
            &self.rx_sock
        } else {
            &self.tx_sock
        }
    }

    /// Stops every poll of ring `index`, whose mutex the caller holds (the
    /// guard proves it).
    fn stop_polls(&self, index: usize, _vq: &mut Vq) {
        // SAFETY: Serialised by the ring's mutex; the files are still
        // referenced by the ring.
        unsafe {
            self.kick_poll(index).stop();
            self.sock_poll(index).stop();
        }
    }

    /// Runs `f` on every virtqueue, each under its own mutex, in index
    /// order, like the C module's loops over `dev->vqs`. The worker's ring
    /// state follows what `f` configured before the mutex is released.
    fn for_each_vq(&self, mut f: impl FnMut(&mut Vq)) {
        for m in [&self.rx, &self.tx] {
            let mut vq = m.lock();
            f(&mut vq);
            vq.sync_ring();
        }
    }

    /// The C module's `vhost_dev_check_owner`: only the owner's address
    /// space may configure the device.
    fn check_owner(dev: &DevState) -> Result {
        match &dev.owner {
            Some(mm) if mm.is_current() => Ok(()),
            _ => Err(EPERM),
        }
    }

    /// `VHOST_SET_OWNER`: the caller's address space becomes the owner.
    fn set_owner(&self) -> Result<isize> {
        let mut dev = self.dev.lock();
        if dev.owner.is_some() {
            return Err(EBUSY);
        }
        // Only a kernel thread has no mm, and it cannot reach an fd's ioctl.
        let mm = MmRef::current().ok_or(EINVAL)?;
        let name = CString::try_from_fmt(kernel::fmt!("vhost-{}", current_pid()))?;
        let rx_scratch = Scratch::new()?;
        let tx_scratch = Scratch::new()?;
        // C allocates its zerocopy slots here too (`vhost_net_set_ubuf_info`).
        let tx_zc = if params::experimental_zcopytx() {
            Some(ZcRing::new(self.worker.clone())?)
        } else {
            None
        };
        let body = self as *const VhostNet;
        let task = if dev.fork_owner {
            // SAFETY: `self` lives in an `Arc` that the file holds until
            // `release`, and `release` stops the thread (in `cleanup`) first.
            WorkerThread::Task(unsafe { VhostTask::start(body, &name) }?)
        } else {
            // SAFETY: As above; the mm is referenced by `dev.owner` until
            // the thread is stopped, too.
            WorkerThread::Kthread(unsafe { Kthread::start(body, mm.as_ptr(), &name) }?)
        };
        self.rx.lock().scratch = Some(rx_scratch);
        {
            let mut tx = self.tx.lock();
            tx.scratch = Some(tx_scratch);
            tx.zc = tx_zc;
        }
        let (raw, kthread) = task.raw();
        self.worker.set_task(raw, kthread);
        dev.task = Some(task);
        dev.owner = Some(mm);
        Ok(0)
    }

    /// Waits until the socket has released every packet sent without
    /// copying (C's `vhost_net_flush` for the TX ring's ubufs); no new one
    /// is sent meanwhile. Callers hold the device mutex, which serialises
    /// flushes.
    fn zcopy_flush(&self) {
        let zc = {
            let mut tx = self.tx.lock();
            let Some(z) = tx.zc.as_deref_mut() else {
                return;
            };
            z.flushing = true;
            z.zc.clone()
        };
        zc.drain();
        if let Some(z) = self.tx.lock().zc.as_deref_mut() {
            z.flushing = false;
        }
    }

    /// Brings every ring and the device back to their state after `open`
    /// (C's `vhost_net_stop`, `vhost_net_flush`, `vhost_dev_cleanup` and
    /// `vhost_net_vq_reset`), leaving `umem` as given. Returns what must be
    /// dropped outside the locks.
    ///
    /// The order (src/core/teardown.rs, model-checked by the host tests)
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
        self.stopping.store(true, Ordering::Relaxed);
        let mut steps = Teardown {
            net: self,
            task: &mut dev.task,
            socks: [None, None],
        };
        teardown(&mut steps);
        let socks = steps.socks;
        let mut old = KVec::new();
        self.for_each_vq(|vq| {
            let mut fresh = Vq::new();
            fresh.umem = umem.clone();
            let prev = core::mem::replace(vq, fresh);
            // Pushing cannot fail for want of memory here in practice, but
            // if it did, dropping under the lock is still correct, only
            // slower for whoever waits.
            let _ = old.push(prev, GFP_KERNEL);
        });
        dev.log_ctx = None;
        dev.umem = umem;
        dev.iotlb = None;
        dev.owner = None;
        dev.fork_owner = params::fork_from_owner_default();
        self.msgs.set_iotlb_on(false);
        self.msgs.clear();
        self.msgs.wake();
        self.stopping.store(false, Ordering::Relaxed);
        Detached {
            _vqs: old,
            _socks: socks,
        }
    }

    /// `VHOST_RESET_OWNER`: back to the state right after `open`, with an
    /// empty memory table.
    fn reset_owner(&self) -> Result<isize> {
        let garbage;
        {
            let mut dev = self.dev.lock();
            Self::check_owner(&dev)?;
            // C builds the empty table first (vhost_dev_reset_owner_prepare)
            // with iotlb_alloc, which has none to give when
            // max_iotlb_entries is not positive: ENOMEM, nothing reset.
            if !params::valid_max_iotlb_entries() {
                return Err(ENOMEM);
            }
            let umem = Arc::new(new_map(0)?, GFP_KERNEL)?;
            garbage = self.cleanup(&mut dev, Some(umem));
        }
        drop(garbage);
        Ok(0)
    }

    /// `VHOST_SET_FEATURES`.
    fn set_features(&self, value: u64) -> Result<isize> {
        let f = features::set_net_features(value).map_err(errno)?;
        let mut dev = self.dev.lock();
        if f.needs_log_check && !self.log_access_ok(&dev) {
            return Err(errno(SET_FEATURES_FAILED));
        }
        match f.iotlb {
            IotlbAction::Init => {
                // A second ack replaces the IOTLB with an empty one, as C's
                // vhost_init_device_iotlb does.
                if !params::valid_max_iotlb_entries() {
                    return Err(errno(SET_FEATURES_FAILED));
                }
                let iotlb = new_iotlb().map_err(|_| errno(SET_FEATURES_FAILED))?;
                // The first IOTLB turns ring addresses into IOVAs: the old
                // ones mean nothing any more (C's vhost_vq_invalidate_access).
                let first = dev.iotlb.is_none();
                let _old = dev.iotlb.replace(iotlb.clone());
                self.for_each_vq(|vq| {
                    vq.iotlb = Some(iotlb.clone());
                    if first {
                        vq.invalidate_access();
                    }
                });
                self.msgs.set_iotlb_on(true);
            }
            IotlbAction::Clear => {
                if let Some(old) = dev.iotlb.take() {
                    self.for_each_vq(|vq| {
                        vq.iotlb = None;
                        vq.invalidate_access();
                    });
                    self.msgs.set_iotlb_on(false);
                    self.msgs.clear();
                    drop(old);
                    self.msgs.wake();
                }
            }
        }
        self.for_each_vq(|vq| {
            vq.acked_features = f.features;
            vq.vhost_hlen = f.vhost_hlen;
            vq.sock_hlen = f.sock_hlen;
        });
        Ok(0)
    }

    /// `vhost_log_access_ok`: with logging of all memory, every active ring
    /// can log every region.
    fn log_access_ok(&self, dev: &DevState) -> bool {
        self.memory_access_ok(dev.umem.as_deref(), true)
    }

    /// `memory_access_ok`: `umem` is acceptable to every active ring.
    fn memory_access_ok(&self, umem: Option<&GuestMap>, log_all: bool) -> bool {
        let mut ok = true;
        self.for_each_vq(|vq| {
            if ok && vq.backend.is_some() {
                let log = log_all || vq.has_feature(uapi::VHOST_F_LOG_ALL);
                ok = memory_access_ok(vq.log_base, umem, log);
            }
        });
        ok
    }

    /// `VHOST_SET_BACKEND_FEATURES`.
    fn set_backend_features(&self, value: u64) -> Result<isize> {
        let value = features::set_net_backend_features(value).map_err(errno)?;
        let _dev = self.dev.lock();
        self.for_each_vq(|vq| vq.acked_backend_features = value);
        Ok(0)
    }

    /// `VHOST_SET_MEM_TABLE`.
    fn set_mem_table(&self, dev: &mut DevState, arg: usize) -> Result<isize> {
        let hdr: VhostMemory = uaccess::read(arg)?;
        let n = validate::mem_table_header(&hdr, params::max_mem_regions()).map_err(errno)?;
        if !params::valid_max_iotlb_entries() {
            return Err(EINVAL);
        }
        let n = n as usize;
        let mut regions = KVec::<VhostMemoryRegion>::with_capacity(n, GFP_KERNEL)?;
        // `arg` is the process's: a region past the end of the address
        // space cannot be read (`EFAULT`); `i * size` is below 2^16 * 32.
        let base = arg.checked_add(core::mem::size_of::<VhostMemory>());
        for i in 0..n {
            let size = core::mem::size_of::<VhostMemoryRegion>();
            let at = base.and_then(|b| b.checked_add(i * size)).ok_or(EFAULT)?;
            let r = uaccess::read(at)?;
            regions.push(r, GFP_KERNEL)?;
        }
        let mut map = new_map(n)?;
        validate::fill_mem_table(&mut map, regions.as_slice()).map_err(errno)?;
        if !self.memory_access_ok(Some(&map), false) {
            return Err(EFAULT);
        }
        let map = Arc::new(map, GFP_KERNEL)?;
        let _old = dev.umem.replace(map.clone());
        self.for_each_vq(|vq| vq.umem = Some(map.clone()));
        Ok(0)
    }

    /// `VHOST_SET_LOG_BASE`: every ring takes the new base unless it is
    /// active and cannot log there; then the ioctl fails with `EFAULT` but
    /// the other rings keep the new base, as in C.
    fn set_log_base(&self, arg: usize) -> Result<isize> {
        let base: u64 = uaccess::read(arg)?;
        let base = validate::user_ulong(base).map_err(errno)?;
        let mut r = Ok(0);
        self.for_each_vq(|vq| {
            if vq.backend.is_some() && !vq.log_access_ok(base) {
                r = Err(EFAULT);
            } else {
                vq.log_base = base;
            }
        });
        r
    }

    /// `VHOST_SET_LOG_FD`.
    fn set_log_fd(&self, dev: &mut DevState, arg: usize) -> Result<isize> {
        let fd: i32 = uaccess::read(arg)?;
        let ctx = if fd == VHOST_FILE_UNBIND {
            None
        } else {
            Some(Arc::new(EventFdCtx::fdget(fd)?, GFP_KERNEL)?)
        };
        let _old = core::mem::replace(&mut dev.log_ctx, ctx);
        let shared = dev.log_ctx.clone();
        self.for_each_vq(|vq| vq.log_ctx = shared.clone());
        Ok(0)
    }

    /// The device ioctls handled under the device mutex (C's
    /// `vhost_dev_ioctl`); `None` when `cmd` is not one of them.
    fn dev_ioctl(&self, dev: &mut DevState, cmd: u32, arg: usize) -> Option<Result<isize>> {
        match cmd {
            uapi::VHOST_SET_FORK_FROM_OWNER => {
                return Some((|| {
                    if dev.owner.is_some() {
                        return Err(EBUSY);
                    }
                    let v: u8 = uaccess::read(arg)?;
                    dev.fork_owner = validate::set_fork_from_owner(false, v).map_err(errno)?;
                    Ok(0)
                })());
            }
            uapi::VHOST_GET_FORK_FROM_OWNER => {
                let v = validate::get_fork_from_owner(dev.fork_owner);
                return Some(uaccess::write(arg, &v).map(|()| 0));
            }
            _ => {}
        }
        if let Err(e) = Self::check_owner(dev) {
            return Some(Err(e));
        }
        Some(match cmd {
            uapi::VHOST_SET_MEM_TABLE => self.set_mem_table(dev, arg),
            uapi::VHOST_SET_LOG_BASE => self.set_log_base(arg),
            uapi::VHOST_SET_LOG_FD => self.set_log_fd(dev, arg),
            _ => return None,
        })
    }

    /// The per-virtqueue ioctls (C's `vhost_vring_ioctl`). The worker's
    /// ring state follows the configuration before the ring mutex is
    /// released, so a round need not check it.
    fn vring_ioctl(&self, cmd: u32, arg: usize, garbage: &mut Garbage) -> Result<isize> {
        let index: u32 = uaccess::read(arg)?;
        let index = validate::vring_index(index, NVQS).map_err(errno)?;
        let mut vq = self.vq(index).lock();
        let r = self.vring_cmd(&mut vq, index, cmd, arg, garbage);
        vq.sync_ring();
        r
    }

    /// One per-virtqueue ioctl on ring `index`, whose mutex the caller
    /// holds.
    fn vring_cmd(
        &self,
        vq: &mut Vq,
        index: usize,
        cmd: u32,
        arg: usize,
        garbage: &mut Garbage,
    ) -> Result<isize> {
        match cmd {
            uapi::VHOST_SET_VRING_NUM => {
                if vq.backend.is_some() {
                    return Err(EBUSY);
                }
                let s: VhostVringState = uaccess::read(arg)?;
                vq.num = validate::set_vring_num(false, s.num).map_err(errno)?;
                Ok(0)
            }
            uapi::VHOST_SET_VRING_ADDR => {
                let a: VhostVringAddr = uaccess::read(arg)?;
                let a = validate::set_vring_addr(&a).map_err(errno)?;
                if vq.backend.is_some() {
                    if !vq.rings_access_ok(vq.num, a.desc, a.avail, a.used)
                        || !vq.log_used_access_ok(vq.log_base, a.log_used, a.log_addr)
                    {
                        return Err(EINVAL);
                    }
                }
                vq.log_used = a.log_used;
                vq.desc = a.desc;
                vq.avail = a.avail;
                vq.log_addr = a.log_addr;
                vq.used = a.used;
                Ok(0)
            }
            uapi::VHOST_SET_VRING_BASE => {
                if vq.backend.is_some() {
                    return Err(EBUSY);
                }
                let s: VhostVringState = uaccess::read(arg)?;
                let b = validate::set_vring_base(false, vq.packed(), s.num).map_err(errno)?;
                vq.last_avail_idx = b.last_avail_idx;
                if let Some(used) = b.last_used_idx {
                    vq.last_used_idx = used;
                }
                vq.avail_idx = vq.last_avail_idx;
                Ok(0)
            }
            uapi::VHOST_GET_VRING_BASE => {
                let s = VhostVringState {
                    index: index as u32,
                    num: validate::get_vring_base(vq.packed(), vq.last_avail_idx, vq.last_used_idx),
                };
                uaccess::write(arg, &s).map(|()| 0)
            }
            uapi::VHOST_SET_VRING_KICK => {
                let f: VhostVringFile = uaccess::read(arg)?;
                let file = if f.fd == VHOST_FILE_UNBIND {
                    None
                } else {
                    Some(EventFdFile::fget(f.fd)?)
                };
                match (&vq.kick, file) {
                    (Some(old), Some(new)) if old.same_file(&new) => {
                        garbage.file = Some(new);
                        Ok(0)
                    }
                    (_, new) => {
                        let poll = self.kick_poll(index);
                        // SAFETY: Serialised by the ring mutex; the old
                        // kick is still referenced (it goes to `garbage`).
                        unsafe { poll.stop() };
                        garbage.file = core::mem::replace(&mut vq.kick, new);
                        garbage.flush = garbage.file.is_some();
                        match &vq.kick {
                            // SAFETY: As above; the ring holds the new
                            // kick until it stops this poll again.
                            Some(kick) => unsafe { poll.start(kick.as_ptr()) }.map(|()| 0),
                            None => Ok(0),
                        }
                    }
                }
            }
            uapi::VHOST_SET_VRING_CALL | uapi::VHOST_SET_VRING_ERR => {
                let f: VhostVringFile = uaccess::read(arg)?;
                let ctx = if f.fd == VHOST_FILE_UNBIND {
                    None
                } else {
                    Some(EventFdCtx::fdget(f.fd)?)
                };
                let slot = if cmd == uapi::VHOST_SET_VRING_CALL {
                    &mut vq.call
                } else {
                    &mut vq.err
                };
                garbage.ctx = core::mem::replace(slot, ctx);
                Ok(0)
            }
            // Without CONFIG_VHOST_CROSS_ENDIAN_LEGACY, C answers before
            // it reads the argument.
            uapi::VHOST_SET_VRING_ENDIAN | uapi::VHOST_GET_VRING_ENDIAN
                if !validate::CROSS_ENDIAN_LEGACY =>
            {
                Err(errno(Errno::ENOIOCTLCMD))
            }
            uapi::VHOST_SET_VRING_ENDIAN => {
                let s: VhostVringState = uaccess::read(arg)?;
                validate::set_vring_endian(
                    validate::CROSS_ENDIAN_LEGACY,
                    vq.backend.is_some(),
                    s.num,
                )
                .map(|_| 0)
                .map_err(errno)
            }
            uapi::VHOST_GET_VRING_ENDIAN => {
                validate::get_vring_endian(validate::CROSS_ENDIAN_LEGACY, false)
                    .map_err(errno)
                    .and_then(|num| {
                        let s = VhostVringState {
                            index: index as u32,
                            num,
                        };
                        uaccess::write(arg, &s).map(|()| 0)
                    })
            }
            uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT => {
                let s: VhostVringState = uaccess::read(arg)?;
                vq.busyloop_timeout = s.num;
                Ok(0)
            }
            uapi::VHOST_GET_VRING_BUSYLOOP_TIMEOUT => {
                let s = VhostVringState {
                    index: index as u32,
                    num: vq.busyloop_timeout,
                };
                uaccess::write(arg, &s).map(|()| 0)
            }
            _ => Err(errno(Errno::ENOIOCTLCMD)),
        }
    }

    /// `VHOST_NET_SET_BACKEND`: attach, replace or (fd -1) detach the
    /// socket of a ring.
    fn set_backend(&self, index: u32, fd: i32) -> Result<isize> {
        let old;
        {
            let dev = self.dev.lock();
            Self::check_owner(&dev)?;
            let index = validate::vring_index(index, NVQS).map_err(errno)?;
            let mut vq = self.vq(index).lock();
            if fd == -1 {
                self.msgs.clear();
            }
            if !vq.access_ok() {
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
            let same = match (&vq.backend, &sock) {
                (Some(a), Some(b)) => a.same(b),
                (None, None) => true,
                _ => false,
            };
            if same {
                // The new reference goes; the ring keeps the one it has.
                drop(vq);
                drop(dev);
                drop(sock);
                return Ok(0);
            }
            let poll = self.sock_poll(index);
            // SAFETY: Serialised by the ring mutex; the old socket is still
            // referenced by the ring.
            unsafe { poll.stop() };
            let prev = core::mem::replace(&mut vq.backend, sock);
            let started = self
                .init_access(&mut vq, index)
                .and_then(|()| vq.start_ring())
                .and_then(|()| Self::enable_vq(poll, &vq));
            if let Err(e) = started {
                // Put the old backend back (and poll it again); the new
                // one is dropped.
                // SAFETY: As above.
                unsafe { poll.stop() };
                let _new = core::mem::replace(&mut vq.backend, prev);
                let _ = Self::enable_vq(poll, &vq);
                return Err(e);
            }
            old = prev;
            drop(vq);
            // C resets the zerocopy heuristics (`tx_packets`,
            // `tx_zcopy_err`, `tx_flush`) when either ring's backend
            // changes. Lock order: device, then one ring at a time.
            if let Some(z) = self.tx.lock().zc.as_deref_mut() {
                z.restart();
            }
            if old.is_some() {
                self.worker.flush();
            }
            if index == 1 {
                // Packets the old socket still holds: wait for them and
                // give their chains back (C waits for the old ubufs here).
                self.zcopy_flush();
                crate::net::zerocopy_signal_used(self, &mut self.tx.lock());
            }
        }
        drop(old);
        Ok(0)
    }

    /// `vhost_net_enable_vq`: polls the ring's socket. A socket that
    /// reports an error when first polled (for example a tun file not
    /// attached to a device) is refused with `EINVAL`.
    fn enable_vq(poll: &PollEntry<Worker>, vq: &Vq) -> Result {
        let Some(sock) = &vq.backend else {
            return Ok(());
        };
        // SAFETY: Serialised by the ring mutex the caller holds; the ring
        // keeps the socket (and its file) until the poll is stopped.
        unsafe { poll.start(sock.file()) }
    }

    /// `vhost_vq_init_access`: with a backend, clear the used flags and read
    /// the used index the guest left (the owner's memory, we run in it).
    fn init_access(&self, vq: &mut Vq, index: usize) -> Result {
        if vq.backend.is_none() {
            return Ok(());
        }
        // Used ring layout: le16 flags, le16 idx, elements.
        // C writes the flags it keeps (NO_NOTIFY if the ring was left with
        // kicks disabled by an earlier backend).
        let used_flags = vq.ring.as_ref().map_or(0, |r| r.used_flags());
        let flags = self.ring_uaddr(vq, index, vq.used, 2)?;
        uaccess::write(flags as usize, &used_flags.to_le()).map_err(|_| EFAULT)?;
        if vq.log_used {
            crate::net::log_used_flags(&self.msgs, vq, index);
        }
        vq.signalled_used_valid = false;
        // `used` is 4-aligned (`set_vring_addr`): `used + 2` cannot wrap.
        if vq.iotlb.is_none() && !uaccess::access_ok(vq.used + 2, 2) {
            return Err(EFAULT);
        }
        let idx = self.ring_uaddr(vq, index, vq.used + 2, 2)?;
        match uaccess::read::<u16>(idx as usize) {
            Ok(idx) => vq.last_used_idx = u16::from_le(idx),
            Err(_) => {
                vq.signal_err();
                return Err(EFAULT);
            }
        }
        Ok(())
    }

    /// The user address of `size` bytes of ring metadata at `addr`: the
    /// address itself, or its translation through the device IOTLB, which
    /// must be one piece (C's `__vhost_get_user_slow`, which asks for read
    /// permission even for writes). A failed translation is reported on
    /// the ring's err eventfd.
    fn ring_uaddr(&self, vq: &Vq, index: usize, addr: u64, size: u32) -> Result<u64> {
        let Some(iotlb) = &vq.iotlb else {
            return Ok(addr);
        };
        let mut pieces = [Piece::default(); 1];
        let r = iotlb.lock().translate(addr, size, PERM_RO, &mut pieces);
        match r {
            Ok(1) if pieces[0].len == u64::from(size) => Ok(pieces[0].addr),
            r => {
                if let Err(TranslateError::Miss { addr }) = r {
                    // C's translate_desc queues the miss for userspace.
                    crate::net::queue_miss(&self.msgs, vq, index, addr, PERM_RO);
                }
                vq.signal_err();
                Err(EFAULT)
            }
        }
    }

    /// `write` on the fd: one IOTLB message (C's `vhost_chr_write_iter`).
    fn write_msg(&self, iter: &mut IovIter) -> Result<isize> {
        let mut ty = [0u8; 4];
        if iter.copy_from(&mut ty) != ty.len() {
            return Err(EINVAL);
        }
        // C reads the backend features of ring 0 without its lock.
        let backend_features = self.rx.lock().acked_backend_features;
        let layout = iotlb_msg::iotlb_write_layout(i32::from_ne_bytes(ty), backend_features)
            .map_err(errno)?;
        let mut asid = 0u32;
        if layout.reads_asid {
            let mut b = [0u8; 4];
            if iter.copy_from(&mut b) != b.len() {
                return Err(EINVAL);
            }
            asid = u32::from_ne_bytes(b);
        }
        iter.advance(layout.skip);
        let mut raw = [0u8; 32];
        if iter.copy_from(&mut raw) != raw.len() {
            return Err(EINVAL);
        }
        let msg = iotlb_msg::parse_iotlb_msg(&raw);
        // The device mutex is held throughout, as in C, which also keeps
        // the worker's task alive for the kicks below (see `worker`).
        let dev = self.dev.lock();
        // And every ring mutex, in index order (C's vhost_dev_lock_vqs, for
        // every message type): a worker round holds its ring's mutex from
        // its first translation to its last copy, so once an INVALIDATE
        // returns no round still uses a translation of the range (the
        // guest's vIOMMU may reuse those pages at once).
        let rings = (self.rx.lock(), self.tx.lock());
        let iotlb = dev.iotlb.clone();
        let outcome = {
            let mut guard = iotlb.as_ref().map(|i| i.lock());
            iotlb_msg::process_iotlb_msg(guard.as_deref_mut(), asid, &msg, uaccess::access_ok)
                .map_err(errno)?
        };
        if outcome == IotlbOutcome::Updated {
            // A ring that missed in the new range runs again once the
            // locks are released (C's vhost_iotlb_notify_vq, which also
            // queues under the ring mutexes: queueing only sets a bit and
            // wakes the worker).
            self.msgs.resolve(msg.iova, msg.size, |vq| {
                self.worker.queue(if vq == 0 { WORK_RX } else { WORK_TX });
            });
        }
        drop(rings);
        drop(dev);
        Ok(layout.written as isize)
    }

    /// The ioctls the C module handles under the device mutex after its
    /// own switch: device ioctls, then virtqueue ioctls.
    fn locked_ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        let mut garbage = Garbage::default();
        let r = {
            let mut dev = self.dev.lock();
            match self.dev_ioctl(&mut dev, cmd, arg) {
                Some(r) => {
                    // C flushes after every device ioctl (vhost_net_flush).
                    self.worker.flush();
                    self.zcopy_flush();
                    r
                }
                None => {
                    let r = self.vring_ioctl(cmd, arg, &mut garbage);
                    if garbage.flush {
                        self.worker.flush();
                    }
                    r
                }
            }
        };
        drop(garbage);
        r
    }
}

impl MiscDevice for VhostNet {
    type Ptr = Arc<VhostNet>;

    fn open() -> Result<Arc<VhostNet>> {
        let mut state = DevState::new();
        state.fork_owner = params::fork_from_owner_default();
        let worker = Arc::pin_init(Worker::new(), GFP_KERNEL)?;
        let w: *const Worker = &*worker;
        Arc::pin_init(
            pin_init!(VhostNet {
                dev <- kernel::new_mutex!(state, "VhostNet::dev"),
                rx <- kernel::new_mutex!(Vq::new(), "VhostNet::rx"),
                tx <- kernel::new_mutex!(Vq::new(), "VhostNet::tx"),
                msgs <- Msgs::new(),
                worker,
                stopping: AtomicBool::new(false),
                // SAFETY: `w` points to `worker`, which the device keeps in
                // its field `worker` for as long as the entries exist.
                rx_kick <- unsafe { PollEntry::new(EPOLLIN, WORK_RX, w) },
                // SAFETY: As above.
                tx_kick <- unsafe { PollEntry::new(EPOLLIN, WORK_TX, w) },
                // SAFETY: As above.
                rx_sock <- unsafe { PollEntry::new(EPOLLIN, WORK_RX, w) },
                // SAFETY: As above.
                tx_sock <- unsafe { PollEntry::new(EPOLLOUT, WORK_TX, w) },
            }),
            GFP_KERNEL,
        )
    }

    fn read_iter(
        this: ArcBorrow<'_, VhostNet>,
        iter: &mut IovIter,
        nonblock: bool,
    ) -> Result<isize> {
        this.msgs.read(iter, nonblock)
    }

    fn write_iter(this: ArcBorrow<'_, VhostNet>, iter: &mut IovIter) -> Result<isize> {
        this.write_msg(iter)
    }

    fn poll(this: ArcBorrow<'_, VhostNet>, file: *mut c_void, table: *mut c_void) -> u32 {
        // SAFETY: The VFS passes the file and table of the running poll;
        // `msgs` lives until `release`, after every poller is gone.
        unsafe { this.msgs.poll(file, table) }
    }

    fn release(device: Arc<VhostNet>) {
        let garbage = {
            let mut dev = device.dev.lock();
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
            uapi::VHOST_GET_FEATURES => uaccess::write(arg, &uapi::VHOST_NET_FEATURES).map(|()| 0),
            uapi::VHOST_SET_FEATURES => this.set_features(uaccess::read(arg)?),
            uapi::VHOST_GET_BACKEND_FEATURES => {
                uaccess::write(arg, &uapi::VHOST_NET_BACKEND_FEATURES).map(|()| 0)
            }
            uapi::VHOST_SET_BACKEND_FEATURES => this.set_backend_features(uaccess::read(arg)?),
            uapi::VHOST_RESET_OWNER => this.reset_owner(),
            uapi::VHOST_SET_OWNER => this.set_owner(),
            _ => this.locked_ioctl(cmd, arg),
        }
    }
}

impl TaskBody for VhostNet {
    fn run(&self) -> bool {
        let work = self.worker.take();
        if work.is_empty() {
            return false;
        }
        // As C's worker, yield between work items: a ring that requeues
        // itself (weights, a socket that is always writable) must not keep
        // a non-preemptible kernel's CPU.
        if work.has(WORK_RX) {
            crate::net::handle_rx(self, &self.rx);
            cond_resched();
        }
        if work.has(WORK_TX) {
            crate::net::handle_tx(self, &self.tx);
            cond_resched();
        }
        self.worker.done(&work);
        true
    }

    fn killed(&self) {
        self.worker.kill();
    }
}
