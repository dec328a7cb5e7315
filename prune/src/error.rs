//! The errors of `grimc prune`, each naming the file and the place.

use std::path::PathBuf;

use grim_model::ModelError;

/// Everything that can stop a pruning run.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// Reading, importing or writing the model (the message names the file).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A data file (`.npz`) that cannot be used, and why.
    #[error("{}: {message}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the array and index where there is one.
        message: String,
    },
    /// The model has no layer BCR can prune.
    #[error("{}: nothing to prune: {reasons}", path.display())]
    NothingPrunable {
        /// The model.
        path: PathBuf,
        /// Why each candidate layer was left dense.
        reasons: String,
    },
    /// A node the trainer cannot run forward and backward.
    #[error("{}: node '{node}' ({op}): {message}", path.display())]
    Node {
        /// The model.
        path: PathBuf,
        /// The node's name (or `#index`).
        node: String,
        /// Its ONNX op type.
        op: String,
        /// What is unsupported.
        message: String,
    },
    /// Options that contradict each other or are out of range.
    #[error("{0}")]
    Options(String),
    /// The autodiff library failed (a shape the trainer got wrong, out of
    /// memory); `during` says what was being done.
    #[error("training failed while {during}: {source}")]
    Candle {
        /// What was being done.
        during: String,
        /// The library's error.
        #[source]
        source: candle_core::Error,
    },
}

/// Attaches what was being done to a candle error.
pub(crate) trait During<T> {
    fn during(self, what: impl Into<String>) -> Result<T, PruneError>;
}

impl<T> During<T> for candle_core::Result<T> {
    fn during(self, what: impl Into<String>) -> Result<T, PruneError> {
        self.map_err(|source| PruneError::Candle {
            during: what.into(),
            source,
        })
    }
}
