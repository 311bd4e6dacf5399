// SPDX-License-Identifier: GPL-2.0

//! The worker thread: a `vhost_task`, a thread of the owner process that
//! shares its address space and is accounted to its cgroups, or (with
//! `VHOST_SET_FORK_FROM_OWNER` 0) a kernel thread that adopts the owner's
//! address space, as the C module offers both.
//!
//! A thread owns a counted reference on its body ([`TaskBody`], an
//! [`Arc`]) and, for a kthread, on the owner's address space ([`MmRef`]),
//! and stops (waiting for the thread to exit) before it lets go of them.
//! Wakers outside the thread's owner reach it through a [`TaskSlot`],
//! which owns the thread while it is published and enforces the teardown
//! order: unpublish, an RCU grace period, and only then stop.

use super::mm::MmRef;
use super::rcu;
use super::shim::{vhost_net_rs_busy_clock, vhost_net_rs_need_resched};
use super::shim::{vhost_net_rs_cgroup_attach_current, vhost_net_rs_cond_resched};
use super::shim::{vhost_net_rs_current_pid, vhost_net_rs_set_current_interruptible};
use super::shim::{vhost_net_rs_set_current_running, vhost_task};
use super::shim::{vhost_task_create, vhost_task_start, vhost_task_stop, vhost_task_wake};
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::bindings;
use kernel::error::from_err_ptr;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// Yields the CPU if another task should run (`cond_resched`).
pub(crate) fn cond_resched() {
    // SAFETY: Called from process context without locks held.
    unsafe { vhost_net_rs_cond_resched() };
}

/// Waits for an RCU grace period (`synchronize_rcu`): every read-side
/// critical section that began before the call has ended.
pub(crate) fn synchronize_rcu() {
    // SAFETY: Called from process context without spinlocks held (the
    // callers hold only sleeping mutexes).
    unsafe { bindings::synchronize_rcu() };
}

/// The pid of the calling task (`current->pid`), for the worker's name.
pub(crate) fn current_pid() -> i32 {
    // SAFETY: Reading the current task's pid is always allowed.
    unsafe { vhost_net_rs_current_pid() }
}

/// What a worker thread runs.
pub(crate) trait TaskBody: Send + Sync + 'static {
    /// One round of work; returns whether there was any (if not, the
    /// thread sleeps until woken). Runs with the task state
    /// `TASK_INTERRUPTIBLE`: call [`set_running`] before anything that
    /// may sleep.
    fn run(&self) -> bool;

    /// The owner was killed (SIGKILL): the thread is exiting; finish or
    /// drop pending work and never rely on the thread again.
    fn killed(&self);
}

/// Marks the current task running (`__set_current_state(TASK_RUNNING)`),
/// as a worker body must before it takes sleeping locks.
pub(crate) fn set_running() {
    // SAFETY: Changing the current task's own state is always allowed.
    unsafe { vhost_net_rs_set_current_running() };
}

/// A type-erased `Arc<T: TaskBody>`, as the C threads take it.
///
/// # Invariants
///
/// `ptr` comes from `Arc::<T>::into_raw` for the `T` of `run` and
/// `release`, and we own that reference.
struct ErasedBody {
    ptr: *const c_void,
    run: unsafe fn(*const c_void) -> bool,
    release: unsafe fn(*const c_void),
}

impl ErasedBody {
    fn new<T: TaskBody>(body: Arc<T>) -> Self {
        // INVARIANT: `into_raw` gives us the reference.
        Self {
            ptr: Arc::into_raw(body).cast(),
            run: run_erased::<T>,
            release: release_erased::<T>,
        }
    }
}

impl Drop for ErasedBody {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own the reference of `ptr`.
        unsafe { (self.release)(self.ptr) };
    }
}

/// # Safety
///
/// `body` points to a live `T`.
unsafe fn run_erased<T: TaskBody>(body: *const c_void) -> bool {
    // SAFETY: Guaranteed by the caller.
    unsafe { &*body.cast::<T>() }.run()
}

/// # Safety
///
/// `body` points to a live `T`.
unsafe fn kill_erased<T: TaskBody>(body: *const c_void) {
    // SAFETY: Guaranteed by the caller.
    unsafe { &*body.cast::<T>() }.killed()
}

/// # Safety
///
/// `body` comes from `Arc::<T>::into_raw` and its reference is given up.
unsafe fn release_erased<T: TaskBody>(body: *const c_void) {
    // SAFETY: Guaranteed by the caller.
    drop(unsafe { Arc::from_raw(body.cast::<T>()) });
}

/// The worker thread of a device, of either kind.
pub(crate) enum WorkerThread {
    /// A thread of the owner process.
    Task(VhostTask),
    /// A kernel thread using the owner's address space.
    Kthread(Kthread),
}

/// The bit of a published handle that says it is a kthread's
/// `task_struct` rather than a `vhost_task`: both are slab objects, at
/// least 8-byte aligned, so their handles have it clear.
const KTHREAD_TAG: usize = 1;

impl WorkerThread {
    /// The handle a [`TaskSlot`] publishes: the `vhost_task`, or the
    /// kthread's `task_struct` with [`KTHREAD_TAG`] set, so that a waker
    /// learns the kind from the same load as the pointer.
    fn tagged(&self) -> *mut c_void {
        match self {
            WorkerThread::Task(t) => t.vtsk.cast(),
            WorkerThread::Kthread(k) => k.task.cast::<c_void>().wrapping_byte_add(KTHREAD_TAG),
        }
    }
}

/// What a kernel thread worker needs: the body and the owner's mm.
struct KthreadArgs {
    body: ErasedBody,
    mm: MmRef,
}

/// A started kernel thread running a [`TaskBody`] in the owner's address
/// space and cgroups (C's `vhost_run_work_kthread_list`).
///
/// # Invariants
///
/// `task` is a started kthread running `kthread_trampoline` on `*args`,
/// which outlives it (it is stopped in `Drop`).
pub(crate) struct Kthread {
    task: *mut bindings::task_struct,
    args: KBox<KthreadArgs>,
}

// SAFETY: The handle may be woken and stopped from any task.
unsafe impl Send for Kthread {}
// SAFETY: `wake_up_process` may be called concurrently.
unsafe impl Sync for Kthread {}

impl Kthread {
    /// Creates and starts a kernel thread named `name` that runs `body`
    /// with `mm` as its address space, in the calling task's cgroups.
    pub(crate) fn start<T: TaskBody>(body: Arc<T>, mm: MmRef, name: &CStr) -> Result<Self> {
        let args = KBox::new(
            KthreadArgs {
                body: ErasedBody::new(body),
                mm,
            },
            GFP_KERNEL,
        )?;
        let data = core::ptr::from_ref::<KthreadArgs>(&args)
            .cast_mut()
            .cast::<c_void>();
        // SAFETY: The trampoline matches the C prototype; `data` points to
        // `args`, kept with the handle; "%s" formats `name`, copied.
        let task = from_err_ptr(unsafe {
            bindings::kthread_create_on_node(
                Some(kthread_trampoline),
                data,
                -1,
                c"%s".as_ptr().cast(),
                name.as_char_ptr(),
            )
        })?;
        // SAFETY: `task` was just created and is not running yet.
        unsafe { bindings::wake_up_process(task) };
        // INVARIANT: Started on `args`.
        let this = Self { task, args };
        // The thread joins the caller's cgroups, so its CPU time is the
        // owner's (C's `vhost_attach_task_to_cgroups`); if it cannot, it is
        // stopped again (by `Drop`) and the error returned, as in C.
        // SAFETY: `task` is a live kthread (ours until `Drop`).
        kernel::error::to_result(unsafe { vhost_net_rs_cgroup_attach_current(this.task) })?;
        Ok(this)
    }
}

impl Drop for Kthread {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the thread runs until stopped;
        // `kthread_stop` waits for it to return, after which `args` (the
        // body and the mm) are unused and dropped with `self`.
        unsafe { bindings::kthread_stop(self.task) };
        let _ = &self.args;
    }
}

/// The kthread's function.
///
/// # Safety
///
/// Called by the kthread machinery with the `KthreadArgs` of a `Kthread`.
unsafe extern "C" fn kthread_trampoline(data: *mut c_void) -> i32 {
    // SAFETY: `data` is the `KthreadArgs`, alive until `kthread_stop`.
    let args = unsafe { &*data.cast::<KthreadArgs>() };
    // SAFETY: The owner's mm is referenced (`args.mm`) until the thread is
    // stopped.
    unsafe { bindings::kthread_use_mm(args.mm.as_ptr()) };
    loop {
        // SAFETY: Setting our own state; paired with `kthread_stop`'s wake.
        unsafe { vhost_net_rs_set_current_interruptible() };
        // SAFETY: We are a kthread.
        if unsafe { bindings::kthread_should_stop() } {
            set_running();
            break;
        }
        // SAFETY: The body is alive (we hold its reference in `args`).
        if !unsafe { (args.body.run)(args.body.ptr) } {
            // SAFETY: Sleeping in our own thread.
            unsafe { bindings::schedule() };
        }
    }
    // SAFETY: Undoes `kthread_use_mm` above.
    unsafe { bindings::kthread_unuse_mm(args.mm.as_ptr()) };
    0
}

/// A started `vhost_task` running a [`TaskBody`].
///
/// # Invariants
///
/// `vtsk` is a started vhost_task whose argument is `body.ptr`, and `body`
/// is kept until `vhost_task_stop` returned (in `Drop`).
pub(crate) struct VhostTask {
    vtsk: *mut vhost_task,
    body: ErasedBody,
}

// SAFETY: The task handle may be woken and stopped from any task, and the
// body is `Send + Sync`.
unsafe impl Send for VhostTask {}
// SAFETY: `vhost_task_wake` may be called concurrently.
unsafe impl Sync for VhostTask {}

impl VhostTask {
    /// Creates and starts a worker named `name` (`vhost-<pid>`) as a
    /// thread of the calling process, running `body`.
    pub(crate) fn start<T: TaskBody>(body: Arc<T>, name: &CStr) -> Result<Self> {
        let body = ErasedBody::new(body);
        // SAFETY: The trampolines match the C prototypes; the body outlives
        // the task (it is kept with the handle); `name` is copied.
        let vtsk = from_err_ptr(unsafe {
            vhost_task_create(
                Some(run_trampoline::<T>),
                Some(kill_trampoline::<T>),
                body.ptr.cast_mut(),
                name.as_char_ptr(),
            )
        })?;
        // SAFETY: `vtsk` was just created and not started.
        unsafe { vhost_task_start(vtsk) };
        // INVARIANT: Created with `body`, started.
        Ok(Self { vtsk, body })
    }
}

impl Drop for VhostTask {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `vtsk` is live; `vhost_task_stop`
        // waits for the thread to exit (or for a kill to finish) and frees
        // the handle, after which the body is no longer used.
        unsafe { vhost_task_stop(self.vtsk) };
        let _ = &self.body;
    }
}

/// # Safety
///
/// Called by the vhost_task with the body pointer it was created with.
unsafe extern "C" fn run_trampoline<T: TaskBody>(data: *mut c_void) -> bool {
    // SAFETY: `data` is the body, alive until the task stops.
    unsafe { run_erased::<T>(data) }
}

/// # Safety
///
/// As [`run_trampoline`].
unsafe extern "C" fn kill_trampoline<T: TaskBody>(data: *mut c_void) {
    // SAFETY: As in `run_trampoline`.
    unsafe { kill_erased::<T>(data) }
}

/// Where wakers find the worker thread (C's `dev->worker->vtsk`, read
/// under RCU): it owns the thread from [`TaskSlot::publish`] until
/// [`TaskSlot::unpublish`], whose [`Unpublished`] stops it only after an
/// RCU grace period. [`TaskSlot::wake`] loads the thread inside an RCU
/// read-side section, so whoever loaded it before it was unpublished has
/// returned before it is stopped and freed: waking is safe from any
/// context, at any time.
///
/// # Invariants
///
/// `raw` is null or the tagged handle ([`WorkerThread::tagged`]) of the
/// thread in `thread`: the kind travels with the pointer, so a waker that
/// loaded a handle before it was replaced still wakes it the right way.
/// A thread whose handle was published is freed only after `raw` was
/// cleared and an RCU grace period passed.
#[pin_data]
pub(crate) struct TaskSlot {
    raw: AtomicPtr<c_void>,
    #[pin]
    thread: Mutex<Option<WorkerThread>>,
}

impl TaskSlot {
    /// A slot without a thread.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            raw: AtomicPtr::new(core::ptr::null_mut()),
            thread <- kernel::new_mutex!(None, "TaskSlot::thread"),
        })
    }

    /// Publishes `thread` to wakers. A thread published before is
    /// unpublished and stopped first.
    pub(crate) fn publish(&self, thread: WorkerThread) {
        drop(self.unpublish());
        let mut slot = self.thread.lock();
        let raw = thread.tagged();
        *slot = Some(thread);
        // INVARIANT: The thread is in `thread` until `unpublish` clears
        // `raw`. Release: a waker that sees the handle sees the thread
        // started.
        self.raw.store(raw, Ordering::Release);
    }

    /// Wakes the published thread, if any, from inside an RCU read-side
    /// critical section (C's `rcu_dereference(dev->worker)` under
    /// `rcu_read_lock`): a wait-queue callback already runs in one
    /// (`kapi/rcu.rs`) and needs no section of its own.
    #[inline]
    pub(crate) fn wake(&self, _rcu: &rcu::Reader) {
        let raw = self.raw.load(Ordering::Acquire);
        if raw.is_null() {
            return;
        }
        // SAFETY: A handle loaded inside a read-side section (`_rcu` lasts
        // until we return) is freed only after it ends (type invariant),
        // and its tag says its kind.
        unsafe {
            if raw as usize & KTHREAD_TAG != 0 {
                bindings::wake_up_process(raw.wrapping_byte_sub(KTHREAD_TAG).cast());
            } else {
                vhost_task_wake(raw.cast());
            }
        }
    }

    /// Stops publishing the thread; wakers that run from now on find none.
    /// The thread is stopped when the result is dropped, after an RCU
    /// grace period ([`Unpublished::grace_period`], or the drop's).
    pub(crate) fn unpublish(&self) -> Option<Unpublished> {
        let mut slot = self.thread.lock();
        self.raw.store(core::ptr::null_mut(), Ordering::Release);
        // INVARIANT: Freed by `Unpublished` only after a grace period.
        slot.take().map(|thread| Unpublished {
            thread: Some(thread),
            quiesced: false,
        })
    }
}

/// A worker thread no waker can find any more, stopped when dropped once
/// the wakers that found it before have returned.
///
/// # Invariants
///
/// `quiesced` is true only if an RCU grace period passed after the thread
/// was unpublished.
pub(crate) struct Unpublished {
    thread: Option<WorkerThread>,
    quiesced: bool,
}

impl Unpublished {
    /// Waits for the RCU grace period after which no waker uses the thread.
    pub(crate) fn grace_period(&mut self) {
        synchronize_rcu();
        // INVARIANT: A grace period passed.
        self.quiesced = true;
    }
}

impl Drop for Unpublished {
    fn drop(&mut self) {
        if !self.quiesced {
            self.grace_period();
        }
        // Stops the thread and frees it (`kthread_stop`, `vhost_task_stop`).
        drop(self.thread.take());
    }
}

/// The busy-poll clock: `local_clock() >> 10`, about microseconds.
pub(crate) fn busy_clock() -> u64 {
    // SAFETY: Reading the clock has no preconditions.
    unsafe { vhost_net_rs_busy_clock() }
}

/// Whether the current task should yield the CPU.
pub(crate) fn need_resched() -> bool {
    // SAFETY: Reading the current task's flag has no preconditions.
    unsafe { vhost_net_rs_need_resched() }
}
