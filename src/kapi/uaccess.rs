// SPDX-License-Identifier: GPL-2.0

//! Access to the owner's address space at numeric addresses (C's
//! `linux/uaccess.h`): typed copies of ioctl arguments through
//! `kernel::uaccess`, and the data path's byte copies, `get_user`/
//! `put_user` of ring fields and the dirty log's atomic bit setting.
//!
//! The ioctl arguments and the rings live in the address space of the
//! calling task (the owner, or its worker, which shares it).

use super::shim::vhost_net_rs_copy_desc_from_user;
use super::shim::vhost_net_rs_current_mm_is;
use super::shim::{vhost_net_rs_access_ok, vhost_net_rs_copy_from_user, vhost_net_rs_copy_to_user};
use crate::kapi::version::{AsBytes, FromBytes};
use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

/// Reads a `T` from user address `addr` (`EFAULT` if it cannot).
pub(crate) fn read<T: FromBytes>(addr: usize) -> Result<T> {
    UserSlice::new(
        crate::kapi::version::user_ptr(addr),
        core::mem::size_of::<T>(),
    )
    .reader()
    .read::<T>()
}

/// Writes `value` to user address `addr` (`EFAULT` if it cannot).
pub(crate) fn write<T: AsBytes>(addr: usize, value: &T) -> Result {
    UserSlice::new(
        crate::kapi::version::user_ptr(addr),
        core::mem::size_of::<T>(),
    )
    .writer()
    .write(value)
}

/// `access_ok`: whether `[addr, addr + size)` is a user range at all (it
/// does not check that it is mapped).
pub(crate) fn access_ok(addr: u64, size: u64) -> bool {
    match (usize::try_from(addr), usize::try_from(size)) {
        // SAFETY: `access_ok` only does arithmetic on its arguments.
        (Ok(a), Ok(s)) => unsafe { vhost_net_rs_access_ok(a, s) },
        _ => false,
    }
}

/// Copies `buf.len()` bytes from user address `addr` (`EFAULT` unless all
/// of them could be read). The data path's copy: the kernel's inline
/// `access_ok` and `__copy_from_user`, as C's vhost: any `addr` is safe.
pub(crate) fn copy_from_user(addr: u64, buf: &mut [u8]) -> Result {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes;
    // the shim checks the user range (`access_ok`) and the copy faults safely.
    let left = unsafe {
        vhost_net_rs_copy_from_user(
            buf.as_mut_ptr().cast(),
            addr as usize as *const c_void,
            buf.len(),
        )
    };
    if left == 0 {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

/// [`copy_from_user`] of one 16-byte descriptor, with the size a constant
/// in C (as C's `vhost_get_desc`): a hardened kernel checks the kernel
/// side of a copy of run-time size with a call (`check_object_size`).
pub(crate) fn copy_desc_from_user(addr: u64, buf: &mut [u8; 16]) -> Result {
    // SAFETY: `buf` is valid for writes of 16 bytes; the shim checks the
    // user range (`access_ok`) and the copy faults safely.
    let left = unsafe {
        vhost_net_rs_copy_desc_from_user(buf.as_mut_ptr().cast(), addr as usize as *const c_void)
    };
    if left == 0 {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

/// Copies `data` to user address `addr` (`EFAULT` unless all of it could
/// be written), with `access_ok` and `__copy_to_user`.
pub(crate) fn copy_to_user(addr: u64, data: &[u8]) -> Result {
    // SAFETY: `data` is valid for reads of `data.len()` bytes;
    // the shim checks the user range (`access_ok`) and the copy faults safely.
    let left = unsafe {
        vhost_net_rs_copy_to_user(
            addr as usize as *mut c_void,
            data.as_ptr().cast(),
            data.len(),
        )
    };
    if left == 0 {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

/// Reads the 16-bit value at user address `addr` (native byte order),
/// with `get_user` as C reads ring indices and heads.
pub(crate) fn get_user_u16(addr: u64) -> Result<u16> {
    let err: u64;
    let val: u64;
    // SAFETY: This is the kernel's own `get_user()` on x86-64
    // (`do_get_user_call` in `arch/x86/include/asm/uaccess.h`): a call of
    // `__get_user_2` (`arch/x86/lib/getuser.S`, exported), which takes
    // the address in %rax, clamps it to the user range (so any `addr`
    // is safe), reads through its exception table (a fault is -EFAULT,
    // not an oops), returns 0 or -EFAULT in %rax and the zero-extended
    // value in %rdx, and changes no other register but the flags, which
    // `asm!` assumes clobbered without `preserves_flags`. Without
    // `nostack` the compiler leaves the stack ready for the call's push
    // (the kernel's target has no red zone); without `nomem` it treats
    // the call as reading and writing memory, so the ring protocol's
    // compiler fences order it as they order C's.
    unsafe {
        core::arch::asm!(
            "call __get_user_2",
            inlateout("rax") addr => err,
            lateout("rdx") val,
            options(att_syntax),
        )
    };
    to_result(err as i32)?;
    Ok(val as u16)
}

/// `put_user()` of the kernel on x86-64 (`do_put_user_call`): a call of
/// `__put_user_2` or `__put_user_8` (`arch/x86/lib/putuser.S`), named by
/// `$f`, with the value `$v` (a `u64`) and the address `$addr`; evaluates
/// to the error code (0 or -EFAULT).
macro_rules! put_user_call {
    ($f:literal, $v:expr, $addr:expr) => {{
        let err: u64;
        // SAFETY: `__put_user_2`/`__put_user_8` take the value in %rax and
        // the address in %rcx, clamp the address to the user range (so any
        // address is safe), write through their exception table (a fault
        // is -EFAULT, not an oops), return 0 or -EFAULT in %rcx, and change
        // no other register but %rbx and the flags. %rbx cannot be named as
        // an `asm!` operand (LLVM reserves it), so it is saved in a scratch
        // register around the call: `out(reg)` is never %rax or %rcx (named
        // operands) nor %rbx, and the callee does not touch it. The flags
        // are assumed clobbered without `preserves_flags`. Without
        // `nostack` the stack is ready for the call's push (no red zone in
        // the kernel); without `nomem` the call is ordered against memory
        // accesses and the ring protocol's compiler fences.
        unsafe {
            core::arch::asm!(
                "mov %rbx, {save}",
                concat!("call ", $f),
                "mov {save}, %rbx",
                save = out(reg) _,
                inlateout("rcx") $addr => err,
                in("rax") $v,
                options(att_syntax),
            )
        };
        err as i32
    }};
}

/// Writes the 16-bit `value` (native byte order) to user address `addr`
/// with `put_user`.
pub(crate) fn put_user_u16(addr: u64, value: u16) -> Result {
    to_result(put_user_call!("__put_user_2", u64::from(value), addr))
}

/// Writes the 64-bit `value` (native byte order) to user address `addr`
/// with `put_user`.
pub(crate) fn put_user_u64(addr: u64, value: u64) -> Result {
    to_result(put_user_call!("__put_user_8", value, addr))
}

/// `get_user`/`put_user`'s answer: 0 or `-EFAULT`.
fn to_result(r: i32) -> Result {
    if r == 0 {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

/// Sets bits `mask` in the byte at user address `addr` atomically, as the
/// C module's `set_bit_to_user` does: the page is pinned and the byte is
/// updated through the kernel mapping with an atomic OR, so a concurrent
/// reader-and-clearer in userspace (QEMU's migration code) loses no bit.
/// `EFAULT` from a task without an address space (where the copies fail
/// too, and `pin_user_pages_fast` would dereference the missing mm).
pub(crate) fn set_bits_to_user(addr: u64, mask: u8) -> Result {
    // SAFETY: Compares `current->mm` with NULL; nothing is dereferenced.
    if unsafe { vhost_net_rs_current_mm_is(core::ptr::null()) } {
        return Err(EFAULT);
    }
    let mut page: *mut bindings::page = core::ptr::null_mut();
    // SAFETY: One page is pinned into `page`; `addr` is any user address
    // of the current task, which has an address space (checked above).
    let r =
        unsafe { bindings::pin_user_pages_fast(addr as usize, 1, bindings::FOLL_WRITE, &mut page) };
    if r < 0 {
        return Err(Error::from_errno(r));
    }
    if r != 1 {
        return Err(EFAULT);
    }
    let offset = (addr as usize) & (bindings::PAGE_SIZE - 1);
    // SAFETY: `page` is pinned; the local mapping is released below.
    let base = unsafe { bindings::kmap_local_page(page) };
    // Like C's `set_bit`, update the aligned 64-bit word that holds the
    // byte (little endian), so userspace's word-sized atomic exchange and
    // our update never tear.
    let word_offset = offset & !7;
    let shift = (offset & 7) * 8;
    // SAFETY: `word_offset + 8 <= PAGE_SIZE` inside the mapped page, and
    // the page mapping is page aligned, so the word is aligned.
    let word = unsafe { &*base.cast::<u8>().add(word_offset).cast::<AtomicU64>() };
    word.fetch_or(u64::from(mask) << shift, Ordering::Relaxed);
    // SAFETY: Unmaps what `kmap_local_page` mapped, then unpins (marking
    // the page dirty) what `pin_user_pages_fast` pinned.
    unsafe {
        bindings::kunmap_local(base.cast::<c_void>());
        bindings::unpin_user_pages_dirty_lock(&mut page, 1, true);
    }
    Ok(())
}
