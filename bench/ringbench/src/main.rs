//! ringbench: the per-packet ring work of the worker, on the host.
//!
//! Drives `src/vcore/ring` (compiled by path, as in the module and in
//! `tests/unit`) the way `handle_tx` does for one-descriptor packets:
//! `get_desc_chain`, collect heads, `add_used` every BATCH (64) heads,
//! `need_notify`, `avail_empty` for MSG_MORE; the "guest" refills the
//! avail ring. Memory is a plain byte image (the kernel does
//! copy_from_user/copy_to_user instead, counted in `calls`).
//!
//! Usage: ringbench [PACKETS] [mode]   mode: tx (default) | rx-mrg
//! Run under `valgrind --tool=callgrind` for instructions per packet:
//! the total is printed as "Ir per packet" by scripts or by hand.
//! It also prints the user-memory accesses per packet (the number of
//! copy_from_user/copy_to_user calls the kernel glue would make).

#[allow(dead_code)]
#[path = "../../../src/vcore/mod.rs"]
mod vcore;

use std::cell::Cell;
use vcore::errno::Errno;
use vcore::memory::dirtylog::DirtyBitmap;
use vcore::memory::intervalmap::{
    Entry, IntervalMap, Piece, Slot, Storage, TranslateError, PERM_RO, PERM_WO,
};
use vcore::ring::access::{RingMemory, Translate};
use vcore::ring::chain::{ChainBufs, MAX_PACKET_READS};
use vcore::ring::desc::UsedElem;
use vcore::ring::split::{SplitConfig, SplitRing};

const NUM: u32 = 256;
const BASE: u64 = 0x7f00_0000_0000;
const GPA: u64 = 0x4000_0000;
const SIZE: usize = 4 << 20;
const BATCH: usize = 64;

struct Mem {
    data: *mut u8,
    reads: Cell<u64>,
    writes: Cell<u64>,
}

impl Mem {
    fn off(&self, uaddr: u64, len: usize) -> Result<usize, Errno> {
        let off = uaddr.checked_sub(BASE).ok_or(Errno::EFAULT)? as usize;
        if off + len > SIZE {
            return Err(Errno::EFAULT);
        }
        Ok(off)
    }
    fn poke16(&self, uaddr: u64, v: u16) {
        let o = self.off(uaddr, 2).unwrap();
        unsafe { std::ptr::copy_nonoverlapping(v.to_le_bytes().as_ptr(), self.data.add(o), 2) }
    }
    fn poke(&self, uaddr: u64, b: &[u8]) {
        let o = self.off(uaddr, b.len()).unwrap();
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), self.data.add(o), b.len()) }
    }
}

impl DirtyBitmap for Mem {
    fn set_log_bits(&self, _uaddr: u64, _mask: u8) -> Result<(), Errno> {
        Ok(())
    }
}

impl RingMemory for Mem {
    #[inline(never)]
    fn read(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.reads.set(self.reads.get() + 1);
        let o = self.off(uaddr, buf.len())?;
        unsafe { std::ptr::copy_nonoverlapping(self.data.add(o), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
    #[inline(never)]
    fn write(&self, uaddr: u64, buf: &[u8]) -> Result<(), Errno> {
        self.writes.set(self.writes.get() + 1);
        let o = self.off(uaddr, buf.len())?;
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.data.add(o), buf.len()) };
        Ok(())
    }
    fn rmb(&self) {}
    fn wmb(&self) {}
    fn mb(&self) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
    fn log_signal(&self) {}
}

#[derive(Default)]
struct Slots(Vec<Slot>);
impl Storage for Slots {
    fn slots(&self) -> &[Slot] {
        &self.0
    }
    fn slots_mut(&mut self) -> &mut [Slot] {
        &mut self.0
    }
    fn insert(&mut self, index: usize, slot: Slot) -> Result<(), Errno> {
        self.0.insert(index, slot);
        Ok(())
    }
    fn remove(&mut self, index: usize) -> Slot {
        self.0.remove(index)
    }
}

struct Xlate(IntervalMap<Slots>);
impl Translate for Xlate {
    #[inline(never)]
    fn translate(
        &self,
        addr: u64,
        len: u32,
        access: u32,
        out: &mut [Piece],
    ) -> Result<usize, TranslateError> {
        self.0.translate(addr, len, access, out)
    }
    fn device_iotlb(&self) -> bool {
        false
    }
    fn umem_region(&self, _index: usize) -> Option<Entry> {
        None
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let packets: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mode = args.next().unwrap_or_else(|| "tx".into());
    let rx = mode == "rx-mrg";
    let mem = Mem {
        data: Box::leak(vec![0u8; SIZE].into_boxed_slice()).as_mut_ptr(),
        reads: Cell::new(0),
        writes: Cell::new(0),
    };
    // memory table: two regions like QEMU's (below and above 3 GiB would be
    // more; the lookup is a sorted-slot search either way)
    let mut map = IntervalMap::new(Slots::default(), 2048, 0);
    map.add_range(GPA, GPA + (SIZE as u64) - 1, BASE, PERM_RO | PERM_WO)
        .unwrap();
    map.add_range(0, 0xfff_ffff, BASE + (1 << 40), PERM_RO | PERM_WO)
        .unwrap();
    let xlate = Xlate(map);
    let desc = BASE;
    let avail = BASE + 16 * NUM as u64;
    let used = (avail + 6 + 2 * NUM as u64 + 4095) & !4095;
    let cfg = SplitConfig {
        num: NUM,
        desc,
        avail,
        used,
        event_idx: true,
        notify_on_empty: false,
    };
    let mut ring = SplitRing::new(&cfg).unwrap();
    ring.init_access(&mem, &xlate).unwrap();
    let buf_at = |i: u32| GPA + 0x10000 + 4096 * i as u64;
    for i in 0..NUM {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&buf_at(i).to_le_bytes());
        d[8..12].copy_from_slice(&(if rx { 4096u32 } else { 76u32 }).to_le_bytes());
        d[12..14].copy_from_slice(&(if rx { 2u16 } else { 0 }).to_le_bytes());
        mem.poke(desc + 16 * i as u64, &d);
    }
    let mut avail_idx: u16 = 0;
    let mut push = |mem: &Mem, id: u16| {
        mem.poke16(avail + 4 + 2 * (avail_idx as u64 % NUM as u64), id);
        avail_idx = avail_idx.wrapping_add(1);
        mem.poke16(avail + 2, avail_idx);
    };
    for i in 0..NUM {
        push(&mem, i as u16);
    }
    let mut iov = vec![Piece::default(); 1024];
    let mut indirect = vec![Piece::default(); 1024];
    let mut heads = vec![UsedElem::default(); BATCH];
    let mut done = 0usize;
    let mut notifies = 0u64;
    let mut more = 0u64;
    for _ in 0..packets {
        let chain = ring
            .get_desc_chain(
                &mem,
                &xlate,
                ChainBufs {
                    iov: &mut iov,
                    indirect: &mut indirect,
                    log: None,
                    reads: MAX_PACKET_READS,
                },
            )
            .unwrap()
            .expect("ring empty");
        std::hint::black_box(&iov[..chain.out_num + chain.in_num]);
        if !rx && !ring.avail_empty(&mem).value {
            more += 1;
        }
        heads[done] = UsedElem {
            id: u32::from(chain.head),
            len: if rx { 76 } else { 0 },
        };
        done += 1;
        if done == BATCH {
            ring.add_used(&mem, &xlate, &heads[..done]).unwrap();
            if ring.need_notify(&mem).value {
                notifies += 1;
            }
            // the guest takes the used entries back and re-posts them
            for h in &heads[..done] {
                push(&mem, h.id as u16);
            }
            done = 0;
        }
    }
    let p = packets as f64;
    println!(
        "ringbench {mode}: {packets} packets, user reads/pkt {:.2}, writes/pkt {:.3}, notifies {notifies}, MSG_MORE {more}",
        mem.reads.get() as f64 / p,
        mem.writes.get() as f64 / p
    );
}
