//! The one error type of the crate.
//!
//! Every variant names where the problem is (file, line/column, node or layer)
//! because these errors end up in front of a user of `grimc`, who has to find
//! the offending thing in their model without a debugger.

use std::path::PathBuf;

/// Everything that can go wrong while reading, checking, interpreting or
/// packing a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An operating-system error while reading or writing `path`.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file that could not be read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a decodable ONNX protobuf (truncated, garbage, ...).
    #[error("{}: not a valid ONNX model: {message}", path.display())]
    OnnxDecode {
        /// The ONNX file.
        path: PathBuf,
        /// What the decoder complained about.
        message: String,
    },
    /// The ONNX model is well-formed but uses something outside the supported
    /// subset (model-level, not tied to one node).
    #[error("{}: {message}", path.display())]
    OnnxModel {
        /// The ONNX file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A node uses an op, attribute or type that grim does not support.
    #[error("node '{node}' ({op_type}): {what}")]
    Unsupported {
        /// Node name, or `#index` for unnamed nodes.
        node: String,
        /// The ONNX op type.
        op_type: String,
        /// What is unsupported or missing.
        what: String,
    },
    /// Shapes do not fit together at a node (or a graph input/output).
    #[error("node '{node}': shape error: {message}")]
    Shape {
        /// Node (or graph value) name.
        node: String,
        /// Which shapes disagree.
        message: String,
    },
    /// A malformed or unsupported `.npy` file.
    #[error("{}: invalid .npy: {message}", path.display())]
    Npy {
        /// The `.npy` file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A syntax error in a layerwise-representation (LR) file.
    #[error("{}:{line}:{column}: error: {message}", path.display())]
    Lr {
        /// The LR file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser complained about.
        message: String,
    },
    /// A semantically invalid layer in an LR file.
    #[error("{}: error: layer '{layer}': {message}", path.display())]
    LrLayer {
        /// The LR file (empty when checking an in-memory value).
        path: PathBuf,
        /// The layer name.
        layer: String,
        /// What is wrong.
        message: String,
    },
    /// An LR-file problem that is not tied to one layer (e.g. the version).
    #[error("{}: error: {message}", path.display())]
    LrFile {
        /// The LR file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Invalid arguments to BCR packing or projection.
    #[error("BCR: {message}")]
    Bcr {
        /// What is wrong.
        message: String,
    },
    /// A malformed block-size string such as `8x` or `0x16`.
    #[error("invalid block size '{text}': {message}")]
    BlockSize {
        /// The text that failed to parse.
        text: String,
        /// Why.
        message: String,
    },
    /// A malformed order name.
    #[error("invalid order '{text}': expected 'natural' or 'grouped'")]
    Order {
        /// The text that failed to parse.
        text: String,
    },
    /// A tensor whose data length does not match its shape, or a bad argument
    /// to the reference interpreter.
    #[error("tensor '{name}': {message}")]
    Tensor {
        /// Which tensor (input name, initializer name, or empty).
        name: String,
        /// What is wrong.
        message: String,
    },
}

impl ModelError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place() {
        let e = ModelError::Unsupported {
            node: "fc1".into(),
            op_type: "Gemm".into(),
            what: "unsupported attribute 'foo'".into(),
        };
        assert_eq!(
            e.to_string(),
            "node 'fc1' (Gemm): unsupported attribute 'foo'"
        );
        let e = ModelError::Lr {
            path: "a/lr.json".into(),
            line: 3,
            column: 7,
            message: "expected ','".into(),
        };
        assert_eq!(e.to_string(), "a/lr.json:3:7: error: expected ','");
    }
}
