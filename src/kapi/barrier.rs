// SPDX-License-Identifier: GPL-2.0

//! The memory barriers of the ring protocol (C's `smp_rmb`, `smp_wmb`,
//! `smp_mb`), as the x86-64 kernel implements them, inline.

use core::sync::atomic::Ordering;

/// `smp_rmb()`. On x86-64 the kernel's is `barrier()` (loads are not
/// reordered with loads): a compiler fence, without a call.
pub(crate) fn smp_rmb() {
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// `smp_wmb()`. On x86-64 the kernel's is `barrier()` (stores are not
/// reordered with stores): a compiler fence, without a call.
pub(crate) fn smp_wmb() {
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// `smp_mb()`. On x86-64 it is the kernel's own instruction
/// (`__smp_mb()` in `arch/x86/include/asm/barrier.h`), inline: a locked
/// add of 0 to the word just below the stack pointer, which orders all
/// earlier loads and stores before all later ones and is cheaper than
/// `mfence`.
pub(crate) fn smp_mb() {
    // SAFETY: The instruction adds 0 atomically, so the word it touches
    // keeps its value whoever else uses it (an interrupt on this stack
    // included: the add is one locked read-modify-write), and that word is
    // mapped because it is the current kernel stack's. It clobbers the
    // flags, which `asm!` assumes without `preserves_flags`, and without
    // `nomem` the compiler treats it as reading and writing all memory, so
    // it is a compiler barrier too. `nostack` holds: it pushes nothing, and
    // the kernel's target has no red zone for the compiler to keep data in
    // below the stack pointer.
    unsafe { core::arch::asm!("lock; addl $0, -4(%rsp)", options(att_syntax, nostack)) };
}
