//! `grim-prune`: BCR pruning of ONNX models, for `grimc prune`.
//!
//! A trained model and (optionally) its training data in; the same ONNX
//! graph with BCR-structured weights and an LR file out. The projection
//! rule lives in `grim_model::projection` (the zoo uses it too); this crate
//! finds the prunable layers ([`layers`]), reads `.npz` data ([`data`]),
//! retrains with ADMM or fine-tunes on candle ([`train`]) and writes the
//! result ([`write`]). It links no MLIR or LLVM, and the fast tests of the
//! other crates do not link it (candle is large).

#![deny(missing_docs)]

pub mod auto;
pub mod data;
pub mod error;
pub mod examples;
pub mod layers;
mod run;
pub mod train;
pub mod write;

pub use error::PruneError;
pub use run::{evaluate, prune, train_example, LayerReport, Method, PruneOptions, PruneReport};
pub use train::{Loss, Metric, Schedule, Trainer};
