// SPDX-License-Identifier: GPL-2.0

//! The worker thread: a `vhost_task`, a thread of the owner process that
//! shares its address space and is accounted to its cgroups, or (with
//! `VHOST_SET_FORK_FROM_OWNER` 0) a kernel thread that adopts the owner's
//! address space, as the C module offers both.

use core::ffi::c_void;
use kernel::error::from_err_ptr;
use kernel::ffi::c_char;
use kernel::prelude::*;

extern "C" {
    fn vhost_task_create(
        f: unsafe extern "C" fn(*mut c_void) -> bool,
        handle_kill: unsafe extern "C" fn(*mut c_void),
        arg: *mut c_void,
        name: *const c_char,
    ) -> *mut c_void;
    fn vhost_task_start(vtsk: *mut c_void);
    fn vhost_task_stop(vtsk: *mut c_void);
    fn vhost_task_wake(vtsk: *mut c_void);
    fn vhost_net_rs_set_current_running();
    fn vhost_net_rs_set_current_interruptible();
    fn vhost_net_rs_current_pid() -> i32;
    fn vhost_net_rs_cond_resched();
    fn kthread_create_on_node(
        f: unsafe extern "C" fn(*mut c_void) -> i32,
        data: *mut c_void,
        node: i32,
        namefmt: *const c_char,
        ...
    ) -> *mut c_void;
    fn kthread_should_stop() -> bool;
    fn kthread_stop(task: *mut c_void) -> i32;
    fn kthread_use_mm(mm: *mut c_void);
    fn kthread_unuse_mm(mm: *mut c_void);
    fn wake_up_process(task: *mut c_void) -> i32;
    fn vhost_net_rs_cgroup_attach_current(task: *mut c_void) -> i32;
}

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
    unsafe { kernel::bindings::synchronize_rcu() };
}

/// The pid of the calling task (`current->pid`), for the worker's name.
pub(crate) fn current_pid() -> i32 {
    // SAFETY: Reading the current task's pid is always allowed.
    unsafe { vhost_net_rs_current_pid() }
}

/// What a worker thread runs.
pub(crate) trait TaskBody: Sync {
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

/// Wakes a worker thread through the raw handle of [`WorkerThread::raw`].
///
/// # Safety
///
/// `raw` must come from a live [`WorkerThread`], not yet dropped, and
/// `kthread` must say which kind it is.
pub(crate) unsafe fn wake_raw(raw: *mut c_void, kthread: bool) {
    // SAFETY: Guaranteed by the caller.
    unsafe {
        if kthread {
            wake_up_process(raw);
        } else {
            vhost_task_wake(raw);
        }
    }
}

/// The worker thread of a device, of either kind.
pub(crate) enum WorkerThread {
    /// A thread of the owner process.
    Task(VhostTask),
    /// A kernel thread using the owner's address space.
    Kthread(Kthread),
}

impl WorkerThread {
    /// The handle [`wake_raw`] takes, and whether it is a kthread.
    pub(crate) fn raw(&self) -> (*mut c_void, bool) {
        match self {
            WorkerThread::Task(t) => (t.vtsk, false),
            WorkerThread::Kthread(k) => (k.task, true),
        }
    }
}

/// What a kernel thread worker needs: the body and the owner's mm.
struct KthreadArgs {
    run: unsafe fn(*const c_void) -> bool,
    body: *const c_void,
    mm: *mut c_void,
}

/// A started kernel thread running a [`TaskBody`] in the owner's address
/// space and cgroups (C's `vhost_run_work_kthread_list`).
///
/// # Invariants
///
/// `task` is a started kthread running `kthread_trampoline` on `*args`;
/// `args`, the body and the mm outlive it (it is stopped in `Drop`).
pub(crate) struct Kthread {
    task: *mut c_void,
    args: KBox<KthreadArgs>,
}

// SAFETY: The handle may be woken and stopped from any task.
unsafe impl Send for Kthread {}
// SAFETY: `wake_up_process` may be called concurrently.
unsafe impl Sync for Kthread {}

impl Kthread {
    /// Creates and starts a kernel thread named `name` that runs `body`
    /// with `mm` as its address space, in the calling task's cgroups.
    ///
    /// # Safety
    ///
    /// `body` must stay valid (and pinned), and `mm` referenced, until the
    /// returned value is dropped.
    pub(crate) unsafe fn start<T: TaskBody>(
        body: *const T,
        mm: *mut c_void,
        name: &CStr,
    ) -> Result<Self> {
        let args = KBox::new(
            KthreadArgs {
                run: run_erased::<T>,
                body: body.cast(),
                mm,
            },
            GFP_KERNEL,
        )?;
        let data = (&*args as *const KthreadArgs).cast_mut().cast::<c_void>();
        // SAFETY: The trampoline matches the C prototype; `data` points to
        // `args`, kept with the handle; "%s" formats `name`, copied.
        let task = from_err_ptr(unsafe {
            kthread_create_on_node(
                kthread_trampoline,
                data,
                -1,
                c"%s".as_ptr().cast(),
                name.as_char_ptr(),
            )
        })?;
        // SAFETY: `task` was just created and is not running yet.
        unsafe { wake_up_process(task) };
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
        // `kthread_stop` waits for it to return, after which `args` and
        // the body are unused.
        unsafe { kthread_stop(self.task) };
        let _ = &self.args;
    }
}

/// Runs one round of a type-erased body.
///
/// # Safety
///
/// `body` must point to a live `T`.
unsafe fn run_erased<T: TaskBody>(body: *const c_void) -> bool {
    // SAFETY: Guaranteed by the caller.
    unsafe { &*body.cast::<T>() }.run()
}

/// The kthread's function.
///
/// # Safety
///
/// Called by the kthread machinery with the `KthreadArgs` of a `Kthread`.
unsafe extern "C" fn kthread_trampoline(data: *mut c_void) -> i32 {
    // SAFETY: `data` is the `KthreadArgs`, alive until `kthread_stop`.
    let args = unsafe { &*data.cast::<KthreadArgs>() };
    // SAFETY: The owner's mm is referenced until the thread is stopped.
    unsafe { kthread_use_mm(args.mm) };
    loop {
        // SAFETY: Setting our own state; paired with `kthread_stop`'s wake.
        unsafe { vhost_net_rs_set_current_interruptible() };
        // SAFETY: We are a kthread.
        if unsafe { kthread_should_stop() } {
            set_running();
            break;
        }
        // SAFETY: `body` is alive until the thread is stopped.
        if !unsafe { (args.run)(args.body) } {
            // SAFETY: Sleeping in our own thread.
            unsafe { kernel::bindings::schedule() };
        }
    }
    // SAFETY: Undoes `kthread_use_mm` above.
    unsafe { kthread_unuse_mm(args.mm) };
    0
}

/// A started `vhost_task` running `T::run` on `*body`.
///
/// # Invariants
///
/// `vtsk` is a started vhost_task whose argument is `body`, and `body`
/// stays valid until [`VhostTask::stop`] (or `Drop`) returned.
pub(crate) struct VhostTask {
    vtsk: *mut c_void,
}

// SAFETY: The task handle may be woken and stopped from any task.
unsafe impl Send for VhostTask {}
// SAFETY: `vhost_task_wake` may be called concurrently.
unsafe impl Sync for VhostTask {}

impl VhostTask {
    /// Creates and starts a worker named `name` (`vhost-<pid>`) as a
    /// thread of the calling process.
    ///
    /// # Safety
    ///
    /// `body` must stay valid (and pinned) until the returned value is
    /// dropped.
    pub(crate) unsafe fn start<T: TaskBody>(body: *const T, name: &CStr) -> Result<Self> {
        // SAFETY: The trampolines match the C prototypes; `body` outlives
        // the task by the caller's guarantee; `name` is copied.
        let vtsk = from_err_ptr(unsafe {
            vhost_task_create(
                run_trampoline::<T>,
                kill_trampoline::<T>,
                body.cast_mut().cast(),
                name.as_char_ptr(),
            )
        })?;
        // SAFETY: `vtsk` was just created and not started.
        unsafe { vhost_task_start(vtsk) };
        // INVARIANT: Created with `body`, started.
        Ok(Self { vtsk })
    }
}

impl Drop for VhostTask {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `vtsk` is live; `vhost_task_stop`
        // waits for the thread to exit (or for a kill to finish) and frees
        // the handle, after which `body` is no longer used.
        unsafe { vhost_task_stop(self.vtsk) };
    }
}

/// # Safety
///
/// Called by the vhost_task with the `body` it was created with.
unsafe extern "C" fn run_trampoline<T: TaskBody>(data: *mut c_void) -> bool {
    // SAFETY: `data` is the `body` pointer, valid until the task stops.
    let body = unsafe { &*data.cast::<T>() };
    body.run()
}

/// # Safety
///
/// As [`run_trampoline`].
unsafe extern "C" fn kill_trampoline<T: TaskBody>(data: *mut c_void) {
    // SAFETY: As in `run_trampoline`.
    let body = unsafe { &*data.cast::<T>() };
    body.killed();
}
