//! Unit tests of the C ABI, called from Rust the way generated code calls it.

use super::*;
use std::ffi::CStr;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// Owns a context for the duration of a test, so a failing assertion does
/// not leak worker threads into the other tests.
struct Ctx(*mut Context);

impl Ctx {
    fn new(threads: i32) -> Ctx {
        let p = grim_context_create(threads);
        assert!(!p.is_null(), "grim_context_create({threads}) failed");
        Ctx(p)
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        unsafe { grim_context_destroy(self.0) };
    }
}

/// Per-index visit counters plus a record of every chunk seen.
struct Visits {
    hits: Vec<AtomicU32>,
    calls: AtomicU64,
    bad_range: AtomicU64,
    max_chunk: AtomicI64,
}

impl Visits {
    fn new(n: usize) -> Visits {
        Visits {
            hits: (0..n).map(|_| AtomicU32::new(0)).collect(),
            calls: AtomicU64::new(0),
            bad_range: AtomicU64::new(0),
            max_chunk: AtomicI64::new(0),
        }
    }
}

unsafe extern "C" fn visit(arg: *mut c_void, begin: i64, end: i64) {
    let v = unsafe { &*(arg as *const Visits) };
    v.calls.fetch_add(1, Ordering::Relaxed);
    if begin < 0 || end > v.hits.len() as i64 || begin >= end {
        v.bad_range.fetch_add(1, Ordering::Relaxed);
        return;
    }
    v.max_chunk.fetch_max(end - begin, Ordering::Relaxed);
    for i in begin..end {
        v.hits[i as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// `strict_chunks`: also check that no chunk exceeds `grain`, which does not
/// hold when the call falls back to a serial run (concurrent callers).
fn check(ctx: *mut Context, n: i64, grain: i64, strict_chunks: bool) {
    let v = Visits::new(n.max(0) as usize);
    unsafe {
        grim_parallel_for(
            ctx,
            n,
            grain,
            Some(visit),
            &v as *const Visits as *mut c_void,
        )
    };
    assert_eq!(
        v.bad_range.load(Ordering::Relaxed),
        0,
        "n={n} grain={grain}: empty or out-of-range chunk"
    );
    for (i, h) in v.hits.iter().enumerate() {
        assert_eq!(
            h.load(Ordering::Relaxed),
            1,
            "n={n} grain={grain}: index {i} visited wrong number of times"
        );
    }
    if strict_chunks && grain > 0 && unsafe { grim_context_threads(ctx) } > 1 {
        assert!(
            v.max_chunk.load(Ordering::Relaxed) <= grain,
            "n={n} grain={grain}: chunk larger than grain"
        );
    }
    if n <= 0 {
        assert_eq!(
            v.calls.load(Ordering::Relaxed),
            0,
            "n={n}: body must not be called"
        );
    }
}

fn check_once(ctx: *mut Context, n: i64, grain: i64) {
    check(ctx, n, grain, true)
}

#[test]
fn every_index_exactly_once() {
    for threads in [1, 2, 3, 4, 8] {
        let ctx = Ctx::new(threads);
        assert_eq!(unsafe { grim_context_threads(ctx.0) }, threads);
        for n in [0i64, 1, 2, 3, 7, 8, 63, 64, 65, 1000, 4097] {
            for grain in [-5i64, 0, 1, 2, 3, 7, 64, 1000, 5000] {
                check_once(ctx.0, n, grain);
            }
        }
        check_once(ctx.0, -3, 0);
    }
}

#[test]
fn default_grain_gives_several_chunks() {
    let ctx = Ctx::new(2);
    let v = Visits::new(800);
    unsafe {
        grim_parallel_for(
            ctx.0,
            800,
            0,
            Some(visit),
            &v as *const Visits as *mut c_void,
        )
    };
    // ceil(800 / (4 * 2)) = 100 iterations per chunk -> 8 chunks.
    assert_eq!(v.calls.load(Ordering::Relaxed), 8);
    assert_eq!(v.max_chunk.load(Ordering::Relaxed), 100);
}

#[test]
fn single_thread_and_single_chunk_run_inline() {
    let ctx = Ctx::new(1);
    let v = Visits::new(1000);
    unsafe {
        grim_parallel_for(
            ctx.0,
            1000,
            1,
            Some(visit),
            &v as *const Visits as *mut c_void,
        )
    };
    assert_eq!(
        v.calls.load(Ordering::Relaxed),
        1,
        "one thread: one inline call"
    );

    let ctx = Ctx::new(4);
    let v = Visits::new(10);
    unsafe {
        grim_parallel_for(
            ctx.0,
            10,
            10,
            Some(visit),
            &v as *const Visits as *mut c_void,
        )
    };
    assert_eq!(
        v.calls.load(Ordering::Relaxed),
        1,
        "grain >= n: one inline call"
    );
}

#[test]
fn many_calls_in_a_loop() {
    let ctx = Ctx::new(4);
    for iter in 0..5000i64 {
        let n = iter % 97;
        let grain = iter % 5 - 1;
        check_once(ctx.0, n, grain);
    }
}

struct SumArg {
    data: Vec<u64>,
    total: AtomicU64,
}

unsafe extern "C" fn sum_body(arg: *mut c_void, begin: i64, end: i64) {
    let a = unsafe { &*(arg as *const SumArg) };
    let s: u64 = a.data[begin as usize..end as usize].iter().sum();
    a.total.fetch_add(s, Ordering::Relaxed);
}

#[test]
fn concurrent_sum_is_correct() {
    let ctx = Ctx::new(4);
    let n = 1_000_003usize;
    let a = SumArg {
        data: (0..n as u64).map(|x| x * 3 + 1).collect(),
        total: AtomicU64::new(0),
    };
    let expect: u64 = a.data.iter().sum();
    for grain in [0i64, 1, 17, 4096, 1 << 20] {
        a.total.store(0, Ordering::Relaxed);
        unsafe {
            grim_parallel_for(
                ctx.0,
                n as i64,
                grain,
                Some(sum_body),
                &a as *const SumArg as *mut c_void,
            )
        };
        assert_eq!(a.total.load(Ordering::Relaxed), expect, "grain={grain}");
    }
}

/// Plain (non-atomic) writes by workers must be visible to the caller once
/// `grim_parallel_for` returns.
struct WriteArg {
    out: *mut u32,
    stamp: u32,
}

unsafe extern "C" fn write_body(arg: *mut c_void, begin: i64, end: i64) {
    let a = unsafe { &*(arg as *const WriteArg) };
    for i in begin..end {
        unsafe { *a.out.add(i as usize) = a.stamp ^ i as u32 };
    }
}

#[test]
fn plain_writes_are_visible_after_return() {
    let ctx = Ctx::new(3);
    let mut buf = vec![0u32; 10_000];
    for stamp in 1..300u32 {
        let a = WriteArg {
            out: buf.as_mut_ptr(),
            stamp,
        };
        unsafe {
            grim_parallel_for(
                ctx.0,
                buf.len() as i64,
                7,
                Some(write_body),
                &a as *const WriteArg as *mut c_void,
            )
        };
        for (i, &x) in buf.iter().enumerate() {
            assert_eq!(x, stamp ^ i as u32, "stamp {stamp} index {i}");
        }
    }
}

struct NestArg {
    ctx: *mut Context,
    inner: Visits,
    inner_calls_per_outer: AtomicU64,
}

unsafe extern "C" fn nest_outer(arg: *mut c_void, begin: i64, end: i64) {
    let a = unsafe { &*(arg as *const NestArg) };
    for i in begin..end {
        // Each outer index owns a 10-wide slice of the inner range.
        struct Slice<'a> {
            v: &'a Visits,
            base: i64,
            calls: &'a AtomicU64,
        }
        unsafe extern "C" fn inner(arg: *mut c_void, b: i64, e: i64) {
            let s = unsafe { &*(arg as *const Slice) };
            s.calls.fetch_add(1, Ordering::Relaxed);
            for j in b..e {
                s.v.hits[(s.base + j) as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
        let s = Slice {
            v: &a.inner,
            base: i * 10,
            calls: &a.inner_calls_per_outer,
        };
        unsafe { grim_parallel_for(a.ctx, 10, 1, Some(inner), &s as *const Slice as *mut c_void) };
    }
}

#[test]
fn nested_call_runs_inline() {
    let ctx = Ctx::new(4);
    let a = NestArg {
        ctx: ctx.0,
        inner: Visits::new(1000),
        inner_calls_per_outer: AtomicU64::new(0),
    };
    unsafe {
        grim_parallel_for(
            ctx.0,
            100,
            3,
            Some(nest_outer),
            &a as *const NestArg as *mut c_void,
        )
    };
    assert!(a.inner.hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    // Inline nested calls cover their whole range in one body call.
    assert_eq!(a.inner_calls_per_outer.load(Ordering::Relaxed), 100);
}

#[test]
fn concurrent_callers_on_one_context() {
    let ctx = Ctx::new(3);
    let p = ctx.0 as usize;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(move || {
                for iter in 0..500i64 {
                    check(p as *mut Context, 200 + iter % 13, 3, false);
                }
            });
        }
    });
}

#[test]
fn null_arguments_are_harmless() {
    unsafe {
        grim_context_destroy(std::ptr::null_mut());
        assert_eq!(grim_context_threads(std::ptr::null()), 0);
        assert!(grim_context_scratch(std::ptr::null_mut(), 16).is_null());
    }
    // A null context runs the loop serially.
    check_once(std::ptr::null_mut(), 100, 3);
    let ctx = Ctx::new(2);
    unsafe { grim_parallel_for(ctx.0, 100, 1, None, std::ptr::null_mut()) };
}

#[test]
fn default_thread_count_is_cpu_count() {
    let ctx = Ctx::new(0);
    let expect = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
    assert_eq!(unsafe { grim_context_threads(ctx.0) }, expect);
    let ctx = Ctx::new(-7);
    assert_eq!(unsafe { grim_context_threads(ctx.0) }, expect);
    check_once(ctx.0, 1234, 0);
}

#[test]
fn create_destroy_many_times() {
    for i in 0..50 {
        let ctx = Ctx::new(1 + i % 4);
        check_once(ctx.0, 100, 1);
    }
}

#[test]
fn scratch_alignment_and_growth() {
    let ctx = Ctx::new(1);
    unsafe {
        let a = grim_context_scratch(ctx.0, 100);
        assert!(!a.is_null());
        assert_eq!(a as usize % 64, 0);
        // Zeroed on allocation, and writable over the whole requested size.
        let s = std::slice::from_raw_parts_mut(a as *mut u8, 100);
        assert!(s.iter().all(|&b| b == 0));
        s.fill(0xab);

        // Smaller or equal requests reuse the arena (and keep its contents).
        assert_eq!(grim_context_scratch(ctx.0, 10), a);
        assert_eq!(grim_context_scratch(ctx.0, 100), a);
        assert_eq!(grim_context_scratch(ctx.0, 0), a);
        assert_eq!(*(a as *const u8), 0xab);

        // A larger request grows it; the result is aligned and usable.
        let b = grim_context_scratch(ctx.0, 1 << 20);
        assert!(!b.is_null());
        assert_eq!(b as usize % 64, 0);
        std::ptr::write_bytes(b as *mut u8, 1, 1 << 20);
        assert_eq!(grim_context_scratch(ctx.0, 4096), b);
        assert_eq!(grim_context_scratch(ctx.0, 1 << 20), b);

        // Absurd sizes fail cleanly and keep the existing arena.
        assert!(grim_context_scratch(ctx.0, u64::MAX).is_null());
        assert!(grim_context_scratch(ctx.0, u64::MAX / 2).is_null());
        assert_eq!(grim_context_scratch(ctx.0, 1 << 20), b);
    }
}

#[test]
fn scratch_zero_bytes_is_non_null() {
    let ctx = Ctx::new(1);
    let p = unsafe { grim_context_scratch(ctx.0, 0) };
    assert!(!p.is_null());
    assert_eq!(p as usize % 64, 0);
}

#[test]
fn version_string() {
    let v = unsafe { CStr::from_ptr(grim_runtime_version()) };
    assert_eq!(v.to_str().ok(), Some(RUNTIME_VERSION));
    assert!(RUNTIME_VERSION.starts_with("grim-runtime "));
}

unsafe extern "C" fn empty_body(_: *mut c_void, _: i64, _: i64) {}

/// Not an assertion (timings depend on the machine and its load): prints the
/// cost of an empty parallel loop so it can be read with `--nocapture`.
/// `n=2` is the cheapest dispatch (the caller often takes both chunks before
/// a worker joins); `n=64, grain=1` makes the worker join every call.
#[test]
fn report_empty_parallel_for_overhead() {
    for threads in [1, 2] {
        let ctx = Ctx::new(threads);
        for (n, grain) in [(2i64, 1i64), (64, 1)] {
            let iters = 20_000;
            for _ in 0..1000 {
                unsafe {
                    grim_parallel_for(ctx.0, n, grain, Some(empty_body), std::ptr::null_mut())
                };
            }
            let t = Instant::now();
            for _ in 0..iters {
                unsafe {
                    grim_parallel_for(ctx.0, n, grain, Some(empty_body), std::ptr::null_mut())
                };
            }
            let ns = t.elapsed().as_nanos() as f64 / iters as f64;
            println!(
                "empty grim_parallel_for(n={n}, grain={grain}), threads={threads}: {ns:.0} ns/call"
            );
        }
    }
}

fn layers(ctx: &Ctx) -> i64 {
    unsafe { grim_profile_layers(ctx.0) }
}

fn ns(ctx: &Ctx, layer: i64) -> u64 {
    unsafe { grim_profile_ns(ctx.0, layer) }
}

fn calls(ctx: &Ctx, layer: i64) -> u64 {
    unsafe { grim_profile_calls(ctx.0, layer) }
}

/// Runs `begin; sleep(ms); end` on `layer`, the way a profiled model wraps
/// a layer's code.
fn timed_layer(ctx: &Ctx, layer: i64, ms: u64) {
    unsafe { grim_profile_begin(ctx.0, layer) };
    std::thread::sleep(std::time::Duration::from_millis(ms));
    unsafe { grim_profile_end(ctx.0, layer) };
}

#[test]
fn profile_begin_end_accumulates() {
    let ctx = Ctx::new(1);
    assert_eq!(layers(&ctx), 0, "a fresh context has no layers");
    timed_layer(&ctx, 0, 2);
    assert_eq!(layers(&ctx), 1);
    assert_eq!(calls(&ctx, 0), 1);
    let first = ns(&ctx, 0);
    assert!(first >= 1_000_000, "2 ms sleep recorded as {first} ns");

    timed_layer(&ctx, 0, 2);
    assert_eq!(calls(&ctx, 0), 2);
    let second = ns(&ctx, 0);
    assert!(
        second >= first + 1_000_000,
        "second interval not added: {first} ns then {second} ns"
    );
}

#[test]
fn profile_layers_are_independent() {
    let ctx = Ctx::new(1);
    timed_layer(&ctx, 0, 2);
    // Index 2 skips 1: the table covers it, but nothing is recorded there.
    timed_layer(&ctx, 2, 2);
    timed_layer(&ctx, 2, 2);
    assert_eq!(layers(&ctx), 3);
    assert_eq!((calls(&ctx, 0), calls(&ctx, 1), calls(&ctx, 2)), (1, 0, 2));
    assert_eq!(ns(&ctx, 1), 0);
    assert!(ns(&ctx, 0) >= 1_000_000 && ns(&ctx, 2) >= 2_000_000);

    // An interval open on one layer is not closed by another layer's end.
    unsafe {
        grim_profile_begin(ctx.0, 1);
        grim_profile_end(ctx.0, 0);
    }
    assert_eq!(calls(&ctx, 0), 1, "layer 0 had no open interval");
    assert_eq!(calls(&ctx, 1), 0, "layer 1 is still open");
    unsafe { grim_profile_end(ctx.0, 1) };
    assert_eq!(calls(&ctx, 1), 1);
}

#[test]
fn profile_reset_clears_everything() {
    let ctx = Ctx::new(1);
    timed_layer(&ctx, 0, 1);
    timed_layer(&ctx, 4, 1);
    unsafe { grim_profile_begin(ctx.0, 1) };
    unsafe { grim_profile_reset(ctx.0) };
    assert_eq!(layers(&ctx), 0);
    for layer in 0..5 {
        assert_eq!(
            (ns(&ctx, layer), calls(&ctx, layer)),
            (0, 0),
            "layer {layer}"
        );
    }
    // The interval opened before the reset is gone too.
    unsafe { grim_profile_end(ctx.0, 1) };
    assert_eq!(layers(&ctx), 0);
    assert_eq!(calls(&ctx, 1), 0);

    // Recording works again after a reset.
    timed_layer(&ctx, 0, 2);
    assert_eq!((layers(&ctx), calls(&ctx, 0)), (1, 1));
    assert!(ns(&ctx, 0) >= 1_000_000);
}

#[test]
fn profile_ignores_out_of_range_and_null() {
    let ctx = Ctx::new(1);
    for layer in [-1i64, -65536, i64::MIN, 65536, 1 << 40, i64::MAX] {
        timed_layer(&ctx, layer, 0);
        assert_eq!(layers(&ctx), 0, "layer {layer} must be ignored");
        assert_eq!(
            (ns(&ctx, layer), calls(&ctx, layer)),
            (0, 0),
            "layer {layer}"
        );
    }
    // The top of the range is still recorded.
    timed_layer(&ctx, 65535, 0);
    assert_eq!(layers(&ctx), 65536);
    assert_eq!(calls(&ctx, 65535), 1);
    assert_eq!(calls(&ctx, 65536), 0);

    let null = std::ptr::null_mut();
    unsafe {
        grim_profile_begin(null, 0);
        grim_profile_end(null, 0);
        grim_profile_reset(null);
        assert_eq!(grim_profile_layers(null), 0);
        assert_eq!(grim_profile_ns(null, 0), 0);
        assert_eq!(grim_profile_calls(null, 0), 0);
    }
}

#[test]
fn profile_end_without_begin_does_not_count() {
    let ctx = Ctx::new(1);
    unsafe { grim_profile_end(ctx.0, 0) };
    assert_eq!(layers(&ctx), 0, "an end alone must not create a slot");
    assert_eq!(calls(&ctx, 0), 0);

    timed_layer(&ctx, 0, 1);
    let recorded = ns(&ctx, 0);
    // The interval is closed; a second end must not count or add time.
    std::thread::sleep(std::time::Duration::from_millis(2));
    unsafe { grim_profile_end(ctx.0, 0) };
    assert_eq!(calls(&ctx, 0), 1);
    assert_eq!(ns(&ctx, 0), recorded);
}

/// Uses chosen instants, so the arithmetic is checked exactly.
#[test]
fn profile_second_begin_restarts_the_interval() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
    let mut p = Profile::new();
    p.begin(3, ms(0));
    p.begin(3, ms(10));
    p.end(3, ms(13));
    assert_eq!((p.ns(3), p.calls(3)), (3_000_000, 1));

    p.begin(3, ms(20));
    p.end(3, ms(25));
    assert_eq!((p.ns(3), p.calls(3)), (8_000_000, 2));

    // An end reported before its begin counts as a call of no duration
    // rather than wrapping around.
    p.begin(3, ms(30));
    p.end(3, ms(29));
    assert_eq!((p.ns(3), p.calls(3)), (8_000_000, 3));
    assert_eq!(p.layers(), 4);
}
