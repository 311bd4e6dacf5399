// SPDX-License-Identifier: GPL-2.0

//! The generic vhost device (C's `struct vhost_dev` and the device and
//! virtqueue ioctls of `vhost.c`): owner, memory table, dirty log, device
//! IOTLB, the rings' configuration and their kick polls, and the worker.
//! A device type (`net::device`) embeds a [`Dev`] of its own virtqueue
//! type, as C's `vhost_net` embeds `vhost_dev`.
//!
//! # Lock order
//!
//! The device mutex (`Dev::state`, C's `dev->mutex`) first, then the
//! virtqueue mutexes (C's `vq->mutex`) in index order: ring 0 (RX) before
//! ring 1 (TX); then, as leaves (no other mutex of ours is taken while one
//! is held), the device IOTLB's mutex (`Iotlb`) and the IOTLB message
//! lists' (`Msgs`). Both virtqueue mutexes are held together only by
//! [`Dev::write_msg`] (C's `vhost_dev_lock_vqs`), so that an IOTLB message
//! waits for a worker round in progress. A worker round holds its ring's
//! mutex from its first translation to its last copy, and takes the
//! IOTLB's mutex only around each translation and the lists' to queue a
//! miss; it never takes the other ring's mutex or the device mutex.
//! Nothing else is taken inside a virtqueue mutex except the eventfd and
//! socket internals (and the owner's `mmap_lock`, on a fault in a user
//! copy).
//!
//! References that may sleep or call back into us when dropped (eventfds,
//! sockets, memory maps) are dropped after the locks are released where the
//! C module does so too.

use crate::kapi::errno;
use crate::kapi::eventfd::{EventFdCtx, EventFdFile};
use crate::kapi::iov::IovIter;
use crate::kapi::mm::MmRef;
use crate::kapi::poll::{PollEntry, EPOLLIN};
use crate::kapi::task::{current_pid, Kthread, TaskBody, VhostTask, WorkerThread};
use crate::kapi::uaccess;
use crate::kapi::version::CONTRACT;
use crate::params;
use crate::vcore::diag::Reason;
use crate::vcore::errno::Errno;
use crate::vcore::features::{IotlbAction, SET_FEATURES_FAILED};
use crate::vcore::iotlb_msg::{self, IotlbOutcome};
use crate::vcore::memory::intervalmap::PERM_RO;
use crate::vcore::uapi::{self, VhostMemory, VhostMemoryRegion, VhostVringAddr, VhostVringFile};
use crate::vcore::uapi::{VhostVringState, VHOST_FILE_UNBIND};
use crate::vcore::validate;
use crate::vhost::access::{field_in_one_piece, log_used_flags, queue_miss, RingErrs};
use crate::vhost::iotlb::{new_iotlb, Iotlb, Msgs};
use crate::vhost::memmap::{new_map, GuestMap};
use crate::vhost::round::DevCtx;
use crate::vhost::vq::{memory_access_ok, DeviceVq, Vq, VqBufs};
use crate::vhost::worker::{Worker, WORK_RX, WORK_TX};
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::{Arc, Mutex};

/// Number of virtqueues of a device: ring 0 and ring 1 (vhost-net's RX and
/// TX).
pub(crate) const NVQS: u32 = validate::NET_VQ_MAX;

/// The work bit of ring `index` (what its polls queue).
pub(crate) const fn ring_work(index: usize) -> u32 {
    if index == 0 {
        WORK_RX
    } else {
        WORK_TX
    }
}

/// The device-wide state, under the device mutex.
pub(crate) struct DevState {
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
}

impl DevState {
    fn new() -> Self {
        Self {
            owner: None,
            fork_owner: params::fork_from_owner_default(),
            umem: None,
            iotlb: None,
            log_ctx: None,
        }
    }
}

/// What a virtqueue ioctl has to release after the locks are dropped.
#[derive(Default)]
pub(crate) struct Deferred {
    ctx: Option<EventFdCtx>,
    file: Option<EventFdFile>,
    /// A poll was stopped: flush the worker before dropping its file.
    flush: bool,
}

/// A vhost device with two virtqueues of type `V`.
#[pin_data]
pub(crate) struct Dev<V: DeviceVq> {
    /// The device mutex: serialises the control plane.
    #[pin]
    state: Mutex<DevState>,
    /// Ring 0 (vhost-net's RX).
    #[pin]
    vq0: Mutex<V>,
    /// Ring 1 (vhost-net's TX).
    #[pin]
    vq1: Mutex<V>,
    /// What the worker's rounds share: the IOTLB message queue, the
    /// worker's queue and the teardown flag.
    #[pin]
    ctx: DevCtx,
    /// Polls ring 0's kick eventfd (C's `vq->poll`).
    #[pin]
    kick0: PollEntry<Worker>,
    /// Polls ring 1's kick eventfd.
    #[pin]
    kick1: PollEntry<Worker>,
}

impl<V: DeviceVq> Dev<V> {
    /// A device in its state after `open`, served by `worker`.
    pub(crate) fn new(worker: Arc<Worker>) -> impl PinInit<Self> {
        let (w0, w1) = (worker.clone(), worker.clone());
        pin_init!(Self {
            state <- kernel::new_mutex!(DevState::new(), "vhost::Dev::state"),
            vq0 <- kernel::new_mutex!(V::new(), "vhost::Dev::vq0"),
            vq1 <- kernel::new_mutex!(V::new(), "vhost::Dev::vq1"),
            ctx <- DevCtx::new(worker),
            kick0 <- PollEntry::new(EPOLLIN, WORK_RX, w0),
            kick1 <- PollEntry::new(EPOLLIN, WORK_TX, w1),
        })
    }

    /// The device mutex.
    pub(crate) fn state(&self) -> &Mutex<DevState> {
        &self.state
    }

    /// The virtqueue with a checked index (0 or 1).
    pub(crate) fn vq(&self, index: usize) -> &Mutex<V> {
        if index == 0 {
            &self.vq0
        } else {
            &self.vq1
        }
    }

    /// The guest's kicks of ring `index` so far (its kick poll's wake-ups).
    pub(crate) fn kicks(&self, index: usize) -> u64 {
        self.kick_poll(index).wakes()
    }

    /// The kick poll entry of a ring.
    fn kick_poll(&self, index: usize) -> &PollEntry<Worker> {
        if index == 0 {
            &self.kick0
        } else {
            &self.kick1
        }
    }

    /// The worker's queue.
    pub(crate) fn worker(&self) -> &Worker {
        &self.ctx.worker
    }

    /// The worker's queue, shared (for zerocopy completions).
    pub(crate) fn worker_arc(&self) -> &Arc<Worker> {
        &self.ctx.worker
    }

    /// The IOTLB message queues.
    pub(crate) fn msgs(&self) -> &Msgs {
        &self.ctx.msgs
    }

    /// What a worker round needs from the device.
    pub(crate) fn ctx(&self) -> &DevCtx {
        &self.ctx
    }

    /// Marks the device as being torn down (or not any more).
    pub(crate) fn set_stopping(&self, stopping: bool) {
        self.ctx.stopping.store(stopping, Ordering::Relaxed);
    }

    /// Stops the kick poll of ring `index`, whose mutex the caller holds
    /// (its owner is in the ring).
    pub(crate) fn stop_kick(&self, index: usize, vq: &mut V) {
        self.kick_poll(index).stop(&mut vq.vq_mut().kick_owner);
    }

    /// Runs `f` on every virtqueue, each under its own mutex, in index
    /// order, like the C module's loops over `dev->vqs`.
    pub(crate) fn for_each_vq(&self, mut f: impl FnMut(&mut V)) {
        for m in [&self.vq0, &self.vq1] {
            f(&mut m.lock());
        }
    }

    /// The C module's `vhost_dev_check_owner`: only the owner's address
    /// space may configure the device.
    pub(crate) fn check_owner(state: &DevState) -> Result {
        match &state.owner {
            Some(mm) if mm.is_current() => Ok(()),
            _ => Err(EPERM),
        }
    }

    /// `VHOST_SET_OWNER`: the caller's address space becomes the owner and
    /// a worker thread running `body` starts. `prepare` allocates what the
    /// device's rings need from then on, before the thread starts: for
    /// each ring (0, then 1) its buffers' extension and a part that
    /// `install` hands it; the buffers have room for `heads` used entries.
    /// The thread holds `body` until the device's teardown stops it
    /// (`Worker::unpublish`).
    pub(crate) fn set_owner<T: TaskBody, X>(
        &self,
        body: Arc<T>,
        heads: usize,
        prepare: impl FnOnce() -> Result<[(V::Ext, X); 2]>,
        mut install: impl FnMut(&mut V, X),
    ) -> Result<isize> {
        let mut dev = self.state.lock();
        if dev.owner.is_some() {
            return Err(EBUSY);
        }
        // Only a kernel thread has no mm, and it cannot reach an fd's ioctl.
        let mm = MmRef::current().ok_or(EINVAL)?;
        let name = CString::try_from_fmt(core::format_args!("vhost-{}", current_pid()))?;
        let [(e0, x0), (e1, x1)] = prepare()?;
        let bufs = [VqBufs::new(heads, e0)?, VqBufs::new(heads, e1)?];
        let parts = [x0, x1];
        // C's `vhost_worker_create` says only that it failed: `ENOMEM`,
        // whatever stopped the thread (`copy_process`'s `EAGAIN` under
        // RLIMIT_NPROC or a pids cgroup, a cgroup attach).
        let task = if dev.fork_owner {
            WorkerThread::Task(VhostTask::start(body, &name).map_err(|_| ENOMEM)?)
        } else {
            WorkerThread::Kthread(Kthread::start(body, mm.clone(), &name).map_err(|_| ENOMEM)?)
        };
        for ((m, b), x) in [&self.vq0, &self.vq1].into_iter().zip(bufs).zip(parts) {
            let mut vq = m.lock();
            vq.vq_mut().bufs = Some(b);
            install(&mut vq, x);
        }
        self.ctx.worker.publish(task);
        dev.owner = Some(mm);
        Ok(0)
    }

    /// Brings every ring and the device back to their state after `open`
    /// (the end of C's `vhost_dev_cleanup` and `vhost_vq_reset`), leaving
    /// `umem` as given; the worker was stopped before. Returns the old
    /// rings, to be dropped outside the locks.
    pub(crate) fn reset(&self, dev: &mut DevState, umem: Option<Arc<GuestMap>>) -> KVec<V> {
        // Room for both rings before their locks are taken, so that no ring
        // is dropped under its lock (its files put, its zerocopy drained:
        // design.rst). Only if even that allocation fails can a push below
        // fail; dropping under the lock is then still correct, only slower
        // for whoever waits.
        let mut old = KVec::with_capacity(2, GFP_KERNEL).unwrap_or_else(|_| KVec::new());
        self.for_each_vq(|vq| {
            let mut fresh = V::new();
            fresh.vq_mut().umem = umem.clone();
            let prev = core::mem::replace(vq, fresh);
            let _ = old.push(prev, GFP_KERNEL);
        });
        dev.log_ctx = None;
        dev.umem = umem;
        dev.iotlb = None;
        dev.owner = None;
        dev.fork_owner = params::fork_from_owner_default();
        // The fresh rings' (`Vq::new`).
        self.ctx.backend_features.store(0, Ordering::Relaxed);
        self.ctx.msgs.set_iotlb_on(false);
        self.ctx.msgs.reset();
        self.ctx.msgs.wake();
        old
    }

    /// The empty memory table `VHOST_RESET_OWNER` leaves, allocated before
    /// anything is reset (C's `vhost_dev_reset_owner_prepare`).
    pub(crate) fn reset_owner_prepare(dev: &DevState) -> Result<Arc<GuestMap>> {
        Self::check_owner(dev)?;
        // C builds the empty table with iotlb_alloc, which has none to give
        // when max_iotlb_entries is not positive: ENOMEM, nothing reset.
        if !params::valid_max_iotlb_entries() {
            return Err(ENOMEM);
        }
        Ok(Arc::new(new_map(0)?, GFP_KERNEL)?)
    }

    /// The generic part of `VHOST_SET_FEATURES` (C's `vhost_net_set_features`
    /// around the vhost helpers): the log check, the device IOTLB, and the
    /// features acked on every ring; `each` sets the device's own part of
    /// each ring.
    pub(crate) fn set_features(
        &self,
        features: u64,
        needs_log_check: bool,
        iotlb_action: IotlbAction,
        mut each: impl FnMut(&mut V),
    ) -> Result<isize> {
        let mut dev = self.state.lock();
        if needs_log_check && !self.log_access_ok(&dev) {
            return Err(errno(SET_FEATURES_FAILED));
        }
        match iotlb_action {
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
                    let vq = vq.vq_mut();
                    vq.iotlb = Some(iotlb.clone());
                    if first {
                        vq.invalidate_access();
                    }
                });
                self.ctx.msgs.set_iotlb_on(true);
            }
            IotlbAction::Clear => {
                if let Some(old) = dev.iotlb.take() {
                    self.for_each_vq(|vq| {
                        let vq = vq.vq_mut();
                        vq.iotlb = None;
                        vq.invalidate_access();
                    });
                    self.ctx.msgs.set_iotlb_on(false);
                    self.ctx.msgs.clear();
                    drop(old);
                    self.ctx.msgs.wake();
                }
            }
        }
        self.for_each_vq(|v| {
            v.vq_mut().set_features(features);
            each(v);
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
            let vq = vq.vq();
            if ok && vq.backend.is_some() {
                let log = log_all || vq.has_feature(uapi::VHOST_F_LOG_ALL);
                ok = memory_access_ok(vq.log_base(), umem, log);
            }
        });
        ok
    }

    /// `VHOST_SET_BACKEND_FEATURES`, with `value` checked by the device.
    pub(crate) fn set_backend_features(&self, value: u64) -> Result<isize> {
        let _dev = self.state.lock();
        self.for_each_vq(|vq| vq.vq_mut().acked_backend_features = value);
        self.ctx.backend_features.store(value, Ordering::Relaxed);
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
        self.for_each_vq(|vq| vq.vq_mut().umem = Some(map.clone()));
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
            let vq = vq.vq_mut();
            if vq.backend.is_some() && !vq.log_access_ok(base) {
                r = Err(EFAULT);
            } else {
                vq.set_log_base(base);
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
        self.for_each_vq(|vq| vq.vq_mut().log_ctx = shared.clone());
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

    /// The ioctls the C module handles under the device mutex after the
    /// device's own switch: device ioctls (then `after_dev_ioctl`, still
    /// under the mutex: C's `vhost_net_flush`), then virtqueue ioctls.
    pub(crate) fn locked_ioctl(
        &self,
        cmd: u32,
        arg: usize,
        after_dev_ioctl: impl FnOnce(),
    ) -> Result<isize> {
        let mut deferred = Deferred::default();
        let r = {
            let mut dev = self.state.lock();
            match self.dev_ioctl(&mut dev, cmd, arg) {
                Some(r) => {
                    // C flushes after every device ioctl (vhost_net_flush).
                    self.ctx.worker.flush();
                    after_dev_ioctl();
                    r
                }
                None => {
                    let r = self.vring_ioctl(cmd, arg, &mut deferred);
                    if deferred.flush {
                        self.ctx.worker.flush();
                    }
                    r
                }
            }
        };
        drop(deferred);
        r
    }

    /// The per-virtqueue ioctls (C's `vhost_vring_ioctl`).
    fn vring_ioctl(&self, cmd: u32, arg: usize, deferred: &mut Deferred) -> Result<isize> {
        let index: u32 = uaccess::read(arg)?;
        let index = validate::vring_index(index, NVQS).map_err(errno)?;
        let mut vq = self.vq(index).lock();
        self.vring_cmd(&mut vq, index, cmd, arg, deferred)
    }

    /// One per-virtqueue ioctl on ring `index`, whose mutex the caller
    /// holds.
    fn vring_cmd(
        &self,
        dvq: &mut V,
        index: usize,
        cmd: u32,
        arg: usize,
        deferred: &mut Deferred,
    ) -> Result<isize> {
        let vq = dvq.vq_mut();
        match cmd {
            uapi::VHOST_SET_VRING_NUM => {
                if vq.backend.is_some() {
                    return Err(EBUSY);
                }
                let s: VhostVringState = uaccess::read(arg)?;
                vq.set_num(validate::set_vring_num(false, s.num).map_err(errno)?);
                Ok(0)
            }
            uapi::VHOST_SET_VRING_ADDR => {
                let a: VhostVringAddr = uaccess::read(arg)?;
                let a = validate::set_vring_addr(&a).map_err(errno)?;
                if vq.backend.is_some()
                    && (!vq.rings_access_ok(vq.num(), a.desc, a.avail, a.used)
                        || !vq.log_used_access_ok(vq.log_base(), a.log_used, a.log_addr))
                {
                    return Err(EINVAL);
                }
                vq.set_addrs(&a);
                Ok(0)
            }
            uapi::VHOST_SET_VRING_BASE => {
                if vq.backend.is_some() {
                    return Err(EBUSY);
                }
                let s: VhostVringState = uaccess::read(arg)?;
                let b = validate::set_vring_base(false, vq.packed(), s.num).map_err(errno)?;
                match b.last_used_idx {
                    Some(used) => vq.ring.set_indices(b.last_avail_idx, used),
                    None => vq.ring.set_base(b.last_avail_idx),
                }
                Ok(0)
            }
            uapi::VHOST_GET_VRING_BASE => {
                let s = VhostVringState {
                    index: index as u32,
                    num: validate::get_vring_base(
                        vq.packed(),
                        vq.ring.last_avail_idx(),
                        vq.ring.last_used_idx(),
                    ),
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
                        deferred.file = Some(new);
                        Ok(0)
                    }
                    (_, new) => {
                        let poll = self.kick_poll(index);
                        poll.stop(&mut vq.kick_owner);
                        deferred.file = core::mem::replace(&mut vq.kick, new);
                        deferred.flush = deferred.file.is_some();
                        match &vq.kick {
                            Some(kick) => poll.start(&mut vq.kick_owner, kick).map(|()| 0),
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
                deferred.ctx = core::mem::replace(slot, ctx);
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

    /// `vhost_vq_init_access`, when a backend is attached to ring `index`:
    /// clear the used flags and read the used index the guest left (the
    /// owner's memory, we run in it); the ring restarts at those indices.
    pub(crate) fn init_access<B, E>(&self, vq: &mut Vq<B, E>, index: usize) -> Result {
        if vq.backend.is_none() {
            return Ok(());
        }
        // Used ring layout: le16 flags, le16 idx, elements.
        // C writes the flags it keeps (NO_NOTIFY if the ring was left with
        // kicks disabled by an earlier backend).
        let used_flags = vq.ring.used_flags();
        let flags = self.ring_uaddr(vq, index, vq.used())?;
        uaccess::write(flags as usize, &used_flags.to_le()).map_err(|_| EFAULT)?;
        if vq.log_used() {
            log_used_flags(&self.ctx.msgs, vq, index, &self.ctx.stats[index & 1]);
        }
        // As C, from here on even if the index read fails and the old
        // backend goes back: its next used entry is signalled.
        vq.ring.forget_signalled();
        // `used` is 4-aligned (`set_vring_addr`): `used + 2` cannot wrap.
        if vq.iotlb.is_none() && !uaccess::access_ok(vq.used() + 2, 2) {
            return Err(EFAULT);
        }
        // A failed translation is reported twice, as in C: by the
        // translation (`__vhost_get_user_slow`) and by the index read.
        let idx = match self.ring_uaddr(vq, index, vq.used() + 2) {
            Ok(a) => a,
            Err(e) => {
                self.ring_err(vq, index, Reason::UsedIdxRead);
                return Err(e);
            }
        };
        match uaccess::read::<u16>(idx as usize) {
            Ok(idx) => vq.ring.set_used_idx(u16::from_le(idx)),
            Err(_) => {
                self.ring_err(vq, index, Reason::UsedIdxRead);
                return Err(EFAULT);
            }
        }
        Ok(())
    }

    /// The user address of the 2-byte ring field at `addr`: the address
    /// itself, or its translation through the device IOTLB, which must be
    /// one piece ([`field_in_one_piece`]). A failed translation queues
    /// its miss and is reported on the ring's err eventfd.
    fn ring_uaddr<B, E>(&self, vq: &Vq<B, E>, index: usize, addr: u64) -> Result<u64> {
        let Some(iotlb) = &vq.iotlb else {
            return Ok(addr);
        };
        let r = field_in_one_piece(&iotlb.lock(), addr);
        r.map_err(|fault| {
            if let Some(iova) = fault.miss {
                queue_miss(&self.ctx.msgs, vq, index, iova, PERM_RO);
            }
            self.ring_err(vq, index, fault.reason);
            EFAULT
        })
    }

    /// C's `vq_err` outside a round, from the caller holding ring
    /// `index`'s mutex (the counters' writer then).
    #[cold]
    fn ring_err<B, E>(&self, vq: &Vq<B, E>, index: usize, reason: Reason) {
        let errs = RingErrs {
            stats: &self.ctx.stats[index & 1],
            err: &vq.err,
        };
        errs.vq_err(reason, Some(Errno::EFAULT));
    }

    /// `write` on the fd: one IOTLB message (C's `vhost_chr_write_iter`).
    pub(crate) fn write_msg(&self, iter: &mut IovIter<'_>) -> Result<isize> {
        let mut ty = [0u8; 4];
        if iter.copy_from(&mut ty) != ty.len() {
            return Err(EINVAL);
        }
        // C reads the backend features of ring 0 without its lock.
        let backend_features = self.ctx.backend_features.load(Ordering::Relaxed);
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
        // C refuses an empty update before its locks (a busy-poll round
        // holding a ring would make the refusal wait otherwise).
        iotlb_msg::write_refuses(&msg).map_err(errno)?;
        // The device mutex is held throughout, as in C, which also keeps
        // the worker's task alive for the kicks below (see `worker`).
        let dev = self.state.lock();
        // And every ring mutex, in index order (C's vhost_dev_lock_vqs, for
        // every message type): a worker round holds its ring's mutex from
        // its first translation to its last copy, so once an INVALIDATE
        // returns no round still uses a translation of the range (the
        // guest's vIOMMU may reuse those pages at once).
        let rings = (self.vq0.lock(), self.vq1.lock());
        let iotlb = dev.iotlb.clone();
        let outcome = {
            let mut guard = iotlb.as_ref().map(|i| i.lock());
            iotlb_msg::kernel_refuses(&CONTRACT, &msg).map_err(errno)?;
            iotlb_msg::process_iotlb_msg(guard.as_deref_mut(), asid, &msg, uaccess::access_ok)
                .map_err(errno)?
        };
        if outcome == IotlbOutcome::Updated {
            // A ring that missed in the new range runs again once the
            // locks are released (C's vhost_iotlb_notify_vq, which also
            // queues under the ring mutexes: queueing only sets a bit and
            // wakes the worker).
            self.ctx.msgs.resolve(msg.iova, msg.size, |vq| {
                self.ctx.worker.queue(ring_work(vq));
            });
        }
        drop(rings);
        drop(dev);
        Ok(layout.written as isize)
    }
}
