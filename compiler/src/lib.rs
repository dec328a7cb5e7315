//! The grim compiler driver: frontends, the pipeline, the weight blob, code
//! generation through LLVM, linking with the runtime, and the CLI commands.
#![deny(missing_docs)]

pub mod blob;
pub mod codegen;
pub mod driver;
pub mod frontend;
pub mod inspect;
pub mod link;
pub mod opt;
pub mod output;

/// Errors of the compiler. Each message is complete and names the file and
/// place (line:column, node or layer) when there is one.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// A model, LR or npy file is malformed or unsupported.
    #[error(transparent)]
    Model(#[from] grim_model::ModelError),
    /// MLIR diagnostics (parse, verify or pass failures), already formatted.
    #[error("{0}")]
    Diagnostics(String),
    /// Bad command-line use or a missing file.
    #[error("{0}")]
    Usage(String),
    /// An external tool (linker, qemu) failed or is missing.
    #[error("{0}")]
    Tool(String),
    /// A bug in grim: an invariant did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}
