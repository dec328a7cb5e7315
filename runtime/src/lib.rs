//! grim's runtime library, linked (as `libgrim_runtime.a`) into every
//! program that runs a grim-compiled model.
//!
//! It provides a small C ABI, declared in `include/grim_runtime.h`:
//!
//! * [`grim_context_create`] / [`grim_context_destroy`]: a context owning a
//!   persistent worker pool and a scratch arena;
//! * [`grim_context_threads`], [`grim_context_scratch`];
//! * [`grim_parallel_for`]: dynamic-chunked parallel loop on the pool;
//! * [`grim_profile_begin`] / [`grim_profile_end`] and their readers
//!   ([`grim_profile_layers`], [`grim_profile_ns`], [`grim_profile_calls`],
//!   [`grim_profile_reset`]): per-layer timing for `grimc bench --per-layer`;
//! * [`grim_runtime_version`].
//!
//! No panic may cross the C boundary: every entry point catches unwinding
//! and reports failure through its return value (null / 0), and loop bodies
//! are `extern "C"` so they cannot unwind into the pool.
//!
//! The crate depends on `std` only, so the static library builds for any
//! target the compiler emits code for.

#![warn(missing_docs)]

mod pool;
mod profile;
mod scratch;

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

pub use pool::{ParallelBody, Pool, MAX_THREADS};
pub use profile::{Profile, MAX_LAYERS};
pub use scratch::{Scratch, SCRATCH_ALIGN};

/// ABI version string returned by [`grim_runtime_version`]. Bump the number
/// whenever `grim_runtime.h` changes incompatibly.
pub const RUNTIME_VERSION: &str = "grim-runtime 1";

/// NUL-terminated copy of [`RUNTIME_VERSION`] for C callers.
const RUNTIME_VERSION_C: &std::ffi::CStr = c"grim-runtime 1";

/// The object behind the opaque C type `grim_context`.
pub struct Context {
    pool: Pool,
    // A mutex rather than `&mut` access because C hands out the same
    // context pointer to every thread; it is only taken by
    // `grim_context_scratch`, never on the hot path.
    scratch: Mutex<Scratch>,
    // A mutex for the same reason as `scratch`. Only the thread running the
    // model takes it (never a loop body), so it is uncontended.
    profile: Mutex<Profile>,
}

impl Context {
    /// Creates a context whose pool has `threads` participants in total;
    /// `threads <= 0` means the number of CPUs available to the process.
    pub fn new(threads: i32) -> std::io::Result<Context> {
        let threads = if threads > 0 {
            threads as usize
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        Ok(Context {
            pool: Pool::new(threads)?,
            scratch: Mutex::new(Scratch::new()),
            profile: Mutex::new(Profile::new()),
        })
    }

    /// The worker pool of this context.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// See [`grim_context_scratch`].
    pub fn scratch(&self, bytes: u64) -> *mut u8 {
        // Scratch has no invariant a panic could break halfway (there is
        // no panic path in it anyway), so a poisoned lock is usable.
        self.scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(bytes)
    }

    /// The per-layer profile of this context.
    pub fn profile(&self) -> MutexGuard<'_, Profile> {
        // Every `Profile` method leaves it consistent at each step, so a
        // poisoned lock is usable.
        self.profile.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`grim_profile_begin`].
    pub fn profile_begin(&self, layer: i64) {
        let mut p = self.profile();
        // Read the clock after taking the lock so that the lock is not
        // charged to the layer.
        p.begin(layer, Instant::now());
    }

    /// See [`grim_profile_end`].
    pub fn profile_end(&self, layer: i64) {
        // Clock first, lock second, for the same reason as in `profile_begin`.
        let now = Instant::now();
        self.profile().end(layer, now);
    }
}

/// Creates a context with a persistent pool of `threads` workers in total
/// (the calling thread counts as one, so `threads - 1` OS threads are
/// spawned, once, here). `threads <= 0` means the number of online CPUs;
/// requests above [`MAX_THREADS`] are clamped. Returns null on failure.
#[no_mangle]
pub extern "C" fn grim_context_create(threads: i32) -> *mut Context {
    match catch_unwind(|| Context::new(threads)) {
        Ok(Ok(ctx)) => Box::into_raw(Box::new(ctx)),
        _ => std::ptr::null_mut(),
    }
}

/// Destroys a context, joining its workers and freeing its scratch arena.
/// Null is a no-op.
///
/// # Safety
/// `ctx` must be null or a pointer returned by [`grim_context_create`] that
/// has not been destroyed yet, and no other thread may be using it.
#[no_mangle]
pub unsafe extern "C" fn grim_context_destroy(ctx: *mut Context) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: per the contract, `ctx` came from `Box::into_raw` and is
    // destroyed exactly once.
    let boxed = unsafe { Box::from_raw(ctx) };
    // If dropping ever unwound, the context would be leaked, which beats
    // unwinding into C.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// Number of threads (workers + caller) of the context; 0 for null.
///
/// # Safety
/// `ctx` must be null or a live context.
#[no_mangle]
pub unsafe extern "C" fn grim_context_threads(ctx: *const Context) -> i32 {
    // SAFETY: per the contract.
    match unsafe { ctx.as_ref() } {
        // MAX_THREADS keeps this in range; saturate rather than trust it.
        Some(c) => i32::try_from(c.pool.threads()).unwrap_or(i32::MAX),
        None => 0,
    }
}

/// Returns a 64-byte-aligned scratch arena of at least `bytes` bytes,
/// owned by the context and kept across runs. It is reallocated only when
/// a larger size is requested (earlier pointers are then invalid and the
/// contents are not preserved). Returns null on allocation failure (the
/// old arena is kept) or for a null context.
///
/// # Safety
/// `ctx` must be null or a live context.
#[no_mangle]
pub unsafe extern "C" fn grim_context_scratch(ctx: *mut Context, bytes: u64) -> *mut c_void {
    // SAFETY: per the contract.
    let Some(c) = (unsafe { ctx.as_ref() }) else {
        return std::ptr::null_mut();
    };
    catch_unwind(AssertUnwindSafe(|| c.scratch(bytes))).map_or(std::ptr::null_mut(), |p| p.cast())
}

/// Runs `body(arg, begin, end)` over `[0, n)` split into chunks, with the
/// calling thread participating, and returns when every chunk is done.
///
/// Chunks of `grain` iterations (`grain <= 0`: `ceil(n / (4 * threads))`)
/// are handed out by an atomic counter, so uneven work balances. With one
/// thread, or when `[0, n)` fits in a single chunk, `body(arg, 0, n)` runs
/// inline without waking any worker. `n <= 0` or a null `body` does nothing.
///
/// Not re-entrant: a call made from inside a body (on any context) runs
/// inline and serially as `body(arg, 0, n)`. Likewise, if another thread is
/// already running a loop on the same context, the call runs serially
/// rather than blocking. A null `ctx` also runs the loop serially.
///
/// # Safety
/// `ctx` must be null or a live context; `body` must be safe to call
/// concurrently from several threads with `arg` and disjoint sub-ranges.
#[no_mangle]
pub unsafe extern "C" fn grim_parallel_for(
    ctx: *mut Context,
    n: i64,
    grain: i64,
    body: Option<ParallelBody>,
    arg: *mut c_void,
) {
    let Some(body) = body else { return };
    if n <= 0 {
        return;
    }
    // SAFETY: per the contract.
    match unsafe { ctx.as_ref() } {
        Some(c) => {
            // The pool has no panicking path; this only guarantees that a
            // bug there can never unwind into C. Nothing is reported since
            // the C signature returns void.
            let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
                c.pool.parallel_for(n, grain, body, arg)
            }));
        }
        // SAFETY: per the contract on `body`.
        None => unsafe { body(arg, 0, n) },
    }
}

/// Starts timing layer `layer` (0, 1, 2, ... per model) on `ctx`. The
/// compiler emits this call before each layer's code only when a model is
/// compiled with profiling (`grimc bench --per-layer`), and always from the
/// thread that called the model's run function. A second begin without an
/// end restarts the interval. Indices outside `0..=65535` and a null `ctx`
/// are ignored.
///
/// # Safety
/// `ctx` must be null or a live context.
#[no_mangle]
pub unsafe extern "C" fn grim_profile_begin(ctx: *mut Context, layer: i64) {
    // SAFETY: per the contract.
    if let Some(c) = unsafe { ctx.as_ref() } {
        let _ = catch_unwind(AssertUnwindSafe(|| c.profile_begin(layer)));
    }
}

/// Stops timing layer `layer` on `ctx`, adding the time since the matching
/// [`grim_profile_begin`] to the layer and counting one call. An end
/// without an open begin, an index outside `0..=65535` and a null `ctx` are
/// ignored.
///
/// # Safety
/// `ctx` must be null or a live context.
#[no_mangle]
pub unsafe extern "C" fn grim_profile_end(ctx: *mut Context, layer: i64) {
    // SAFETY: per the contract.
    if let Some(c) = unsafe { ctx.as_ref() } {
        let _ = catch_unwind(AssertUnwindSafe(|| c.profile_end(layer)));
    }
}

/// Number of layer slots recorded since creation or the last
/// [`grim_profile_reset`]: the highest index passed to
/// [`grim_profile_begin`] plus one; 0 if none, or for a null `ctx`.
///
/// # Safety
/// `ctx` must be null or a live context.
#[no_mangle]
pub unsafe extern "C" fn grim_profile_layers(ctx: *const Context) -> i64 {
    // SAFETY: per the contract.
    let Some(c) = (unsafe { ctx.as_ref() }) else {
        return 0;
    };
    catch_unwind(AssertUnwindSafe(|| c.profile().layers()))
        .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// Accumulated nanoseconds of the completed begin/end intervals of
/// `layer`; 0 for a layer never completed, an out-of-range index or a null
/// `ctx`.
///
/// # Safety
/// `ctx` must be null or a live context.
#[no_mangle]
pub unsafe extern "C" fn grim_profile_ns(ctx: *const Context, layer: i64) -> u64 {
    // SAFETY: per the contract.
    let Some(c) = (unsafe { ctx.as_ref() }) else {
        return 0;
    };
    catch_unwind(AssertUnwindSafe(|| c.profile().ns(layer))).unwrap_or(0)
}

/// Number of completed begin/end pairs of `layer`; 0 for an out-of-range
/// index or a null `ctx`.
///
/// # Safety
/// `ctx` must be null or a live context.
#[no_mangle]
pub unsafe extern "C" fn grim_profile_calls(ctx: *const Context, layer: i64) -> u64 {
    // SAFETY: per the contract.
    let Some(c) = (unsafe { ctx.as_ref() }) else {
        return 0;
    };
    catch_unwind(AssertUnwindSafe(|| c.profile().calls(layer))).unwrap_or(0)
}

/// Forgets everything recorded on `ctx` (open intervals included), e.g.
/// to leave a warm-up run out of a benchmark. Null is a no-op.
///
/// # Safety
/// `ctx` must be null or a live context.
#[no_mangle]
pub unsafe extern "C" fn grim_profile_reset(ctx: *mut Context) {
    // SAFETY: per the contract.
    if let Some(c) = unsafe { ctx.as_ref() } {
        let _ = catch_unwind(AssertUnwindSafe(|| c.profile().reset()));
    }
}

/// Version string of the runtime ABI, e.g. `"grim-runtime 1"`; static
/// storage, never freed.
#[no_mangle]
pub extern "C" fn grim_runtime_version() -> *const c_char {
    RUNTIME_VERSION_C.as_ptr()
}

#[cfg(test)]
mod tests;
