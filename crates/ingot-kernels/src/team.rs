//! A team of threads for the decode loop: [`Team::run`] hands one closure to every member (the
//! caller is member 0) and returns when all have finished it.
//!
//! Why not rayon: decoding one token of a small model issues a parallel region every 20-50 µs
//! (each matrix-vector product, the attention over heads), and a rayon region costs several µs to
//! wake its workers and join them. Here members spin on an epoch counter between regions, so a
//! region starts within a cache-line transfer, and go to sleep on a condition variable only after
//! [`SPIN`] without work (between generations, or while the caller does something else).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle member spins before it sleeps.
pub const SPIN: Duration = Duration::from_micros(200);

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    size: usize,
    /// Bumped once per region; members run the job when they see a new value.
    epoch: AtomicU64,
    /// Members (other than the caller) done with the current region.
    done: AtomicUsize,
    /// The current region's closure. Written by the caller before it bumps `epoch`, read by
    /// members after they see the new epoch; valid until `done` reaches `size - 1`.
    job: UnsafeCell<Option<Job>>,
    /// A member's closure panicked (the region still completes; the caller then panics).
    panicked: AtomicBool,
    stop: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the caller of `run` while no member reads it (all members
// have finished the previous region: `run` waits for `done`), and read by members only between
// the epoch bump that publishes it and their `done` increment; the other fields are atomics or
// synchronisation primitives.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// A fixed set of threads that run closures together; see the module notes.
pub struct Team {
    shared: Arc<Shared>,
    members: Vec<JoinHandle<()>>,
    /// `run` takes `&self` but must not be entered twice at once.
    running: Mutex<()>,
}

impl Team {
    /// A team of `size` members: the caller of [`Team::run`] and `size - 1` threads.
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        let shared = Arc::new(Shared {
            size,
            epoch: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let members = (1..size)
            .map(|index| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("ingot-team-{index}"))
                    .spawn(move || member(&shared, index))
                    .expect("cannot start a decode thread")
            })
            .collect();
        Self { shared, members, running: Mutex::new(()) }
    }

    pub fn size(&self) -> usize {
        self.shared.size
    }

    /// Run `f(index)` on every member, `index` in `0..size()`, the caller being member 0;
    /// returns when all have returned.
    ///
    /// Panics if a member's call panicked (after every member has finished).
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        let s = &*self.shared;
        if s.size == 1 {
            f(0);
            return;
        }
        let _one_at_a_time = self.running.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: no member reads `job` now (the previous region completed before the last
        // `run` returned); erasing the lifetime is sound because this call does not return
        // before every member has finished with `f`.
        unsafe {
            let job: Job = std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f);
            *s.job.get() = Some(job);
        }
        s.done.store(0, Ordering::Relaxed);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0)));
        while s.done.load(Ordering::Acquire) < s.size - 1 {
            std::hint::spin_loop();
        }
        if let Err(payload) = mine {
            std::panic::resume_unwind(payload);
        }
        if s.panicked.swap(false, Ordering::SeqCst) {
            panic!("a decode thread panicked");
        }
    }
}

fn member(s: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for the next region: spin a while, then sleep.
        let started = Instant::now();
        let mut spins = 0u32;
        loop {
            let now = s.epoch.load(Ordering::Acquire);
            if now != seen {
                seen = now;
                break;
            }
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 && started.elapsed() > SPIN {
                let g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                let g = if s.epoch.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::SeqCst) {
                    s.wake.wait(g).unwrap_or_else(|e| e.into_inner())
                } else {
                    g
                };
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
                drop(g);
            } else {
                std::hint::spin_loop();
            }
        }
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: the caller published `job` before bumping the epoch seen above and keeps it
        // alive until this member's `done` increment below.
        let job = unsafe { (*s.job.get()).map(|j| &*j) };
        if let Some(job) = job {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(index))).is_err() {
                s.panicked.store(true, Ordering::SeqCst);
            }
        }
        s.done.fetch_add(1, Ordering::Release);
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.stop.store(true, Ordering::SeqCst);
        // SAFETY: no region is running (`run` borrows self); members see no job.
        unsafe {
            *s.job.get() = None;
        }
        s.epoch.fetch_add(1, Ordering::SeqCst);
        {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        for m in self.members.drain(..) {
            let _ = m.join();
        }
    }
}

/// An output buffer that team members fill in disjoint parts.
pub struct Disjoint<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: members only write through `part`, whose ranges the callers keep disjoint.
unsafe impl Send for Disjoint<'_> {}
unsafe impl Sync for Disjoint<'_> {}

impl<'a> Disjoint<'a> {
    pub fn new(out: &'a mut [f32]) -> Self {
        Self { ptr: out.as_mut_ptr(), len: out.len(), _borrow: std::marker::PhantomData }
    }

    /// The elements `range` of the buffer.
    ///
    /// # Safety
    /// No two live parts may overlap (each member takes its own range).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn part(&self, range: std::ops::Range<usize>) -> &mut [f32] {
        assert!(range.start <= range.end && range.end <= self.len, "part {range:?} of {}", self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.end - range.start)
    }
}

/// Member `index` of `size`'s share of `0..n`: contiguous, sizes differing by at most one,
/// aligned to `align` elements where that does not unbalance them.
pub fn share(n: usize, index: usize, size: usize, align: usize) -> std::ops::Range<usize> {
    let align = align.max(1);
    let units = n.div_ceil(align);
    let (a, b) = (units * index / size, units * (index + 1) / size);
    (a * align).min(n)..(b * align).min(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_runs_each_region_once() {
        let team = Team::new(3);
        let hits = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];
        for _ in 0..1000 {
            team.run(&|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
        }
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1000));
        // After sleeping, members wake for the next region.
        std::thread::sleep(SPIN * 5);
        team.run(&|i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1001));
    }

    #[test]
    fn members_fill_disjoint_shares() {
        let team = Team::new(4);
        let mut out = vec![0f32; 1003];
        let n = out.len();
        let parts = Disjoint::new(&mut out);
        team.run(&|i| {
            let r = share(n, i, 4, 16);
            // SAFETY: shares of distinct members do not overlap.
            let part = unsafe { parts.part(r.clone()) };
            for (j, v) in part.iter_mut().enumerate() {
                *v = (r.start + j) as f32;
            }
        });
        assert!(out.iter().enumerate().all(|(j, v)| *v == j as f32));
        let covered: usize = (0..4).map(|i| share(n, i, 4, 16).len()).sum();
        assert_eq!(covered, n);
        assert_eq!(share(10, 0, 1, 4), 0..10);
    }

    #[test]
    fn a_panicking_member_is_reported_after_the_region() {
        let team = Team::new(2);
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            team.run(&|i| {
                if i == 1 {
                    panic!("boom");
                }
            })
        }));
        std::panic::set_hook(quiet);
        assert!(r.is_err());
        // The team still works.
        let n = AtomicUsize::new(0);
        team.run(&|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }
}
