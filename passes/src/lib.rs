//! grim's compiler passes and the pass pipeline runner.
//!
//! Each pass lives in one file named after its flag (`bcr/reorder.rs` is
//! `bcr-reorder`) and is listed once in [`registry::PASSES`], which feeds
//! `grim-opt --list-passes`, the pipeline parser and docs/passes.md.
//! Upstream MLIR passes are used by name through the same pipeline text; see
//! [`pipeline`] for how the two kinds are interleaved.
#![deny(missing_docs)]

pub mod bcr;
pub mod builder;
pub mod graph;
pub mod levels;
pub mod lower;
pub mod pipeline;
pub mod registry;

use melior::{ir::Module, Context};
use std::collections::BTreeMap;

/// Why a pass or pipeline failed. Messages are already formatted for the
/// user (`file:line:col: error: ...` where a location exists).
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The pipeline text is malformed or names an unknown pass.
    #[error("error: invalid pass pipeline: {0}")]
    Pipeline(String),
    /// A named pipeline was given a module at another level.
    #[error("error: '{pipeline}' runs on a module at the '{expected}' level, but this one is at '{found}'")]
    Level {
        /// The named pipeline.
        pipeline: String,
        /// The level it runs on.
        expected: levels::Level,
        /// The module's level (`grim.level`).
        found: levels::Level,
    },
    /// A pass option is unknown or has a bad value.
    #[error("error: pass '{pass}': {message}")]
    Option {
        /// The pass flag.
        pass: String,
        /// What is wrong.
        message: String,
    },
    /// An op is outside what a pass handles, or breaks its contract.
    #[error("{location}: error: '{op}' op {message}")]
    Op {
        /// Where the op is (`file:line:col`, or `file: node 'name'`).
        location: String,
        /// The op's name.
        op: String,
        /// What is wrong.
        message: String,
    },
    /// The input is outside what the pass handles (not tied to one op);
    /// already formatted.
    #[error("{0}")]
    Unsupported(String),
    /// A file a pass reads (an LR file) is missing or malformed.
    #[error(transparent)]
    Model(#[from] grim_model::ModelError),
    /// A pass or upstream pipeline failed; MLIR's diagnostics follow.
    #[error("{0}")]
    Failed(String),
}

/// Options given to a pass in pipeline text: `pass{key=value key2=value2}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassOptions {
    /// Key/value pairs, in order of their keys.
    pub values: BTreeMap<String, String>,
}

impl PassOptions {
    /// Parses `key=value` pairs separated by spaces.
    pub fn parse(pass: &str, text: &str) -> Result<Self, PassError> {
        let mut values = BTreeMap::new();
        for item in text.split_whitespace() {
            let (key, value) = item.split_once('=').ok_or_else(|| PassError::Option {
                pass: pass.into(),
                message: format!("option '{item}' is not of the form key=value"),
            })?;
            values.insert(key.to_string(), value.to_string());
        }
        Ok(Self { values })
    }

    /// Fails on keys outside the ones `documented` names (`key=meaning`
    /// lines, a pass's `OPTIONS`), so a misspelt option is never ignored
    /// and `--list-passes` cannot drift from what a pass accepts.
    pub fn check_documented(&self, pass: &str, documented: &[&str]) -> Result<(), PassError> {
        let known: Vec<&str> = documented
            .iter()
            .map(|line| line.split_once('=').map_or(*line, |(key, _)| key))
            .collect();
        self.check_known(pass, &known)
    }

    /// Fails on keys outside `known`, so a misspelt option is never ignored.
    pub fn check_known(&self, pass: &str, known: &[&str]) -> Result<(), PassError> {
        match self.values.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => Err(PassError::Option {
                pass: pass.into(),
                message: format!("unknown option '{key}' (known: {})", known.join(", ")),
            }),
            None => Ok(()),
        }
    }

    /// An integer option.
    pub fn int(&self, pass: &str, key: &str, default: i64) -> Result<i64, PassError> {
        match self.values.get(key) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| PassError::Option {
                pass: pass.into(),
                message: format!("option '{key}' wants an integer, got '{text}'"),
            }),
        }
    }

    /// A string option.
    pub fn string(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// A grim pass: rewrites a module in place.
pub trait Pass {
    /// Runs the pass. On failure the module may be partly rewritten; the
    /// pipeline stops and reports.
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError>;
}

/// Every op of `module` (nested ones included, in pre-order) for which
/// `keep` holds, as raw handles: passes collect first and rewrite after, so
/// the walk never sees a half-rewritten region.
pub fn collect_ops(
    module: &Module,
    mut keep: impl FnMut(&melior::ir::OperationRef) -> bool,
) -> Vec<mlir_sys::MlirOperation> {
    use melior::ir::operation::{OperationLike, WalkOrder, WalkResult};
    let mut ops = Vec::new();
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        if keep(&op) {
            ops.push(op.to_raw());
        }
        WalkResult::Advance
    });
    ops
}

/// Declares the runtime function `name` of type `ty` (a `func.func private`
/// at the top of `module`) unless the module already has a symbol of that
/// name: the generated code calls the runtime's C ABI by these declarations.
pub fn declare_external<'c>(
    context: &'c melior::Context,
    module: &melior::ir::Module<'c>,
    name: &str,
    ty: melior::ir::Type<'c>,
) {
    use melior::ir::{
        attribute::{StringAttribute, TypeAttribute},
        block::BlockLike,
        Identifier, Region,
    };
    let exists = lower::grim_to_bcr::top_level_ops(module)
        .iter()
        .any(|op| grim_dialects::attr::string(op, "sym_name").is_some_and(|s| s == name));
    if exists {
        return;
    }
    let declaration = melior::dialect::func::func(
        context,
        StringAttribute::new(context, name),
        TypeAttribute::new(ty),
        Region::new(),
        &[(
            Identifier::new(context, "sym_visibility"),
            StringAttribute::new(context, "private").into(),
        )],
        melior::ir::Location::unknown(context),
    );
    module.body().insert_operation(0, declaration);
}

/// Whether `function` is a model function still at the tensor level: it
/// holds grim ops, or returns tensors (a model whose outputs are its inputs,
/// through Identity or Dropout only, holds no grim op at all).
pub fn is_model_function(function: &melior::ir::OperationRef) -> bool {
    use melior::ir::{
        operation::{OperationLike, WalkOrder, WalkResult},
        ValueLike,
    };
    let mut found = false;
    function.walk(WalkOrder::PreOrder, |op| {
        let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
        let returns_tensors = name == "func.return"
            && op
                .operands()
                .any(|v| melior::ir::r#type::RankedTensorType::try_from(v.r#type()).is_ok());
        if name.starts_with("grim.") || returns_tensors {
            found = true;
            return WalkResult::Interrupt;
        }
        WalkResult::Advance
    });
    found
}

/// An op's name (`""` if it is not valid UTF-8).
pub fn op_name(op: &melior::ir::OperationRef) -> String {
    use melior::ir::operation::OperationLike;
    op.name().as_string_ref().as_str().unwrap_or("").to_string()
}

/// Parses a block size `RxC` (`8x16`).
pub fn parse_block(text: &str) -> Option<(i64, i64)> {
    let (rows, cols) = text.split_once('x')?;
    let (rows, cols) = (rows.trim().parse().ok()?, cols.trim().parse().ok()?);
    ((1..=64).contains(&rows) && (1..=64).contains(&cols)).then_some((rows, cols))
}

/// An error at `op`: its location, name and the message.
pub fn op_error(op: &melior::ir::OperationRef, message: impl std::fmt::Display) -> PassError {
    use melior::ir::operation::OperationLike;
    PassError::Op {
        location: grim_dialects::diag::format_location(op.location()),
        op: op
            .name()
            .as_string_ref()
            .as_str()
            .unwrap_or("?")
            .to_string(),
        message: message.to_string(),
    }
}
