//! Persistent worker pool behind `grim_parallel_for`.
//!
//! Design, in short:
//!
//! * `threads - 1` workers are spawned once, when the pool is created, and
//!   live until it is dropped. Between jobs they spin for a short, bounded
//!   time (so back-to-back calls from one model run do not pay a futex wake
//!   per layer) and then park on a condvar (so an idle context costs no CPU).
//! * One job at a time. The job description lives in the shared block and is
//!   published by bumping an epoch in a single atomic `state` word that also
//!   holds a "closed" bit and the number of workers currently inside the job.
//!   A worker may only read the job after it has *joined* by incrementing the
//!   count with a CAS that also checks "same epoch, not closed". The caller
//!   closes the job once it has run out of chunks and then waits only for the
//!   workers that actually joined. A worker that wakes up late therefore
//!   never touches a job description that is being rewritten, and the caller
//!   never waits on a sleeping worker that had nothing to do.
//! * Chunks are handed out dynamically by an atomic chunk counter, so uneven
//!   per-chunk work balances across threads.

use std::cell::Cell;
use std::ffi::c_void;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Signature of a loop body: `body(arg, begin, end)` processes `[begin, end)`.
///
/// It is an `extern "C"` function, so a Rust body that panics aborts the
/// process instead of unwinding into the pool; no unwind handling is needed
/// around the call.
pub type ParallelBody = unsafe extern "C" fn(arg: *mut c_void, begin: i64, end: i64);

/// Low 32 bits of `state`: number of workers currently inside the job.
const COUNT_MASK: u64 = (1 << 32) - 1;
/// Bit 32 of `state`: the job accepts no new participants.
const CLOSED: u64 = 1 << 32;
/// Bits 33.. of `state`: job epoch (wraps; see `try_join` for why that is fine).
const EPOCH_SHIFT: u32 = 33;
const EPOCH_MASK: u64 = u64::MAX >> EPOCH_SHIFT;

/// Upper bound on the pool size, so that an absurd request from C fails
/// fast instead of trying to spawn billions of threads.
pub const MAX_THREADS: usize = 1024;

/// Default time a worker (or the waiting caller) spins before parking.
const DEFAULT_SPIN: Duration = Duration::from_micros(100);

/// Stack size of the workers. Generated kernels may keep sizeable tiles on
/// the stack; match the usual main-thread limit instead of std's 2 MiB.
const WORKER_STACK: usize = 8 << 20;

thread_local! {
    /// True while this thread executes a body (always true on pool workers):
    /// a nested `parallel_for` must not try to use the single job slot.
    static IN_PARALLEL: Cell<bool> = const { Cell::new(false) };
}

/// Keeps the two hot atomics on separate cache lines (128 bytes covers the
/// adjacent-line prefetcher on x86 and the 128-byte lines of some aarch64
/// cores) so chunk grabbing does not bounce the line holding `state`.
#[repr(align(128))]
struct CachePadded<T>(T);

struct Shared {
    state: CachePadded<AtomicU64>,
    next_chunk: CachePadded<AtomicU64>,
    // The job description. Written only by the caller while the job is
    // closed with no participants, read only by joined participants; the
    // epoch publication in `state` orders the accesses, so relaxed is enough.
    body: AtomicUsize,
    arg: AtomicPtr<c_void>,
    n: AtomicI64,
    grain: AtomicI64,
    /// Workers parked (or about to park) on `work_cv`.
    sleepers: AtomicUsize,
    /// The caller is parked (or about to park) on `done_cv`.
    caller_parked: AtomicBool,
    shutdown: AtomicBool,
    lock: Mutex<()>,
    work_cv: Condvar,
    done_cv: Condvar,
    spin: Duration,
}

/// A job snapshot read by a participant after joining.
#[derive(Clone, Copy)]
struct Job {
    body: ParallelBody,
    arg: *mut c_void,
    n: i64,
    grain: i64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data (it only pairs with the condvars), so a
        // poisoned lock carries no broken invariant and can be reused.
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load_job(&self) -> Option<Job> {
        let raw = self.body.load(Ordering::Relaxed);
        if raw == 0 {
            return None;
        }
        // SAFETY: `raw` was stored from a valid `ParallelBody` in `publish`.
        let body = unsafe { std::mem::transmute::<usize, ParallelBody>(raw) };
        Some(Job {
            body,
            arg: self.arg.load(Ordering::Relaxed),
            n: self.n.load(Ordering::Relaxed),
            grain: self.grain.load(Ordering::Relaxed),
        })
    }

    /// Runs chunks of `job` until the chunk counter passes `n`.
    fn run_chunks(&self, job: Job) {
        // Counting chunks (not iterations) keeps the counter far from
        // overflow even for n close to i64::MAX.
        let grain = job.grain as u64;
        loop {
            let chunk = self.next_chunk.0.fetch_add(1, Ordering::Relaxed);
            let begin = match chunk.checked_mul(grain) {
                Some(b) if b < job.n as u64 => b as i64,
                _ => return,
            };
            let end = begin.saturating_add(job.grain).min(job.n);
            // SAFETY: the caller of `parallel_for` promised that `body` may be
            // called with `arg` on any thread for disjoint sub-ranges.
            unsafe { (job.body)(job.arg, begin, end) };
        }
    }

    fn job_available(&self, last_epoch: u64) -> bool {
        let s = self.state.0.load(Ordering::SeqCst);
        s & CLOSED == 0 && (s >> EPOCH_SHIFT) != last_epoch
    }

    /// Enters the current job if it is open and not yet seen by this worker.
    fn try_join(&self, last_epoch: &mut u64) -> bool {
        let mut s = self.state.0.load(Ordering::Acquire);
        loop {
            let epoch = s >> EPOCH_SHIFT;
            // A worker that slept through exactly 2^31 jobs would wrongly
            // skip one; that only costs parallelism, never correctness,
            // because the caller does all unclaimed chunks itself.
            if s & CLOSED != 0 || epoch == *last_epoch {
                return false;
            }
            match self
                .state
                .0
                .compare_exchange_weak(s, s + 1, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => {
                    *last_epoch = epoch;
                    return true;
                }
                Err(cur) => s = cur,
            }
        }
    }

    fn leave(&self) {
        let prev = self.state.0.fetch_sub(1, Ordering::SeqCst);
        // Pairs with the caller's store of `caller_parked` followed by its
        // load of `state` (both SeqCst): at least one side sees the other,
        // so the caller cannot sleep through the last worker leaving.
        if prev & COUNT_MASK == 1 && prev & CLOSED != 0 && self.caller_parked.load(Ordering::SeqCst)
        {
            let _g = self.lock();
            self.done_cv.notify_all();
        }
    }

    /// Waits until a new job may be available or shutdown is requested.
    fn wait_for_work(&self, last_epoch: u64) {
        let deadline = Instant::now() + self.spin;
        let mut i: u32 = 0;
        loop {
            if self.shutdown.load(Ordering::Relaxed) || self.job_available(last_epoch) {
                return;
            }
            spin_loop();
            i = i.wrapping_add(1);
            // Reading the clock every iteration would dominate the spin.
            if i % 64 == 0 && Instant::now() >= deadline {
                break;
            }
        }
        let mut g = self.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // The SeqCst increment above and the SeqCst loads in the condition
        // pair with `publish` (SeqCst store of state, SeqCst load of
        // sleepers), so a job published concurrently is never missed.
        while !self.shutdown.load(Ordering::SeqCst) && !self.job_available(last_epoch) {
            g = self.work_cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    fn worker_main(self: Arc<Self>) {
        IN_PARALLEL.with(|f| f.set(true));
        let mut last_epoch = self.state.0.load(Ordering::Acquire) >> EPOCH_SHIFT;
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                return;
            }
            if self.try_join(&mut last_epoch) {
                if let Some(job) = self.load_job() {
                    self.run_chunks(job);
                }
                self.leave();
            } else {
                self.wait_for_work(last_epoch);
            }
        }
    }
}

/// A fixed-size pool of worker threads; the thread calling
/// [`Pool::parallel_for`] is one of the `threads` participants.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
    /// Serialises callers: the pool has one job slot.
    busy: AtomicBool,
}

impl Pool {
    /// Creates a pool of `threads` participants in total (spawning
    /// `threads - 1` workers). `threads` is clamped to `1..=MAX_THREADS`.
    ///
    /// The spin time before parking can be tuned with the `GRIM_SPIN_US`
    /// environment variable (microseconds, 0 parks immediately).
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let threads = threads.clamp(1, MAX_THREADS);
        let spin = std::env::var("GRIM_SPIN_US")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_micros)
            .unwrap_or(DEFAULT_SPIN);
        let shared = Arc::new(Shared {
            // Epoch 0, closed, empty: nothing to join until the first publish.
            state: CachePadded(AtomicU64::new(CLOSED)),
            next_chunk: CachePadded(AtomicU64::new(0)),
            body: AtomicUsize::new(0),
            arg: AtomicPtr::new(std::ptr::null_mut()),
            n: AtomicI64::new(0),
            grain: AtomicI64::new(1),
            sleepers: AtomicUsize::new(0),
            caller_parked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(()),
            work_cv: Condvar::new(),
            done_cv: Condvar::new(),
            spin,
        });
        let mut pool = Pool {
            shared,
            workers: Vec::with_capacity(threads - 1),
            threads,
            busy: AtomicBool::new(false),
        };
        for i in 1..threads {
            let shared = Arc::clone(&pool.shared);
            let handle = std::thread::Builder::new()
                .name(format!("grim-worker-{i}"))
                .stack_size(WORKER_STACK)
                .spawn(move || shared.worker_main())?;
            // On a spawn error `pool` is dropped by `?`, which joins the
            // workers spawned so far.
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Total number of participants (workers + the calling thread).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `body(arg, begin, end)` over `[0, n)` in chunks of `grain`
    /// (`grain <= 0`: `ceil(n / (4 * threads))`), using the calling thread
    /// and the workers; returns when all chunks are done.
    ///
    /// Runs inline, as a single `body(arg, 0, n)` call, when the pool has one
    /// thread, when the range fits in one chunk, when called from inside a
    /// body (nested call), or when another thread is already running a job
    /// on this pool.
    ///
    /// # Safety
    /// `body` must be safe to call concurrently from several threads with
    /// `arg` and disjoint sub-ranges of `[0, n)`.
    pub unsafe fn parallel_for(&self, n: i64, grain: i64, body: ParallelBody, arg: *mut c_void) {
        if n <= 0 {
            return;
        }
        let grain = if grain > 0 {
            grain
        } else {
            let parts = (4 * self.threads) as i64;
            // ceil(n / parts) without the overflow of n + parts - 1.
            n / parts + i64::from(n % parts != 0)
        };
        if self.threads == 1 || grain >= n || IN_PARALLEL.with(|f| f.get()) {
            // SAFETY: forwarded from the caller's contract.
            unsafe { body(arg, 0, n) };
            return;
        }
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Another application thread owns the job slot; correctness
            // first, so run serially rather than wait or fail.
            unsafe { body(arg, 0, n) };
            return;
        }
        let job = Job {
            body,
            arg,
            n,
            grain,
        };
        self.publish(job);
        IN_PARALLEL.with(|f| f.set(true));
        self.shared.run_chunks(job);
        IN_PARALLEL.with(|f| f.set(false));
        self.finish();
        self.busy.store(false, Ordering::Release);
    }

    fn publish(&self, job: Job) {
        let sh = &*self.shared;
        sh.body.store(job.body as usize, Ordering::Relaxed);
        sh.arg.store(job.arg, Ordering::Relaxed);
        sh.n.store(job.n, Ordering::Relaxed);
        sh.grain.store(job.grain, Ordering::Relaxed);
        sh.next_chunk.0.store(0, Ordering::Relaxed);
        // The previous job is closed with zero participants and nobody can
        // change `state` in that condition, so a plain store is race-free.
        let old = sh.state.0.load(Ordering::Relaxed);
        let epoch = ((old >> EPOCH_SHIFT) + 1) & EPOCH_MASK;
        sh.state.0.store(epoch << EPOCH_SHIFT, Ordering::SeqCst);
        if sh.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = sh.lock();
            sh.work_cv.notify_all();
        }
    }

    /// Closes the current job and waits for the workers that joined it.
    fn finish(&self) {
        let sh = &*self.shared;
        let prev = sh.state.0.fetch_or(CLOSED, Ordering::SeqCst);
        if prev & COUNT_MASK == 0 {
            return;
        }
        // Joined workers are running their last chunk right now, so a
        // short spin usually beats a sleep/wake round trip.
        let deadline = Instant::now() + sh.spin;
        let mut i: u32 = 0;
        loop {
            if sh.state.0.load(Ordering::Acquire) & COUNT_MASK == 0 {
                return;
            }
            spin_loop();
            i = i.wrapping_add(1);
            if i % 64 == 0 && Instant::now() >= deadline {
                break;
            }
        }
        let mut g = sh.lock();
        sh.caller_parked.store(true, Ordering::SeqCst);
        while sh.state.0.load(Ordering::SeqCst) & COUNT_MASK != 0 {
            g = sh.done_cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        sh.caller_parked.store(false, Ordering::Relaxed);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.lock();
            self.shared.work_cv.notify_all();
        }
        for w in self.workers.drain(..) {
            // A worker cannot panic (bodies are extern "C"), and there is
            // nobody to report to from a destructor anyway.
            let _ = w.join();
        }
    }
}
