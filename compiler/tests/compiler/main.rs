//! End-to-end tests of the compiler: every lowering stage snapshotted, compiled
//! code against the reference interpreter on the host and on aarch64 under
//! qemu, and the CLI's error contract. One test binary on purpose: each one
//! links all of MLIR and LLVM, so the tests live in modules of this binary
//! by theme rather than in binaries of their own:
//!
//! - `common`: the helpers (compile, link and run a model; compare with the
//!   reference; run grimc),
//! - `gemm`: BCR and dense gemms, edge cases, MLPs, transposes, N tiling,
//! - `conv`: convolutions through both kernels and every im2col route,
//! - `schedule`: what an LR file forces (kernels, blocks, schedules),
//! - `cli`: grimc's commands and its error contract on bad inputs,
//! - `uniform`: the walk with constant trip counts against the counted one,
//! - `recurrent`: RNN, GRU and LSTM against the reference (proptests),
//! - `graph`: whole models through the graph passes (batch-norm folding,
//!   epilogue fusion, kernel choice, the memory plan) and IR replay.
//!
//! The snapshot test stays here, in the crate root, so that its insta
//! snapshots keep their names (`compiler__tiny_mlp_*.snap`, from this
//! module's path) and sit in `snapshots/` beside this file.

mod cli;
mod common;
mod conv;
mod gemm;
mod graph;
mod recurrent;
mod schedule;
mod uniform;

use common::write;
use grim_compiler::driver::{self, Options};
use grim_model::{mlp, save_onnx, BlockSize};

/// A small MLP whose every lowering stage is snapshotted (aarch64, so the
/// LLVM IR does not depend on the machine running the test).
#[test]
fn snapshots_of_every_lowering_stage() {
    let graph = mlp(4, &[16, 24, 8], BlockSize::new(4, 8).unwrap(), 0.5, 0.5, 3).unwrap();
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("tiny_mlp.onnx");
    save_onnx(&graph, &model).unwrap();
    let mut options = Options::new(&model, "aarch64-linux-gnu");
    options.block = Some((4, 8));
    // fc1 on the BCR kernels whatever the cost model prefers at this size,
    // so the stages show both kernel families.
    let lr = work.path().join("tiny.lr.json");
    write(&lr, br#"{"version": 2, "layers": [{"name": "fc1", "sparsity": {"kind": "bcr", "block_rows": 4, "block_cols": 8}}]}"#);
    options.lr = Some(lr);
    let compiled = driver::compile(&options, true, false).unwrap();
    let scrub = |text: &str| text.replace(&work.path().display().to_string(), "<tmp>");
    for (level, text) in &compiled.stages {
        insta::assert_snapshot!(format!("tiny_mlp_{level:?}").to_lowercase(), scrub(text));
    }
    // The LLVM IR straight from the MLIR translation plus our entry points (before O3).
    insta::assert_snapshot!(
        "tiny_mlp_llvm_ir",
        scrub(&compiled.artifacts.llvm_ir_unoptimized)
    );
    // O3 for cortex-a76 must use NEON fused multiply-adds.
    assert!(
        compiled.artifacts.assembly.contains("fmla"),
        "no fmla in the aarch64 assembly"
    );
}
