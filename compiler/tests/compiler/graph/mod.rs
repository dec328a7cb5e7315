//! Whole models through the graph passes (graph-simplify's batch-norm
//! folding and epilogue fusion, graph-choose-kernel, graph-plan-memory):
//! a ResNet stage on the host and under qemu, its memory plan verified on
//! the IR by the independent checker, random small conv graphs against the
//! reference, the storage of a mask-multiplied BCR gemm, and a graph-level
//! dump that replays to the same LLVM IR.

mod elementwise;
mod files;
mod grouped;
mod pad;
mod pool;
mod random;
mod resnet;
mod runtime_weights;

use grim_model::{save_onnx, Graph};
use std::path::{Path, PathBuf};

/// Saves `graph` as `<name>.onnx` in `dir`; returns the path.
fn save(graph: &Graph, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.onnx"));
    save_onnx(graph, &path).unwrap();
    path
}
