// SPDX-License-Identifier: GPL-2.0

//! The worker thread: a `vhost_task`, a thread of the owner process that
//! shares its address space and is accounted to its cgroups.

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

/// Wakes the vhost_task `vtsk` (for wakers that keep a raw handle).
///
/// # Safety
///
/// `vtsk` must be a live handle from [`VhostTask::start`], not yet dropped.
pub(crate) unsafe fn wake_raw(vtsk: *mut c_void) {
    // SAFETY: Guaranteed by the caller.
    unsafe { vhost_task_wake(vtsk) };
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

    /// The raw handle, for [`wake_raw`].
    pub(crate) fn as_raw(&self) -> *mut c_void {
        self.vtsk
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
