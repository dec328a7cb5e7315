//! End-to-end tests of `runner.c` + `libgrim_runtime.a` + a fake model.
//!
//! How the static library is found: each test builds it with a nested
//! `cargo build -p grim-runtime --lib` (the cargo binary that runs this test,
//! `env!("CARGO")`) into its own target directory under
//! `CARGO_TARGET_TMPDIR`. The library is therefore always fresh (built from
//! the sources under test, never a stale `target/debug/libgrim_runtime.a`),
//! it works for any `--target-dir`/profile the outer `cargo test` uses, and
//! the separate target directory avoids waiting on the outer build lock.
//! `cargo test` itself only leaves a hashed copy in `deps/`, which is
//! ambiguous to pick, hence the nested build.
//!
//! The aarch64 test cross-compiles with `aarch64-linux-gnu-gcc` and runs
//! under `qemu-aarch64`; it fails (it is never skipped) when those tools or
//! the `aarch64-unknown-linux-gnu` Rust target are missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

const RUNTIME_DIR: &str = env!("CARGO_MANIFEST_DIR");
const TMP_DIR: &str = env!("CARGO_TARGET_TMPDIR");

/// The fake model: out0 = 2 * in0 (via grim_parallel_for), out1 = sum(in1).
/// It also exercises the scratch arena and fails on demand (`FAKE_FAIL`).
/// With `FAKE_PROFILE` set it behaves like a model compiled with per-layer
/// profiling whose layers are 0 and 2 (index 1 is never begun, so the
/// runner must skip it).
const FAKE_MODEL_C: &str = r#"
#include <stdint.h>
#include <stdlib.h>
#include "grim_runtime.h"

#define N 1000
static const int64_t in_sizes[2] = {N, 3};
static const int64_t out_sizes[2] = {N, 1};
static const grim_model_info info = {2, 2, in_sizes, out_sizes, "fake_double"};

const grim_model_info* grim_model_describe(void) { return &info; }

struct args { const float* in; float* out; float* scratch; };

static void body(void* p, int64_t begin, int64_t end) {
  struct args* a = (struct args*)p;
  for (int64_t i = begin; i < end; i++) {
    a->scratch[i] = a->in[i];
    a->out[i] = 2.0f * a->scratch[i];
  }
}

int32_t grim_model_run(grim_context* ctx, const float* const* inputs, float* const* outputs) {
  if (getenv("FAKE_FAIL")) return 5;
  if (grim_context_threads(ctx) < 1) return 7;
  float* s = (float*)grim_context_scratch(ctx, N * sizeof(float));
  if (!s || ((uintptr_t)s & 63) != 0) return 8;
  int profile = getenv("FAKE_PROFILE") != NULL;
  struct args a = { inputs[0], outputs[0], s };
  if (profile) grim_profile_begin(ctx, 0);
  grim_parallel_for(ctx, N, 16, body, &a);
  if (profile) grim_profile_end(ctx, 0);
  if (profile) grim_profile_begin(ctx, 2);
  outputs[1][0] = inputs[1][0] + inputs[1][1] + inputs[1][2];
  if (profile) grim_profile_end(ctx, 2);
  return 0;
}
"#;

const N: usize = 1000;

/// A toolchain to build and run the runner with.
struct Toolchain {
    /// Rust target triple, or None for the host.
    rust_target: Option<&'static str>,
    cc: &'static str,
    /// Command prefix used to execute the produced binary (an emulator).
    run_prefix: &'static [&'static str],
    name: &'static str,
}

const HOST: Toolchain = Toolchain {
    rust_target: None,
    cc: "cc",
    run_prefix: &[],
    name: "host",
};
const AARCH64: Toolchain = Toolchain {
    rust_target: Some("aarch64-unknown-linux-gnu"),
    cc: "aarch64-linux-gnu-gcc",
    run_prefix: &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"],
    name: "aarch64",
};

fn show(o: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_tool(cmd: &mut Command, what: &str) -> Output {
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "{what}: cannot run {:?}: {e} (is it installed and on PATH?)",
            cmd.get_program()
        ),
    }
}

/// Builds the static library for `tc` (see the module docs) and returns its path.
fn build_staticlib(tc: &Toolchain) -> PathBuf {
    let target_dir = Path::new(TMP_DIR).join("grim-runtime-staticlib");
    let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    cmd.current_dir(RUNTIME_DIR)
        .args([
            "build",
            "--quiet",
            "-p",
            "grim-runtime",
            "--lib",
            "--target-dir",
        ])
        .arg(&target_dir);
    let mut dir = target_dir.clone();
    if let Some(t) = tc.rust_target {
        // Cross builds mirror the documented release build for deployment.
        cmd.args(["--release", "--target", t]);
        dir = dir.join(t).join("release");
    } else {
        dir = dir.join("debug");
    }
    let out = run_tool(&mut cmd, "building libgrim_runtime.a");
    assert!(
        out.status.success(),
        "cargo build of the {} static library failed:\n{}",
        tc.name,
        show(&out)
    );
    let lib = dir.join("libgrim_runtime.a");
    assert!(
        lib.is_file(),
        "cargo build succeeded but {} does not exist",
        lib.display()
    );
    lib
}

/// Compiles the fake model and the runner for `tc`, once per toolchain.
fn runner_binary(tc: &'static Toolchain) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(&'static str, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    // Holding the lock while building keeps parallel tests from racing on
    // the same output files.
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(n, _)| *n == tc.name) {
        return p.clone();
    }
    let lib = build_staticlib(tc);
    let dir = Path::new(TMP_DIR).join(format!("runner-{}", tc.name));
    std::fs::create_dir_all(&dir).expect("create build directory");
    let model_c = dir.join("fake_model.c");
    std::fs::write(&model_c, FAKE_MODEL_C).expect("write fake model");
    let include = Path::new(RUNTIME_DIR).join("include");
    let model_o = dir.join("fake_model.o");
    let out = run_tool(
        Command::new(tc.cc)
            .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-c"])
            .arg("-I")
            .arg(&include)
            .arg(&model_c)
            .arg("-o")
            .arg(&model_o),
        "compiling the fake model",
    );
    assert!(
        out.status.success(),
        "{} failed to compile the fake model:\n{}",
        tc.cc,
        show(&out)
    );
    let exe = dir.join("runner");
    let out = run_tool(
        Command::new(tc.cc)
            .args(["-std=c11", "-O2", "-Wall", "-Wextra"])
            .arg("-I")
            .arg(&include)
            .arg(Path::new(RUNTIME_DIR).join("runner.c"))
            .arg(&model_o)
            .arg(&lib)
            .args(["-lpthread", "-ldl", "-lm", "-o"])
            .arg(&exe),
        "linking the runner",
    );
    assert!(
        out.status.success(),
        "{} failed to build the runner:\n{}",
        tc.cc,
        show(&out)
    );
    built.push((tc.name, exe.clone()));
    exe
}

fn run_runner(tc: &'static Toolchain, args: &[&str], env: &[(&str, &str)]) -> Output {
    let exe = runner_binary(tc);
    let mut cmd = match tc.run_prefix.split_first() {
        Some((prog, rest)) => {
            let mut c = Command::new(prog);
            c.args(rest).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_tool(&mut cmd, "running the runner")
}

fn f32_le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A fresh directory per test case, so parallel tests never share files.
fn case_dir(name: &str) -> PathBuf {
    let d = Path::new(TMP_DIR).join("cases").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create case directory");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

struct Case {
    dir: PathBuf,
    in0: PathBuf,
    in1: PathBuf,
    out0: PathBuf,
    out1: PathBuf,
    x: Vec<f32>,
}

fn make_case(name: &str) -> Case {
    let dir = case_dir(name);
    let x: Vec<f32> = (0..N).map(|i| i as f32 * 0.25 - 100.0).collect();
    let in0 = dir.join("in0.raw");
    let in1 = dir.join("in1.raw");
    std::fs::write(&in0, f32_le_bytes(&x)).expect("write in0");
    std::fs::write(&in1, f32_le_bytes(&[1.5, 2.0, -0.25])).expect("write in1");
    Case {
        out0: dir.join("out0.raw"),
        out1: dir.join("out1.raw"),
        dir,
        in0,
        in1,
        x,
    }
}

fn check_outputs(c: &Case) {
    let expect0: Vec<f32> = c.x.iter().map(|v| 2.0 * v).collect();
    assert_eq!(
        std::fs::read(&c.out0).expect("read out0"),
        f32_le_bytes(&expect0)
    );
    assert_eq!(
        std::fs::read(&c.out1).expect("read out1"),
        f32_le_bytes(&[3.25])
    );
    let leftovers: Vec<_> = std::fs::read_dir(&c.dir)
        .expect("list case dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

fn success_case(tc: &'static Toolchain, name: &str, threads: &str) {
    let c = make_case(name);
    let o = run_runner(
        tc,
        &[
            "--threads",
            threads,
            s(&c.in0),
            s(&c.in1),
            "--",
            s(&c.out0),
            s(&c.out1),
        ],
        &[],
    );
    assert!(o.status.success(), "runner failed:\n{}", show(&o));
    assert!(
        o.stdout.is_empty(),
        "no timing line expected without --repeat:\n{}",
        show(&o)
    );
    check_outputs(&c);
}

fn repeat_case(tc: &'static Toolchain, name: &str) {
    let c = make_case(name);
    let o = run_runner(
        tc,
        &[
            "--repeat",
            "5",
            "--threads",
            "2",
            s(&c.in0),
            s(&c.in1),
            "--",
            s(&c.out0),
            s(&c.out1),
        ],
        &[],
    );
    assert!(o.status.success(), "runner failed:\n{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one stdout line expected:\n{}",
        show(&o)
    );
    let line = lines[0];
    assert!(
        line.starts_with("timing_ms: median="),
        "bad timing line: {line}"
    );
    let field = |k: &str| -> f64 {
        let v = line
            .split_whitespace()
            .find_map(|t| t.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {line}"));
        v.parse()
            .unwrap_or_else(|e| panic!("bad {k} value in {line}: {e}"))
    };
    let (med, min, max, runs) = (
        field("median="),
        field("min="),
        field("max="),
        field("runs="),
    );
    assert_eq!(runs, 5.0);
    assert!(
        min >= 0.0 && min <= med && med <= max,
        "inconsistent timings: {line}"
    );
    check_outputs(&c);
}

/// `--repeat` on a profiled model: one `layer_ms` line per layer that ran,
/// counting only the timed runs (the warm-up is reset away).
fn profile_case(tc: &'static Toolchain, name: &str) {
    let c = make_case(name);
    let o = run_runner(
        tc,
        &[
            "--repeat",
            "4",
            "--threads",
            "2",
            s(&c.in0),
            s(&c.in1),
            "--",
            s(&c.out0),
            s(&c.out1),
        ],
        &[("FAKE_PROFILE", "1")],
    );
    assert!(o.status.success(), "runner failed:\n{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "timing + 2 layer lines expected:\n{}",
        show(&o)
    );
    assert!(lines[0].starts_with("timing_ms: "), "{}", show(&o));
    for (line, index) in lines[1..].iter().zip(["0", "2"]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "bad layer line: {line}");
        assert_eq!(fields[0], "layer_ms:", "bad layer line: {line}");
        assert_eq!(
            fields[1],
            format!("index={index}"),
            "bad layer line: {line}"
        );
        let total: f64 = fields[2]
            .strip_prefix("total=")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bad total in {line}"));
        assert!(total >= 0.0, "negative total in {line}");
        assert_eq!(fields[3], "calls=4", "warm-up must not count: {line}");
    }
    check_outputs(&c);
}

fn error_cases(tc: &'static Toolchain, name: &str) {
    let c = make_case(name);
    // Input 1 must hold 3 f32 (12 bytes); give it 2.
    std::fs::write(&c.in1, f32_le_bytes(&[1.0, 2.0])).expect("rewrite in1");
    let o = run_runner(
        tc,
        &[s(&c.in0), s(&c.in1), "--", s(&c.out0), s(&c.out1)],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "wrong input size must exit 2:\n{}",
        show(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("runner: error: "), "{}", show(&o));
    assert!(
        err.contains(s(&c.in1)),
        "message must name the file:\n{}",
        show(&o)
    );
    assert!(
        err.contains("8 bytes") && err.contains("12 bytes"),
        "message must give both sizes:\n{}",
        show(&o)
    );
    assert!(
        !c.out0.exists() && !c.out1.exists(),
        "no output may be written on error"
    );

    let cases: &[(&[&str], &str)] = &[
        (&["--", "x"], "takes 2 input(s), got 0"),
        (&["a", "b", "c"], "missing '--'"),
        (&["--threads", "abc", "a", "b", "--"], "invalid value 'abc'"),
        (&["--repeat", "0", "a", "b", "--"], "invalid value '0'"),
        (&["--bogus"], "unknown option"),
    ];
    for (args, want) in cases {
        let o = run_runner(tc, args, &[]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?} must exit 2:\n{}",
            show(&o)
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{args:?}: expected '{want}' in:\n{}",
            show(&o)
        );
    }

    let missing = c.dir.join("missing.raw");
    let o = run_runner(
        tc,
        &[s(&c.in0), s(&missing), "--", s(&c.out0), s(&c.out1)],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(s(&missing)),
        "{}",
        show(&o)
    );

    std::fs::write(&c.in1, f32_le_bytes(&[1.0, 2.0, 3.0])).expect("rewrite in1");
    let o = run_runner(
        tc,
        &[s(&c.in0), s(&c.in1), "--", s(&c.out0), s(&c.out1)],
        &[("FAKE_FAIL", "1")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("model run failed with code 5"),
        "{}",
        show(&o)
    );
    assert!(
        !c.out0.exists(),
        "no output may be written when the model fails"
    );
}

#[test]
fn host_runner_computes_outputs() {
    success_case(&HOST, "host-ok-1", "1");
    success_case(&HOST, "host-ok-3", "3");
    success_case(&HOST, "host-ok-auto", "0");
}

#[test]
fn host_runner_repeat_prints_timing() {
    repeat_case(&HOST, "host-repeat");
}

#[test]
fn host_runner_repeat_prints_layer_times() {
    profile_case(&HOST, "host-profile");
}

#[test]
fn host_runner_errors_exit_2() {
    error_cases(&HOST, "host-errors");
}

/// Cross build + qemu run; fails loudly when the cross tools are missing.
#[test]
fn aarch64_runner_under_qemu() {
    success_case(&AARCH64, "a64-ok-4", "4");
    repeat_case(&AARCH64, "a64-repeat");
    profile_case(&AARCH64, "a64-profile");
    error_cases(&AARCH64, "a64-errors");
}
