//! graph-simplify: rewrite each grim function by equality saturation (egg) over batch-norm folding, epilogue fusion, Gemm canonicalisation and layout rules, extracted by the cost model.
//!
//! Each `func.func` with grim ops becomes one e-graph (`egraph/convert.rs`);
//! the rules of `rules/` (one file per family, each rule with a law name)
//! saturate it within fixed limits; extraction picks, for every value the
//! function returns, the form with the lowest estimated run time on the
//! module's `grim.target` (`egraph/cost.rs`, from `grim_model::cost`); the
//! body is rebuilt from that form (`egraph/rebuild.rs`), evaluating the
//! constant expressions the rules made (folded batch norms, transposed and
//! scaled Gemm weights) into new `grim.constant`s.
//!
//! What it does: batch norms after convs and canonical gemms disappear into
//! the weights and bias; activations, residual adds and per-channel bias
//! adds after a product become its epilogue (a product shared with another
//! user is not fused, so nothing runs twice); ONNX Gemm's `transB`,
//! `alpha`, `beta`, `transA` and broadcast C become the canonical gemm
//! lowering wants (MatMul + Add is a gemm with a bias); transposes and
//! reshapes cancel; identities (and inference Dropout) go.
//!
//! What it does not do: choose kernels or block sizes (graph-choose-kernel
//! does), reorder commutative operands in general, or fold batch norms
//! through an activation or a residual (they would have to scale through
//! them). Ops the language does not model pass through unchanged.
//!
//! GRIM (Niu et al., TPAMI 2022) fuses at the graph level before choosing
//! per-layer formats; this is that step.
//!
//! Before: `%c = grim.conv2d(%x, %w)`, `%b = grim.batch_norm(%c, ...)`,
//! `%r = grim.relu(%b)`.
//! After: `%r = grim.conv2d(%x, %w', %b') {activation = "relu"}` with
//! `%w'`, `%b'` new constants.

use super::{
    egraph::{convert, cost::GraphCost, rebuild},
    rules,
};
use crate::{Pass, PassError, PassOptions};
use melior::{
    ir::{
        block::BlockLike,
        operation::{OperationLike, OperationRef},
        BlockRef, Module, RegionLike,
    },
    Context,
};
use std::time::Duration;

/// Pipeline flag.
pub const FLAG: &str = "graph-simplify";
/// One-line summary.
pub const SUMMARY: &str = "rewrite each grim function by equality saturation (egg) over batch-norm folding, epilogue fusion, Gemm canonicalisation and layout rules, extracted by the cost model";
/// Accepted options.
pub const OPTIONS: &[&str] = &["iterations=N saturation iterations at most (30)"];

/// Nodes an e-graph may grow to before saturation stops (a ResNet-50 has
/// about 200 ops; the rules add a few nodes per op).
const NODE_LIMIT: usize = 200_000;
/// Wall time saturation may take per function.
const TIME_LIMIT: Duration = Duration::from_secs(20);

/// The pass object.
pub struct GraphSimplify {
    iterations: usize,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    let iterations = options.int(FLAG, "iterations", 30)?;
    if !(1..=1000).contains(&iterations) {
        return Err(PassError::Option {
            pass: FLAG.into(),
            message: format!("iterations must be in 1..=1000, got {iterations}"),
        });
    }
    Ok(Box::new(GraphSimplify {
        iterations: iterations as usize,
    }))
}

impl Pass for GraphSimplify {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let functions: Vec<_> = crate::lower::grim_to_bcr::top_level_ops(module)
            .into_iter()
            .filter(|op| {
                op.name().as_string_ref().as_str() == Ok("func.func")
                    && crate::is_model_function(op)
            })
            .map(|op| op.to_raw())
            .collect();
        if functions.is_empty() {
            return Ok(());
        }
        let target = super::target(module)?;
        let rules = rules::all();
        for raw in functions {
            // SAFETY: collected from the module above; functions are rewritten in place.
            let function = unsafe { OperationRef::from_raw(raw) };
            let Some(body) = function.region(0).ok().and_then(|r| r.first_block()) else {
                continue;
            };
            // SAFETY: the body lives as long as the module.
            let body: BlockRef<'c, 'c> = unsafe { BlockRef::from_raw(body.to_raw()) };
            let mut converted = convert::convert(body)?;
            let runner = egg::Runner::default()
                .with_egraph(std::mem::take(&mut converted.egraph))
                .with_iter_limit(self.iterations)
                .with_node_limit(NODE_LIMIT)
                .with_time_limit(TIME_LIMIT)
                .run(&rules);
            let cost = GraphCost {
                egraph: &runner.egraph,
                target: &target,
            };
            rebuild::rebuild(context, body, &converted, &runner.egraph, cost)?;
        }
        Ok(())
    }
}
