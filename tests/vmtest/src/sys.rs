//! Thin syscall wrappers: every call returns `Res`, the raw return value or
//! the errno, so a test can record exactly what userspace saw.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An errno value, printed as `EBUSY(16)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Errno(pub i32);

impl Errno {
    pub fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::ESRCH => "ESRCH",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::ENXIO => "ENXIO",
            libc::E2BIG => "E2BIG",
            libc::ENOEXEC => "ENOEXEC",
            libc::EBADF => "EBADF",
            libc::EBADFD => "EBADFD",
            libc::ECHILD => "ECHILD",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::ENODEV => "ENODEV",
            libc::ENOTDIR => "ENOTDIR",
            libc::EINVAL => "EINVAL",
            libc::ENFILE => "ENFILE",
            libc::EMFILE => "EMFILE",
            libc::ENOTTY => "ENOTTY",
            libc::EFBIG => "EFBIG",
            libc::ENOSPC => "ENOSPC",
            libc::ESPIPE => "ESPIPE",
            libc::EROFS => "EROFS",
            libc::EPIPE => "EPIPE",
            libc::ERANGE => "ERANGE",
            libc::ENOSYS => "ENOSYS",
            libc::ENOTSOCK => "ENOTSOCK",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::EAFNOSUPPORT => "EAFNOSUPPORT",
            libc::EADDRINUSE => "EADDRINUSE",
            libc::ENETDOWN => "ENETDOWN",
            libc::ENOBUFS => "ENOBUFS",
            libc::EISCONN => "EISCONN",
            libc::ENOTCONN => "ENOTCONN",
            libc::ETIMEDOUT => "ETIMEDOUT",
            libc::EBADMSG => "EBADMSG",
            libc::EOVERFLOW => "EOVERFLOW",
            libc::EKEYREJECTED => "EKEYREJECTED",
            libc::EMSGSIZE => "EMSGSIZE",
            libc::ELOOP => "ELOOP",
            libc::ENAMETOOLONG => "ENAMETOOLONG",
            libc::ENOTEMPTY => "ENOTEMPTY",
            _ => "E?",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

/// What a syscall returned: `Ok(value)` or `Err(errno)`.
pub type Res = Result<i64, Errno>;

/// Formats a result the way observations record it: `0`, `3`, `-1 EBUSY(16)`.
pub fn fmt_res(r: &Res) -> String {
    match r {
        Ok(v) => format!("{v}"),
        Err(e) => format!("-1 {e}"),
    }
}

fn chk(r: i64) -> Res {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

pub fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path with NUL")
}

/// An owned file descriptor, closed on drop.
pub struct Fd(pub i32);

impl Fd {
    pub fn raw(&self) -> i32 {
        self.0
    }
    /// Closes explicitly and returns what close(2) said.
    pub fn close(self) -> Res {
        let fd = self.0;
        std::mem::forget(self);
        // SAFETY: `fd` was owned by `self`, which is forgotten above, so it is closed exactly once,
        // here; close(2) takes only an integer.
        chk(unsafe { libc::close(fd) } as i64)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: closes the descriptor this `Fd` owns; `close` (which forgets `self`) is the only
        // other place that closes it, so it is never closed twice. Integer argument only.
        unsafe { libc::close(self.0) };
    }
}

pub fn open(path: &str, flags: i32) -> Result<Fd, Errno> {
    let p = CString::new(path).unwrap();
    // SAFETY: `p` is a NUL-terminated CString that lives until the end of the function.
    let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(Errno::last())
    } else {
        Ok(Fd(fd))
    }
}

/// `ioctl(fd, req, arg)` with an integer/pointer argument.
pub fn ioctl(fd: i32, req: u64, arg: usize) -> Res {
    // SAFETY: raw ioctl(2): the kernel validates `fd`, `req` and `arg` and copies through `arg`
    // with copy_{from,to}_user (a bad pointer gives EFAULT). A request that writes through `arg`
    // relies on the caller passing a live object big enough (`ioctl_ptr`: `&mut T`).
    chk(unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            fd as libc::c_long,
            req as libc::c_ulong,
            arg,
        )
    })
}

/// `ioctl(fd, req, &mut *val)`.
pub fn ioctl_ptr<T>(fd: i32, req: u64, val: &mut T) -> Res {
    ioctl(fd, req, val as *mut T as usize)
}

pub fn finit_module(path: &Path, params: &str) -> Res {
    let p = cstr(path);
    // SAFETY: `p` is a NUL-terminated CString alive across the call.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    let params = CString::new(params).unwrap();
    // SAFETY: `fd` is the descriptor opened above; `params` is a NUL-terminated CString alive
    // across the call; flags are 0.
    let r = chk(unsafe { libc::syscall(libc::SYS_finit_module, fd, params.as_ptr(), 0) });
    // SAFETY: closes `fd`, opened above and not used again; integer argument only.
    unsafe { libc::close(fd) };
    r
}

pub fn delete_module(name: &str) -> Res {
    let n = CString::new(name).unwrap();
    // SAFETY: `n` is a NUL-terminated CString alive across the call; the flags are an integer.
    chk(unsafe { libc::syscall(libc::SYS_delete_module, n.as_ptr(), libc::O_NONBLOCK) })
}

/// stat(2) of a path: `(mode, rdev major, rdev minor, uid, gid)`.
pub fn stat(path: &str) -> Result<(u32, u32, u32, u32, u32), Errno> {
    let p = CString::new(path).unwrap();
    // SAFETY: `libc::stat` is a plain C struct of integers: all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `p` is a NUL-terminated CString and `st` a writable `libc::stat`, both alive across
    // the call.
    if unsafe { libc::stat(p.as_ptr(), &mut st) } < 0 {
        return Err(Errno::last());
    }
    Ok((
        st.st_mode,
        libc::major(st.st_rdev),
        libc::minor(st.st_rdev),
        st.st_uid,
        st.st_gid,
    ))
}

pub fn path_exists(p: &str) -> bool {
    Path::new(p).exists()
}

/// Reads a small sysfs/procfs file, trimmed; the errno if it cannot be read.
pub fn read_trim(p: &str) -> Result<String, Errno> {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .map_err(|e| Errno(e.raw_os_error().unwrap_or(0)))
}

/// Reads every record currently available from a non-blocking /dev/kmsg fd.
pub fn kmsg_drain(fd: &Fd) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        // SAFETY: `fd` is an open descriptor borrowed for the call; `buf` is a valid, writable
        // buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(fd.0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = Errno::last();
            if e.0 == libc::EPIPE {
                continue; // a record was overwritten: go on with the next one
            }
            break;
        }
        if n == 0 {
            break;
        }
        let rec = String::from_utf8_lossy(&buf[..n as usize]).to_string();
        // "prio,seq,ts,flags;message\n continuation lines"
        let msg = rec.split_once(';').map(|(_, m)| m).unwrap_or(&rec);
        out.push(msg.lines().next().unwrap_or("").to_string());
    }
    out
}

/// Opens /dev/kmsg positioned at its end, so only new records are read.
pub fn kmsg_open_at_end() -> Result<Fd, Errno> {
    let fd = open("/dev/kmsg", libc::O_RDONLY | libc::O_NONBLOCK)?;
    // SAFETY: `fd` is the descriptor opened just above; integer arguments only.
    if unsafe { libc::lseek(fd.0, 0, libc::SEEK_END) } < 0 {
        return Err(Errno::last());
    }
    Ok(fd)
}

/// Pins the calling thread to CPU `cpu` (threads it creates, and a
/// vhost worker it starts, inherit the mask).
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: `set` is a zeroed, valid cpu_set_t; CPU_SET writes inside it;
    // sched_setaffinity(0, ..) applies to the calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Waits for child `pid`: its exit status, -signal if a signal ended it,
/// or -1000 if it could not be waited for.
pub fn reap(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid int.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return -1000;
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    }
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}
