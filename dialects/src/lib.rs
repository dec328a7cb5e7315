//! The `grim` and `bcr` MLIR dialects.
//!
//! Both dialects are declared once, in IRDL (`dialects/irdl/*.irdl.mlir`), and
//! loaded into every context that [`create_context`] makes, so MLIR itself
//! verifies their structure (operand and result kinds, required attributes).
//! This crate adds what IRDL cannot say: typed builders and accessors
//! ([`grim`], [`bcr`]) so that no other crate builds these ops from strings,
//! and semantic verifiers (shapes, block sizes) that report through the same
//! `file:line:col: error:` channel as MLIR's own verifier ([`diag`]).
#![deny(missing_docs)]

pub mod abi;
pub mod attr;
pub mod bcr;
pub mod diag;
pub mod grim;
pub mod schedule;
pub mod shape;
pub mod weights;

use melior::{
    dialect::DialectRegistry,
    ir::{Location, Module},
    utility::{load_irdl_dialects, register_all_dialects, register_all_llvm_translations},
    Context,
};

/// IRDL text of the `grim` dialect.
pub const GRIM_IRDL: &str = include_str!("../irdl/grim.irdl.mlir");
/// IRDL text of the `bcr` dialect.
pub const BCR_IRDL: &str = include_str!("../irdl/bcr.irdl.mlir");

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum DialectError {
    /// The IRDL declaration of a dialect did not parse or load.
    #[error("failed to load the IRDL declaration of the `{0}` dialect")]
    Irdl(&'static str),
    /// A module did not parse; the diagnostics say where.
    #[error("{0}")]
    Parse(String),
    /// A module did not verify; the diagnostics say where.
    #[error("{0}")]
    Verify(String),
}

/// Creates an MLIR context with every upstream dialect, pass and LLVM
/// translation registered, and the `grim` and `bcr` dialects loaded from IRDL.
pub fn create_context() -> Result<Context, DialectError> {
    melior::utility::register_all_passes();
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new();
    context.append_dialect_registry(&registry);
    context.load_all_available_dialects();
    register_all_llvm_translations(&context);
    load_dialect(&context, "grim", GRIM_IRDL)?;
    load_dialect(&context, "bcr", BCR_IRDL)?;
    Ok(context)
}

fn load_dialect(context: &Context, name: &'static str, irdl: &str) -> Result<(), DialectError> {
    let module = Module::parse(context, irdl).ok_or(DialectError::Irdl(name))?;
    if !load_irdl_dialects(&module) {
        return Err(DialectError::Irdl(name));
    }
    Ok(())
}

/// A location `file:line:col` for ops built by the compiler itself.
pub fn file_location<'c>(
    context: &'c Context,
    file: &str,
    line: usize,
    column: usize,
) -> Location<'c> {
    Location::new(context, file, line, column)
}

/// Runs the semantic verifiers of both dialects over every op of `module`,
/// emitting one diagnostic per failing op at its location; returns how many
/// ops failed. Run it after MLIR's structural verification.
pub fn verify_semantics(module: &Module) -> usize {
    use melior::ir::operation::{OperationLike, WalkOrder, WalkResult};
    let mut failures = 0;
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        let result = grim::verify(&op).and_then(|_| bcr::verify(&op));
        if let Err(message) = result {
            let name = op
                .name()
                .as_string_ref()
                .as_str()
                .unwrap_or("?")
                .to_string();
            diag::emit_error(op.location(), &format!("'{name}' op {message}"));
            failures += 1;
        }
        WalkResult::Advance
    });
    failures
}

/// Verifies `module` structurally (MLIR, including IRDL) and semantically
/// (ours); on failure returns every diagnostic, formatted.
pub fn verify_module(context: &Context, module: &Module) -> Result<(), DialectError> {
    use melior::ir::operation::OperationLike;
    let capture = diag::Capture::new(context);
    let structural = module.as_operation().verify();
    let semantic = if structural {
        verify_semantics(module)
    } else {
        0
    };
    if structural && semantic == 0 {
        Ok(())
    } else {
        let mut messages = capture.take();
        if messages.is_empty() {
            messages.push("error: module failed to verify".into());
        }
        Err(DialectError::Verify(messages.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use melior::ir::operation::OperationLike;

    #[test]
    fn irdl_dialects_load_and_verify_structure() {
        let context = create_context().expect("context");
        let good = r#"
func.func @f(%x: tensor<1x16xf32>) -> tensor<1x32xf32> {
  %w = "grim.constant"() {name = "fc1.weight", value = dense<0.5> : tensor<32x16xf32>} : () -> tensor<32x16xf32>
  %y = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x16xf32>, tensor<32x16xf32>) -> tensor<1x32xf32>
  return %y : tensor<1x32xf32>
}"#;
        let module = Module::parse(&context, good).expect("parses");
        assert!(module.as_operation().verify());
        // A memref where IRDL wants a tensor must be rejected by MLIR itself.
        let bad = r#"
func.func @f(%x: memref<1x16xf32>) {
  %r = "grim.relu"(%x) : (memref<1x16xf32>) -> tensor<1x16xf32>
  return
}"#;
        let diags = diag::Capture::new(&context);
        let verified = Module::parse(&context, bad).map(|m| m.as_operation().verify());
        assert_ne!(verified, Some(true));
        let text = diags.take().join("\n");
        assert!(text.contains("builtin.tensor"), "{text}");
    }
}
