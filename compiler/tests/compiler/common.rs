//! The helpers every test module shares: compile a model and run it
//! natively (host, or aarch64 under qemu), compare with the reference
//! interpreter, build one-gemm models, run grimc.

use grim_compiler::{
    driver::{self, Options},
    link,
};
use grim_model::{
    bcrc::random_bcr_weight, save_onnx, BlockSize, Graph, Node, Op, Tensor, ValueInfo,
};
use proptest::prelude::*;
use std::{collections::BTreeMap, path::Path, process::Command};

/// Compiles `graph` for `target`, links the runner, runs it on `inputs`.
pub fn compile_and_run(
    graph: &Graph,
    target: &str,
    block: (i64, i64),
    reorder: bool,
    threads: usize,
    inputs: &[Tensor],
) -> Vec<Tensor> {
    compile_and_run_staged(graph, target, block, reorder, threads, inputs).0
}

/// The module at the bcr level, as the driver printed it.
pub fn bcr_stage(compiled: &driver::Compiled) -> &str {
    compiled
        .stages
        .iter()
        .find(|(level, _)| *level == driver::Level::Bcr)
        .map(|(_, text)| text.as_str())
        .expect("a bcr stage")
}

/// A weight matrix of a compiled model, by weight name.
pub fn packed_layer<'a>(
    compiled: &'a driver::Compiled,
    name: &str,
) -> &'a grim_compiler::blob::PackedLayer {
    compiled
        .blob
        .layers
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no layer {name}"))
}

/// Links a compiled model with the runner in `work` and runs it on `inputs`.
pub fn run_native(
    compiled: &driver::Compiled,
    work: &Path,
    inputs: &[Tensor],
    threads: usize,
) -> Vec<Tensor> {
    let object = work.join("model.o");
    std::fs::write(&object, &compiled.artifacts.object).expect("write object");
    let exe = work.join("runner");
    link::link_runner(&compiled.target, &object, work, &exe).unwrap_or_else(|e| panic!("{e}"));
    let (outputs, _) = link::run_runner(
        &compiled.target,
        &exe,
        work,
        inputs,
        &compiled.interface.outputs,
        threads,
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    outputs
}

/// [`compile_and_run`], also returning the module at the bcr level.
pub fn compile_and_run_staged(
    graph: &Graph,
    target: &str,
    block: (i64, i64),
    reorder: bool,
    threads: usize,
    inputs: &[Tensor],
) -> (Vec<Tensor>, String) {
    compile_and_run_forced(graph, target, block, reorder, threads, inputs, &[])
}

/// [`compile_and_run_staged`] with the kernels of the named layers fixed
/// by an LR file (`dense` or `bcr`, at the block given): the kernel paths a
/// test exercises do not depend on the cost model's choice.
pub fn compile_and_run_forced(
    graph: &Graph,
    target: &str,
    block: (i64, i64),
    reorder: bool,
    threads: usize,
    inputs: &[Tensor],
    kernels: &[(&str, &str)],
) -> (Vec<Tensor>, String) {
    let work = tempfile::tempdir().expect("tempdir");
    let model = work.path().join("model.onnx");
    save_onnx(graph, &model).expect("save onnx");
    let mut options = Options::new(&model, target);
    options.block = Some(block);
    options.reorder = reorder;
    if !kernels.is_empty() {
        let mut lr = grim_model::LrFile::new(None);
        for (layer, kernel) in kernels {
            let sparsity = match *kernel {
                "dense" => grim_model::Sparsity::Dense,
                _ => grim_model::Sparsity::Bcr {
                    block_rows: block.0 as usize,
                    block_cols: block.1 as usize,
                    row_keep: None,
                    col_keep: None,
                },
            };
            lr.layers.push(grim_model::LrLayer {
                name: layer.to_string(),
                op: None,
                shape: None,
                sparsity,
                order: None,
                schedule: None,
                latency_ms: None,
                estimates_ns: None,
                rate: None,
            });
        }
        let path = work.path().join("forced.lr.json");
        lr.save(&path).expect("save lr");
        options.lr = Some(path);
    }
    let compiled =
        driver::compile(&options, true, true).unwrap_or_else(|e| panic!("compile failed: {e}"));
    let bcr = bcr_stage(&compiled).to_string();
    (run_native(&compiled, work.path(), inputs, threads), bcr)
}

/// Asserts that the compiled outputs equal the reference's in count and
/// shape and, element by element, within 1e-4 of the largest reference
/// magnitude (at least 1): the kernels sum in another order than the naive
/// reference, so exact equality is not expected.
pub fn assert_close(actual: &[Tensor], expected: &[Tensor]) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a.shape, e.shape);
        let scale = e.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.data.iter().zip(&e.data).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * scale,
                "element {i}: compiled {x} vs reference {y} (scale {scale})"
            );
        }
    }
}

/// A deterministic input of `shape` in [-1, 1) from `seed`
/// ([`Tensor::fixed_seed`]).
pub fn lcg_input(shape: Vec<usize>, seed: u64) -> Tensor {
    Tensor::fixed_seed(shape, seed)
}

/// One Gemm layer `y = x W^T + b` with a BCR weight and extra fully pruned rows and columns.
#[allow(clippy::too_many_arguments)]
pub fn gemm_graph(
    m: usize,
    k: usize,
    n: usize,
    block: BlockSize,
    row_keep: f64,
    col_keep: f64,
    seed: u64,
    bias: bool,
) -> Graph {
    let mut w = random_bcr_weight(m, k, block, row_keep, col_keep, seed);
    // Fully pruned rows and columns across all blocks.
    for c in 0..k {
        w[(seed as usize % m) * k + c] = 0.0;
    }
    for r in 0..m {
        w[r * k + (seed as usize / 7) % k] = 0.0;
    }
    let mut initializers = BTreeMap::new();
    initializers.insert("w".to_string(), Tensor::new(vec![m, k], w).unwrap());
    let mut inputs = vec!["x".to_string(), "w".to_string()];
    if bias {
        initializers.insert("b".to_string(), lcg_input(vec![m], seed + 1));
        inputs.push("b".to_string());
    }
    Graph {
        name: "gemm".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![n, k],
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: vec![n, m],
        }],
        nodes: vec![Node {
            name: "fc".into(),
            op: Op::LINEAR,
            inputs,
            outputs: vec!["y".into()],
        }],
        initializers,
    }
}

/// One gemm case: M and K below `max_side`, N = 1 or 2..`max_n`, block sides
/// below the given bounds, keep ratios in [0.1, 1), a seed.
#[derive(Debug, Clone)]
pub struct GemmCase {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub block: (usize, usize),
    pub keep: (f64, f64),
    pub seed: u64,
}

/// Random [`GemmCase`]s: M and K in `1..max_side`, N = 1 (matrix-vector)
/// or `2..max_n`, block sides in `1..max_block`.
pub fn gemm_cases(
    max_side: usize,
    max_n: usize,
    max_block: (usize, usize),
) -> impl Strategy<Value = GemmCase> {
    (
        1..max_side,
        1..max_side,
        prop_oneof![Just(1usize), 2..max_n],
        1..max_block.0,
        1..max_block.1,
        0.1f64..1.0,
        0.1f64..1.0,
        0u64..1000,
    )
        .prop_map(|(m, k, n, r, c, rk, ck, seed)| GemmCase {
            m,
            k,
            n,
            block: (r, c),
            keep: (rk, ck),
            seed,
        })
}

/// Runs grimc with `args`; returns its exit code (-1 if killed) and stderr.
pub fn grimc(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_grimc"))
        .args(args)
        .output()
        .expect("run grimc");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// Runs grimc, which must succeed, and parses its stdout as one JSON value.
pub fn grimc_json(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_grimc"))
        .args(args)
        .output()
        .expect("run grimc");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

/// Writes `bytes` to `path`, panicking on failure.
pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Runs grimc, which must succeed, and returns its stdout (for `grimc lower`,
/// which prints a level there).
pub fn grimc_stdout(args: &[&str]) -> Vec<u8> {
    let output = Command::new(env!("CARGO_BIN_EXE_grimc"))
        .args(args)
        .output()
        .expect("run grimc");
    assert!(
        output.status.success(),
        "grimc {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Compiles the model file `options` names with `driver::compile` (weights
/// embedded, generic entry point for the runner), links it in `work` and runs
/// it on `inputs` with `threads` threads; returns the compiled model too.
pub fn compile_file_and_run(
    options: &Options,
    work: &Path,
    inputs: &[Tensor],
    threads: usize,
) -> (driver::Compiled, Vec<Tensor>) {
    let compiled = driver::compile(options, true, true)
        .unwrap_or_else(|e| panic!("compile {} failed: {e}", options.model.display()));
    let outputs = run_native(&compiled, work, inputs, threads);
    (compiled, outputs)
}
