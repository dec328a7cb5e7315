//! `grim-model`: everything grim knows about a model *before* MLIR.
//!
//! This crate reads and writes the on-disk formats (ONNX, the layerwise
//! representation, `.npy`), holds a small graph of f32 ops with static shapes,
//! interprets it with a naive reference interpreter, and implements BCR
//! pruning and BCRC packing of weight matrices.
//!
//! It deliberately has no MLIR or LLVM dependency: the reference interpreter
//! and the packing must stay trustworthy oracles for the compiled code, the
//! tools that only inspect or prune models should not need a compiler
//! toolchain, and its tests run in seconds.

#![deny(missing_docs)]

pub mod bcrc;
pub mod cnn;
pub mod cost;
pub mod error;
mod fsutil;
pub mod graph;
pub mod lr;
pub mod memplan;
pub mod mlp;
pub mod npy;
pub mod onnx;
pub mod pad;
pub mod panels;
pub mod pool;
pub mod projection;
pub mod recurrent;
pub mod reference;
pub mod resnet;
pub mod tensor;
pub mod zoo;

pub use bcrc::{
    bcr_project, mask_multiplied_bcr_weight, random_bcr_weight, Bcrc, BcrcStats, BlockSize,
    BlockView, Order,
};
pub use cnn::demo_cnn;
pub use error::ModelError;
pub use fsutil::write_atomic;
pub use graph::{Graph, MatMulShape, Node, Op, ValueInfo};
pub use lr::{LrFile, LrLayer, Schedule, Sparsity};
pub use mlp::{conv_layer, demo_mlp, kn_gemm, linear_layer, mlp};
pub use npy::{read_npy, write_npy};
pub use onnx::{load_onnx, load_onnx_with, save_onnx, LoadOptions, Loaded};
pub use onnx::{save_onnx_with_opset, to_proto_with_opset};
pub use panels::row_panels;
pub use reference::run_reference;
pub use resnet::{residual_stack, try_residual_stack, BcrPrune, ResidualStack};
pub use tensor::Tensor;
pub use zoo::{zoo_model, Architecture, ZooModel};
