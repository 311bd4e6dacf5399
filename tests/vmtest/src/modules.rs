//! Loading and unloading the implementations under test, and reading the
//! `.modinfo` section of a .ko file.

use crate::sys::{self, Errno};
use std::path::{Path, PathBuf};

/// One implementation of /dev/vhost-net.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Impl {
    /// The kernel's C vhost_net.ko (with vhost.ko and vhost_iotlb.ko).
    C,
    /// Our vhost_net_rs.ko.
    Ours,
}

impl Impl {
    pub fn label(self) -> &'static str {
        match self {
            Impl::C => "c",
            Impl::Ours => "ours",
        }
    }
}

/// Where the modules are, as given on the command line.
#[derive(Clone, Debug)]
pub struct Paths {
    /// Directory with vhost_iotlb.ko, vhost.ko, vhost_net.ko.
    pub c_dir: PathBuf,
    /// vhost_net_rs.ko, if it exists.
    pub ours: Option<PathBuf>,
    /// Harness self-check: "ours" is the C module again (C against C must
    /// compare equal; any difference is a nondeterministic observation).
    pub self_diff: bool,
}

/// The C modules, in load order.
pub const C_MODULES: [&str; 3] = ["vhost_iotlb", "vhost", "vhost_net"];
/// The name our module registers under (its file name without .ko).
pub const OURS_NAME: &str = "vhost_net_rs";

impl Paths {
    pub fn c_module(&self, name: &str) -> PathBuf {
        self.c_dir.join(format!("{name}.ko"))
    }

    /// The module name that provides /dev/vhost-net for an implementation.
    pub fn main_module(&self, imp: Impl) -> &'static str {
        match imp {
            Impl::C => "vhost_net",
            Impl::Ours if self.self_diff => "vhost_net",
            Impl::Ours => OURS_NAME,
        }
    }

    /// Whether the "ours" side can run at all.
    pub fn has_ours(&self) -> bool {
        self.ours.is_some() || self.self_diff
    }

    /// Loads an implementation; on failure nothing stays loaded.
    pub fn load(&self, imp: Impl) -> Result<(), String> {
        self.load_with(imp, "")
    }

    /// Loads an implementation with module parameters (`name=value`
    /// words), each given to the module that takes it (`param_module`); a
    /// C module already loaded keeps the parameters it has. On failure
    /// nothing stays loaded.
    pub fn load_with(&self, imp: Impl, params: &str) -> Result<(), String> {
        let imp = if self.self_diff { Impl::C } else { imp };
        match imp {
            Impl::C => {
                let mut loaded: Vec<&str> = Vec::new();
                for m in C_MODULES {
                    if is_loaded(m) {
                        continue;
                    }
                    let own: Vec<&str> = params
                        .split_whitespace()
                        .filter(|w| c_param_module(w.split('=').next().unwrap_or(w)) == m)
                        .collect();
                    let own = own.join(" ");
                    if let Err(e) = sys::finit_module(&self.c_module(m), &own) {
                        for l in loaded.iter().rev() {
                            let _ = sys::delete_module(l);
                        }
                        return Err(format!("finit_module({m}.ko, {own:?}): {e}"));
                    }
                    loaded.push(m);
                }
                Ok(())
            }
            Impl::Ours => {
                let p = self.ours.as_ref().ok_or("module not built")?;
                sys::finit_module(p, params)
                    .map(|_| ())
                    .map_err(|e| format!("finit_module({}, {params:?}): {e}", p.display()))
            }
        }
    }

    /// Unloads an implementation and loads it again with `params` (see
    /// `load_with`).
    pub fn reload(&self, imp: Impl, params: &str) -> Result<(), String> {
        self.unload(imp)?;
        self.load_with(imp, params)
    }

    /// The module that has parameter `param` in an implementation: C keeps
    /// the ones every vhost device shares in vhost.ko; ours has them all.
    pub fn param_module(&self, imp: Impl, param: &str) -> &'static str {
        match imp {
            Impl::Ours if !self.self_diff => OURS_NAME,
            _ => c_param_module(param),
        }
    }

    /// Unloads an implementation. Retries briefly on EAGAIN/EBUSY (a file
    /// being released on another CPU); a reference still held after that is
    /// reported as an error: something leaked.
    pub fn unload(&self, imp: Impl) -> Result<(), String> {
        let imp = if self.self_diff { Impl::C } else { imp };
        let names: Vec<&str> = match imp {
            Impl::C => C_MODULES.iter().rev().copied().collect(),
            Impl::Ours => vec![OURS_NAME],
        };
        for m in names {
            unload_one(m)?;
        }
        Ok(())
    }
}

/// The C module that takes parameter `param`: vhost_net.ko its own
/// (`experimental_zcopytx`), vhost.ko the rest (`max_mem_regions`,
/// `max_iotlb_entries`, `fork_from_owner_default`).
pub fn c_param_module(param: &str) -> &'static str {
    match param {
        "experimental_zcopytx" => "vhost_net",
        _ => "vhost",
    }
}

pub fn is_loaded(name: &str) -> bool {
    Path::new(&format!("/sys/module/{name}")).exists()
        && Path::new(&format!("/sys/module/{name}/refcnt")).exists()
}

/// The reference count of a loaded module, from sysfs.
pub fn refcnt(name: &str) -> Result<String, Errno> {
    sys::read_trim(&format!("/sys/module/{name}/refcnt"))
}

pub fn unload_one(name: &str) -> Result<(), String> {
    if !is_loaded(name) {
        return Ok(());
    }
    let mut last = Errno(0);
    for _ in 0..40 {
        match sys::delete_module(name) {
            Ok(_) => return Ok(()),
            Err(e) if e.0 == libc::EAGAIN || e.0 == libc::EBUSY => {
                last = e;
                sys::sleep_ms(50);
            }
            Err(e) => return Err(format!("delete_module({name}): {e}")),
        }
    }
    Err(format!(
        "delete_module({name}): {last} for 2 s, refcnt {}: a reference leaked",
        refcnt(name).unwrap_or_else(|e| e.to_string())
    ))
}

/// Unloads whatever vhost implementation is loaded (cleanup between tests).
/// Returns the names of the modules that had to be unloaded.
pub fn unload_all() -> (Vec<String>, Vec<String>) {
    let mut unloaded = Vec::new();
    let mut errors = Vec::new();
    for m in [OURS_NAME, "vhost_net", "vhost", "vhost_iotlb"] {
        if is_loaded(m) {
            match unload_one(m) {
                Ok(()) => unloaded.push(m.to_string()),
                Err(e) => errors.push(e),
            }
        }
    }
    (unloaded, errors)
}

/// The `key=value` strings of the `.modinfo` section of an ELF64 .ko file.
pub fn modinfo(path: &Path) -> Result<Vec<(String, String)>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sec = elf_section(&data, ".modinfo").map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(sec
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = String::from_utf8_lossy(s);
            match s.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (s.to_string(), String::new()),
            }
        })
        .collect())
}

fn elf_section<'a>(d: &'a [u8], want: &str) -> Result<&'a [u8], String> {
    let u16_at = |o: usize| -> Result<u16, String> {
        d.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated ELF".to_string())
    };
    let u32_at = |o: usize| -> Result<u32, String> {
        d.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| "truncated ELF".to_string())
    };
    let u64_at = |o: usize| -> Result<u64, String> {
        d.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| "truncated ELF".to_string())
    };
    if d.len() < 64 || &d[..4] != b"\x7fELF" || d[4] != 2 || d[5] != 1 {
        return Err("not a little-endian ELF64 file".into());
    }
    let shoff = u64_at(0x28)? as usize;
    let shentsize = u16_at(0x3a)? as usize;
    let shnum = u16_at(0x3c)? as usize;
    let shstrndx = u16_at(0x3e)? as usize;
    let sh = |i: usize| shoff + i * shentsize;
    let strtab_off = u64_at(sh(shstrndx) + 0x18)? as usize;
    for i in 0..shnum {
        let name_off = u32_at(sh(i))? as usize;
        let name_start = strtab_off + name_off;
        let name_end = d[name_start..]
            .iter()
            .position(|&b| b == 0)
            .map(|p| name_start + p)
            .ok_or("bad section name")?;
        if &d[name_start..name_end] == want.as_bytes() {
            let off = u64_at(sh(i) + 0x18)? as usize;
            let size = u64_at(sh(i) + 0x20)? as usize;
            return d
                .get(off..off + size)
                .ok_or_else(|| "section out of file".into());
        }
    }
    Err(format!("no {want} section"))
}
