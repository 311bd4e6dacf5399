// SPDX-License-Identifier: GPL-2.0

//! A counted reference to an address space (`struct mm_struct`).

use super::shim::{vhost_net_rs_current_mm_is, vhost_net_rs_get_current_mm, vhost_net_rs_mmget};
use kernel::bindings;

/// An `mm_struct` kept alive by a user reference (`mmget`), like the C
/// module's `dev->mm`: the owner's address space, into which the worker
/// copies, even after the owner's last thread exits.
///
/// # Invariants
///
/// `ptr` is non-null and we own one `mm_users` reference to it.
pub(crate) struct MmRef {
    ptr: *mut bindings::mm_struct,
}

// SAFETY: An mm reference may be dropped (`mmput`) from any task.
unsafe impl Send for MmRef {}
// SAFETY: Shared references only compare the pointer.
unsafe impl Sync for MmRef {}

impl MmRef {
    /// The calling task's address space, or `None` for a kernel thread.
    pub(crate) fn current() -> Option<Self> {
        // SAFETY: Always safe to call from process context.
        let ptr = unsafe { vhost_net_rs_get_current_mm() };
        // INVARIANT: `get_task_mm` returned a counted reference, if any.
        (!ptr.is_null()).then_some(Self { ptr })
    }

    /// The raw `struct mm_struct *`, for `kthread_use_mm`.
    pub(super) fn as_ptr(&self) -> *mut bindings::mm_struct {
        self.ptr
    }

    /// Whether the calling task runs in this address space (the C module's
    /// owner check, `dev->mm == current->mm`).
    pub(crate) fn is_current(&self) -> bool {
        // SAFETY: Only the pointer value is compared.
        unsafe { vhost_net_rs_current_mm_is(self.ptr) }
    }
}

impl Clone for MmRef {
    /// Another user reference on the same address space (`mmget`).
    fn clone(&self) -> Self {
        // SAFETY: By the type invariant the mm is alive (we hold a user
        // reference), so another may be taken.
        unsafe { vhost_net_rs_mmget(self.ptr) };
        // INVARIANT: `mmget` took the reference the clone owns.
        Self { ptr: self.ptr }
    }
}

impl Drop for MmRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference.
        unsafe { bindings::mmput(self.ptr) };
    }
}
