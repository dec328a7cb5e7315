//! grim's developer commands, run as `cargo xtask <command>`:
//!
//! - `setup`: installs the system packages and the aarch64 Rust target (only
//!   what is missing), then builds the runtime.
//! - `runtime`: builds the runtime static library for the host and aarch64 and
//!   puts it where grimc looks for it (`target/grim-runtime/<triple>/`).
//! - `demo`: compiles the built-in BCR-pruned MLP for aarch64, runs it under
//!   qemu and on the host, and checks both against the reference interpreter.
//! - `test`: every test: `cargo test --workspace`, then lit + FileCheck.
//! - `bench kernels`: grim's BCR kernels against dense and CSR peers on the
//!   shapes of `xtask/bench/layers.json`; writes docs/benchmarks/kernels.*
//!   (see `bench.rs`).
//! - `bench mca`: llvm-mca figures of the aarch64 inner loops (see `mca.rs`).
//!
//! Every external command is printed before it runs; a failure names its step.

mod bench;
mod conformance;
mod digits;
mod mca;
mod venv;
mod zoo;

use anyhow::{anyhow, bail, Context as _, Result};
use grim_model::{load_onnx, read_npy, run_reference, write_npy, Tensor};
use std::{
    ffi::OsStr,
    io::{BufRead as _, BufReader, Read, Write as _},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::Instant,
};

/// The system (apt) packages grim needs, for Debian 12. This is the one list:
/// its source is the stack notes (shared/design/STACK-NOTES.md, "Packages and
/// versions"); `setup` installs exactly these, and nothing else installs any.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libmlir-22-dev",
    "mlir-22-tools",
    "libpolly-22-dev",
    "clang-22",
    "libclang-22-dev",
    "lld-22",
    "libzstd-dev",
    "libz3-dev",
    "libxml2-dev",
    "zlib1g-dev",
    "qemu-user",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "python3-venv",
];

/// The Rust target of the phone builds.
const AARCH64_RUST_TRIPLE: &str = "aarch64-unknown-linux-gnu";
/// LLVM 22's tools (lit, FileCheck, not).
const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";

const USAGE: &str = "usage: cargo xtask <command>

commands:
  setup     install the apt packages and the aarch64 Rust target grim needs (only what is missing), then `runtime`
  runtime   build the runtime library for the host and aarch64 into target/grim-runtime/<triple>/
  demo      `setup`, then compile the example BCR-pruned MLP for aarch64, run it under qemu and on the host, check it against the reference
  test      `setup`, then cargo test --workspace, the lit tests, the ONNX conformance run and the zoo check; prints `N passed, M failed`
  bench kernels [--quick] [--runs R] [--threads 1,2]
            `runtime`, then time grim's BCR kernels against numpy/OpenBLAS, onnxruntime, scipy CSR and MKL CSR
            on the shapes of xtask/bench/layers.json; writes docs/benchmarks/kernels.{md,json,png}
            (--quick: a smoke test, report in target/bench/quick/)
  bench pruning [--quick]
            the digits examples trained dense, pruned 4x/8x/16x one-shot, one-shot + fine-tuning, ADMM and
            ADMM --auto over 3 seeds: test accuracy (onnxruntime) and grim latency; writes docs/benchmarks/pruning.{md,json}
  bench rnns [--quick]
            `runtime`, then the speech GRU and the LSTM (dense and BCR-pruned 10x) at 100 steps, batch 1 and 8,
            1 and 2 threads, grim against onnxruntime and tract; writes docs/benchmarks/rnns.{md,json}
  bench mca llvm-mca (cortex-a76, cortex-a55) figures of the aarch64 inner loops; writes docs/benchmarks/mca.{md,json}
  conformance [--bless]
            the ONNX node tests of every claimed op through `grimc run`, against xtask/conformance/manifest.json
            (also part of `test`); --bless rewrites the manifest's expected failures and docs/onnx-ops.md
  digits    scikit-learn's digits as .npz splits in target/digits (for grimc prune's examples and tests)
  zoo       the model zoo (ResNet-18/50, VGG-16, MobileNet-V2; dense and BCR-pruned) at 64x64 through `grimc run`
            on the host (and two under qemu-aarch64) against onnxruntime (also part of `test`)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["setup"] => setup(),
        ["runtime"] => runtime(),
        ["demo"] => demo(),
        ["test"] => test(),
        ["bench", rest @ ..] => bench::bench(rest),
        ["conformance", rest @ ..] => conformance::command(rest),
        ["zoo", rest @ ..] => zoo::command(rest),
        ["digits", rest @ ..] => digits::command(rest),
        ["help" | "-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        [] => Err(anyhow!("no command given\n\n{USAGE}")),
        other => Err(anyhow!("unknown command `{}`\n\n{USAGE}", other.join(" "))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// Paths and running commands
// ---------------------------------------------------------------------------

/// The workspace root (this crate's parent directory).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cargo's target directory.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            }
        }
        None => repo_root().join("target"),
    }
}

/// The cargo that runs us (so a toolchain override applies to the builds too).
fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(repo_root());
    command
}

fn quote(text: &OsStr) -> String {
    let text = text.to_string_lossy();
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c))
    {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A command as one would type it (environment set on it, program, arguments).
fn display(command: &Command) -> String {
    let mut parts: Vec<String> = command
        .get_envs()
        .filter_map(|(key, value)| value.map(|v| format!("{}={}", key.to_string_lossy(), quote(v))))
        .collect();
    // The cargo that runs us is a long toolchain path; show it as `cargo`.
    let program = command.get_program();
    if Some(program) == std::env::var_os("CARGO").as_deref() {
        parts.push("cargo".to_string());
    } else {
        parts.push(quote(program));
    }
    parts.extend(command.get_args().map(quote));
    parts.join(" ")
}

fn announce(command: &Command) {
    let dir = command
        .get_current_dir()
        .map(|d| d.strip_prefix(repo_root()).unwrap_or(d).to_path_buf());
    match dir {
        Some(dir) if !dir.as_os_str().is_empty() => {
            println!("+ (in {}) {}", dir.display(), display(command))
        }
        _ => println!("+ {}", display(command)),
    }
    let _ = std::io::stdout().flush();
}

/// Runs `command` (output to the terminal); an error names `step`.
fn run(step: &str, command: &mut Command) -> Result<()> {
    announce(command);
    let status = command.status().with_context(|| {
        format!(
            "{step}: cannot start `{}`",
            command.get_program().to_string_lossy()
        )
    })?;
    if !status.success() {
        bail!("{step}: `{}` failed ({status})", display(command));
    }
    Ok(())
}

/// Runs `command` and returns its stdout (stderr goes to the terminal); an error names `step`.
fn capture(step: &str, command: &mut Command) -> Result<String> {
    announce(command);
    let output = command.stderr(Stdio::inherit()).output().with_context(|| {
        format!(
            "{step}: cannot start `{}`",
            command.get_program().to_string_lossy()
        )
    })?;
    if !output.status.success() {
        bail!("{step}: `{}` failed ({})", display(command), output.status);
    }
    String::from_utf8(output.stdout)
        .with_context(|| format!("{step}: `{}` printed non-UTF-8 output", display(command)))
}

/// Runs `command`, echoing its stdout and stderr to ours line by line while
/// capturing both; returns whether it succeeded and everything it printed.
fn run_streaming(step: &str, command: &mut Command) -> Result<(bool, String)> {
    announce(command);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "{step}: cannot start `{}`",
                command.get_program().to_string_lossy()
            )
        })?;
    fn pump(stream: impl Read, to_stderr: bool) -> String {
        let mut all = String::new();
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            if to_stderr {
                eprint!("{text}");
            } else {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
            all.push_str(&text);
            line.clear();
        }
        all
    }
    let stderr = child.stderr.take().expect("piped");
    let stderr_thread = std::thread::spawn(move || pump(stderr, true));
    let mut text = pump(child.stdout.take().expect("piped"), false);
    let status = child
        .wait()
        .with_context(|| format!("{step}: waiting for `{}`", display(command)))?;
    text.push_str(&stderr_thread.join().unwrap_or_default());
    Ok((status.success(), text))
}

/// Builds grimc in release mode for the step `what`; returns its path.
fn build_grimc(what: &str) -> Result<PathBuf> {
    heading(&format!("{what}: build grimc (release)"));
    run(
        &format!("{what} (build grimc)"),
        cargo().args([
            "build",
            "--release",
            "-p",
            "grim-compiler",
            "--bin",
            "grimc",
        ]),
    )?;
    Ok(target_dir().join("release").join("grimc"))
}

fn heading(text: &str) {
    println!("\n== {text}");
}

// ---------------------------------------------------------------------------
// setup
// ---------------------------------------------------------------------------

fn setup() -> Result<()> {
    heading("setup: system packages");
    install_apt_packages()?;
    heading("setup: Rust target");
    let installed = capture(
        "setup (rustup)",
        Command::new("rustup").args(["target", "list", "--installed"]),
    )?;
    if installed.lines().any(|l| l.trim() == AARCH64_RUST_TRIPLE) {
        println!("{AARCH64_RUST_TRIPLE} is installed");
    } else {
        run(
            "setup (rustup)",
            Command::new("rustup").args(["target", "add", AARCH64_RUST_TRIPLE]),
        )?;
    }
    runtime()
}

fn is_root() -> bool {
    // The effective uid is the second field of the `Uid:` line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// `apt-get ...` as root: directly, or through sudo.
fn apt_command(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut command = Command::new("sudo");
        command.arg(program);
        command
    }
}

fn install_apt_packages() -> Result<()> {
    const STEP: &str = "setup (apt packages)";
    if !Path::new("/usr/bin/dpkg-query").exists() {
        bail!("{STEP}: dpkg-query not found; `cargo xtask setup` supports Debian 12 (install these by hand elsewhere: {})", APT_PACKAGES.join(" "));
    }
    // One dpkg-query for all packages; it exits non-zero when some are unknown,
    // so judge by what it printed rather than by its status.
    let mut query = Command::new("dpkg-query");
    query
        .args(["-W", "-f=${Package} ${Status}\\n"])
        .args(APT_PACKAGES)
        .stderr(Stdio::null());
    announce(&query);
    let output = query
        .output()
        .with_context(|| format!("{STEP}: cannot run dpkg-query"))?;
    let listing = String::from_utf8_lossy(&output.stdout);
    let installed = |package: &str| {
        listing.lines().any(|line| {
            line.split_once(' ').is_some_and(|(name, status)| {
                name == package && status.trim() == "install ok installed"
            })
        })
    };
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        println!("all {} apt packages are installed", APT_PACKAGES.len());
        return Ok(());
    }
    println!("missing apt packages: {}", missing.join(" "));
    run(STEP, apt_command("apt-get").arg("update"))?;

    // Can the configured sources provide them? (LLVM 22 is the usual gap.)
    let policy = capture(STEP, Command::new("apt-cache").arg("policy").args(&missing))?;
    let unavailable: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|p| !has_candidate(&policy, p))
        .collect();
    if !unavailable.is_empty() {
        let llvm: Vec<&str> = unavailable
            .iter()
            .copied()
            .filter(|p| p.contains("-22"))
            .collect();
        if !llvm.is_empty() {
            bail!(
                "{STEP}: the LLVM 22 packages are not in the configured apt sources (no candidate for: {}). \
                 grim needs LLVM/MLIR 22: add an apt source that has them (e.g. apt.llvm.org's llvm-toolchain-bookworm-22), then run `cargo xtask setup` again",
                llvm.join(" ")
            );
        }
        bail!(
            "{STEP}: the configured apt sources have no candidate for: {}",
            unavailable.join(" ")
        );
    }
    let mut install = apt_command("apt-get");
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y"])
        .args(&missing);
    run(STEP, &mut install)
}

/// Whether `apt-cache policy` output gives `package` an installation candidate.
fn has_candidate(policy: &str, package: &str) -> bool {
    let mut current = false;
    for line in policy.lines() {
        if !line.starts_with(' ') {
            let name = line.trim_end().trim_end_matches(':');
            current = name == package || name.split(':').next() == Some(package);
        } else if current {
            if let Some(candidate) = line.trim().strip_prefix("Candidate:") {
                return candidate.trim() != "(none)";
            }
        }
    }
    false
}

// ---------------------------------------------------------------------------
// runtime
// ---------------------------------------------------------------------------

fn host_triple() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let text = capture("runtime (host triple)", Command::new(rustc).arg("-vV"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("host:"))
        .map(|h| h.trim().to_string())
        .context("runtime (host triple): `rustc -vV` printed no `host:` line")
}

fn runtime() -> Result<()> {
    heading("runtime: build libgrim_runtime.a for the host and aarch64");
    let host = host_triple()?;
    let target = target_dir();
    let destination_root = target.join("grim-runtime");
    for triple in [host.as_str(), AARCH64_RUST_TRIPLE] {
        let step = format!("runtime ({triple})");
        let mut build = cargo();
        build.args(["build", "-p", "grim-runtime", "--release"]);
        let built = if triple == host {
            target.join("release").join("libgrim_runtime.a")
        } else {
            build.args(["--target", triple]);
            target
                .join(triple)
                .join("release")
                .join("libgrim_runtime.a")
        };
        run(&step, &mut build)?;
        if !built.is_file() {
            bail!(
                "{step}: the build succeeded but {} does not exist",
                built.display()
            );
        }
        let dir = destination_root.join(triple);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{step}: cannot create {}", dir.display()))?;
        let destination = dir.join("libgrim_runtime.a");
        // Copy, then rename: a grimc running meanwhile never sees half a library.
        let partial = dir.join(".libgrim_runtime.a.partial");
        std::fs::copy(&built, &partial).with_context(|| {
            format!(
                "{step}: cannot copy {} to {}",
                built.display(),
                partial.display()
            )
        })?;
        std::fs::rename(&partial, &destination).with_context(|| {
            format!(
                "{step}: cannot move {} to {}",
                partial.display(),
                destination.display()
            )
        })?;
        println!("copied {} -> {}", rel(&built), rel(&destination));
    }
    Ok(())
}

/// `path` relative to the repository, for messages.
fn rel(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------
// demo
// ---------------------------------------------------------------------------

/// Deterministic values in [-1, 1) (the model crate's fixed-seed LCG).
fn lcg_values(seed: u64, count: usize) -> Vec<f32> {
    grim_model::tensor::fixed_seed_values(seed, count)
}

struct Errors {
    max_abs: f32,
    max_rel: f32,
}

/// Max |a-b| and max |a-b| / |b| (elements with |b| < 1e-6 count by their absolute error only).
fn compare(a: &Tensor, b: &Tensor) -> Result<Errors> {
    if a.shape != b.shape {
        bail!("shapes differ: {:?} vs {:?}", a.shape, b.shape);
    }
    let mut errors = Errors {
        max_abs: 0.0,
        max_rel: 0.0,
    };
    for (&x, &y) in a.data.iter().zip(&b.data) {
        let diff = (x - y).abs();
        if !diff.is_finite() {
            return Ok(Errors {
                max_abs: f32::INFINITY,
                max_rel: f32::INFINITY,
            });
        }
        errors.max_abs = errors.max_abs.max(diff);
        if y.abs() >= 1e-6 {
            errors.max_rel = errors.max_rel.max(diff / y.abs());
        }
    }
    Ok(errors)
}

fn demo() -> Result<()> {
    let started = Instant::now();
    setup()?;

    let grimc = build_grimc("demo")?;
    let demo_dir = target_dir().join("demo");
    std::fs::create_dir_all(&demo_dir)
        .with_context(|| format!("demo: cannot create {}", demo_dir.display()))?;
    demo_model(&grimc, &demo_dir, "mlp", &[])?;
    demo_model(&grimc, &demo_dir, "cnn", &["--model", "cnn"])?;
    // A ResNet stage as PyTorch exports it, pruned by mask multiplication:
    // the graph level folds every batch norm and fuses every relu and
    // residual add (inspect shows only convs), and plans one arena.
    demo_model(
        &grimc,
        &demo_dir,
        "resnet_stage",
        &["--model", "resnet-stage"],
    )?;

    heading("demo: where the CNN's time goes (host, 2 threads)");
    run(
        "demo (grimc bench --per-layer)",
        Command::new(&grimc)
            .args([
                "bench",
                "cnn.onnx",
                "--per-layer",
                "--threads",
                "2",
                "--runs",
                "200",
            ])
            .current_dir(&demo_dir),
    )?;
    println!(
        "\ndemo passed: the MLP, the CNN and the ResNet stage compiled for aarch64, run under qemu-aarch64 and on the host, all within tolerance of the reference ({:.0} s)",
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

/// One demo model: write it with `grimc example EXAMPLE...`, inspect it,
/// compile it for aarch64 (counting NEON fmla), run it under qemu and on
/// the host, and check both against the reference interpreter.
fn demo_model(grimc: &Path, demo_dir: &Path, name: &str, example: &[&str]) -> Result<()> {
    let grimc_in_demo = |args: &[&str]| {
        let mut command = Command::new(grimc);
        command.args(args).current_dir(demo_dir);
        command
    };
    let onnx = format!("{name}.onnx");
    let (x_npy, y_host, y_aarch64) = (
        format!("{name}_x.npy"),
        format!("{name}_y_host.npy"),
        format!("{name}_y_aarch64.npy"),
    );
    heading(&format!("demo: the {name}"));
    let mut example_args = vec!["example"];
    example_args.extend_from_slice(example);
    example_args.extend(["-o", onnx.as_str()]);
    run("demo (grimc example)", &mut grimc_in_demo(&example_args))?;
    let graph =
        load_onnx(&demo_dir.join(&onnx)).with_context(|| format!("demo: cannot load {onnx}"))?;
    let [input] = graph.inputs.as_slice() else {
        bail!(
            "demo: the example model has {} inputs, the demo feeds exactly one",
            graph.inputs.len()
        );
    };
    let x = Tensor::new(
        input.shape.clone(),
        lcg_values(0x6772_696d, input.shape.iter().product()),
    )?;
    write_npy(&demo_dir.join(&x_npy), &x).with_context(|| format!("demo: cannot write {x_npy}"))?;
    println!(
        "wrote {} (input '{}', shape {:?}, fixed-seed values in [-1, 1))",
        rel(&demo_dir.join(&x_npy)),
        input.name,
        input.shape
    );
    run(
        "demo (grimc inspect)",
        &mut grimc_in_demo(&["inspect", &onnx]),
    )?;

    heading("demo: compile for aarch64");
    run(
        "demo (grimc compile)",
        &mut grimc_in_demo(&[
            "compile",
            &onnx,
            "--target",
            "aarch64-linux-gnu",
            "--emit",
            "obj,asm,header",
            "-o",
            &format!("{name}_aarch64"),
        ]),
    )?;
    let asm_dir = demo_dir.join(format!("{name}_aarch64"));
    let asm = std::fs::read_dir(&asm_dir)
        .with_context(|| format!("demo: cannot list {}", asm_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension() == Some(OsStr::new("s")))
        .with_context(|| {
            format!(
                "demo: grimc compile wrote no .s file in {}",
                asm_dir.display()
            )
        })?;
    let text = std::fs::read_to_string(&asm)
        .with_context(|| format!("demo: cannot read {}", asm.display()))?;
    let count = |mnemonic: &str| {
        text.lines()
            .filter(|l| l.split_whitespace().next() == Some(mnemonic))
            .count()
    };
    let fmla = count("fmla");
    println!(
        "{}: {fmla} fmla instructions (NEON vector fused multiply-add; scalar fmadd: {})",
        rel(&asm),
        count("fmadd")
    );

    heading("demo: run");
    run(
        "demo (grimc run, aarch64 under qemu)",
        &mut grimc_in_demo(&[
            "run",
            &onnx,
            "--target",
            "aarch64-linux-gnu",
            "--input",
            &x_npy,
            "--output",
            &y_aarch64,
        ]),
    )?;
    run(
        "demo (grimc run, host)",
        &mut grimc_in_demo(&[
            "run",
            &onnx,
            "--target",
            "host",
            "--input",
            &x_npy,
            "--output",
            &y_host,
            "--threads",
            "2",
        ]),
    )?;

    heading("demo: check against the reference interpreter");
    let reference = run_reference(&graph, std::slice::from_ref(&x))
        .context("demo: the reference interpreter failed")?;
    let reference = reference
        .into_iter()
        .next()
        .context("demo: the model has no outputs")?;
    let y_host =
        read_npy(&demo_dir.join(&y_host)).with_context(|| format!("demo: cannot read {y_host}"))?;
    let y_aarch64 = read_npy(&demo_dir.join(&y_aarch64))
        .with_context(|| format!("demo: cannot read {y_aarch64}"))?;
    let max_ref = reference.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let tolerance = 1e-4 * max_ref.max(1.0);
    println!(
        "output shape {:?}, max |ref| = {max_ref:.4}, tolerance (max abs error) = {tolerance:.2e}",
        reference.shape
    );
    let mut failures = Vec::new();
    for (name, a, b) in [
        ("host    vs reference", &y_host, &reference),
        ("aarch64 vs reference", &y_aarch64, &reference),
        ("host    vs aarch64  ", &y_host, &y_aarch64),
    ] {
        let errors = compare(a, b).with_context(|| {
            format!(
                "demo: {}",
                name.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })?;
        let ok = errors.max_abs <= tolerance;
        println!(
            "{name}: max abs error {:.3e}, max rel error {:.3e}  {}",
            errors.max_abs,
            errors.max_rel,
            if ok { "ok" } else { "TOO LARGE" }
        );
        if !ok {
            failures.push(name.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    if !failures.is_empty() {
        bail!(
            "demo (check): max abs error above {tolerance:.2e} for: {}",
            failures.join(", ")
        );
    }
    println!(
        "{}: compiled for aarch64 ({fmla} fmla), run under qemu-aarch64 and on the host, both within {tolerance:.2e} of the reference",
        graph.name
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// test
// ---------------------------------------------------------------------------

/// Sums `test result: ok. N passed; M failed; ...` lines of cargo test.
fn cargo_test_counts(output: &str) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for line in output.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        let Some((_, counts)) = rest.split_once(". ") else {
            continue;
        };
        for part in counts.split(';') {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(what)) = (
                words.next().and_then(|n| n.parse::<usize>().ok()),
                words.next(),
            ) {
                match what {
                    "passed" => passed += n,
                    "failed" => failed += n,
                    _ => {}
                }
            }
        }
    }
    (passed, failed)
}

/// Sums lit's summary (`Passed: N`, `Failed: N`; unresolved, timed-out and
/// unexpectedly passing tests count as failed).
fn lit_counts(output: &str) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    let mut in_summary = false;
    for line in output.lines() {
        let line = line.trim();
        if line.starts_with("Total Discovered Tests") || line.starts_with("Testing Time") {
            in_summary = true;
            continue;
        }
        if !in_summary {
            continue;
        }
        let Some((label, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(n) = rest
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        match label.trim() {
            "Passed" | "Expected Passes" | "Expectedly Failed" | "Expected Failures" => passed += n,
            "Failed"
            | "Unexpected Failures"
            | "Unresolved"
            | "Unresolved Tests"
            | "Timed Out"
            | "Unexpectedly Passed"
            | "Unexpected Passes" => failed += n,
            _ => {}
        }
    }
    (passed, failed)
}

fn test() -> Result<()> {
    let started = Instant::now();
    setup()?;
    let root = repo_root();

    heading("test: build grim-opt and grimc (debug, for lit)");
    run(
        "test (cargo build)",
        cargo().args(["build", "-p", "grim-compiler"]),
    )?;

    let digits = digits::ensure()?;

    heading("test: cargo test --workspace");
    let mut cargo_test = cargo();
    cargo_test
        .args(["test", "--workspace", "--no-fail-fast"])
        .env("GRIM_RUNTIME_DIR", target_dir().join("grim-runtime"))
        .env("GRIM_DIGITS_DIR", &digits);
    let (cargo_ok, cargo_output) = run_streaming("test (cargo test)", &mut cargo_test)?;
    let (cargo_passed, cargo_failed) = cargo_test_counts(&cargo_output);

    heading("test: lit");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(PathBuf::from(LLVM_BIN)).chain(std::env::split_paths(&path)),
    )?;
    let mut lit = Command::new(Path::new(LLVM_BIN).join("lit"));
    lit.args(["-v", "lit-tests"])
        .current_dir(&root)
        .env("GRIM_BIN_DIR", target_dir().join("debug"))
        .env("PATH", &path);
    let (lit_ok, lit_output) = run_streaming("test (lit)", &mut lit)?;
    let (lit_passed, lit_failed) = lit_counts(&lit_output);

    // The ONNX node tests, with the debug grimc built above.
    let conformance = conformance::suite(&target_dir().join("debug").join("grimc"), false);
    let conformance_ok = match &conformance {
        Ok((passed, total)) => {
            println!(
                "conformance: {passed} of {total} node test cases pass, as the manifest expects"
            );
            true
        }
        Err(error) => {
            println!("{error:#}");
            false
        }
    };

    // The zoo models against onnxruntime, with the same grimc.
    let zoo = zoo::suite(&target_dir().join("debug").join("grimc"));
    let (zoo_passed, zoo_failed) = match &zoo {
        Ok(passed) => (*passed, 0),
        Err(error) => {
            println!("{error:#}");
            (0, 1)
        }
    };

    println!(
        "\ncargo test: {cargo_passed} passed, {cargo_failed} failed; lit: {lit_passed} passed, {lit_failed} failed; zoo: {zoo_passed} passed; {:.0} s",
        started.elapsed().as_secs_f32()
    );
    // The conformance run counts as one test, each zoo check as one.
    println!(
        "{} passed, {} failed",
        cargo_passed + lit_passed + usize::from(conformance_ok) + zoo_passed,
        cargo_failed + lit_failed + usize::from(!conformance_ok) + zoo_failed
    );
    let mut failed_steps = Vec::new();
    if !cargo_ok {
        failed_steps.push("cargo test --workspace");
    }
    if !lit_ok {
        failed_steps.push("lit -v lit-tests");
    }
    if !conformance_ok {
        failed_steps.push("conformance");
    }
    if zoo.is_err() {
        failed_steps.push("zoo");
    }
    if !failed_steps.is_empty() {
        bail!("test: failed: {}", failed_steps.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cargo_test_summaries() {
        let out = "running 3 tests\ntest result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
                   test result: FAILED. 4 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.2s\n";
        assert_eq!(cargo_test_counts(out), (7, 2));
    }

    #[test]
    fn parses_lit_summaries() {
        let new = "PASS: grim :: a.mlir (1 of 3)\nTesting Time: 0.5s\n\nTotal Discovered Tests: 3\n  Passed: 2 (66.67%)\n  Failed: 1 (33.33%)\n";
        assert_eq!(lit_counts(new), (2, 1));
        let old = "Testing Time: 0.5s\n  Expected Passes    : 5\n  Unexpected Failures: 2\n";
        assert_eq!(lit_counts(old), (5, 2));
    }

    #[test]
    fn finds_apt_candidates() {
        let policy = "llvm-22-dev:\n  Installed: (none)\n  Candidate: 1:22.1.8-1\n  Version table:\nfoo:\n  Installed: (none)\n  Candidate: (none)\n";
        assert!(has_candidate(policy, "llvm-22-dev"));
        assert!(!has_candidate(policy, "foo"));
        assert!(!has_candidate(policy, "bar"));
    }

    #[test]
    fn lcg_is_deterministic_and_in_range() {
        let a = lcg_values(1, 1000);
        assert_eq!(a, lcg_values(1, 1000));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
    }
}
