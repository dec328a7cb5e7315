//! Graph-level passes: decisions about a model, taken on grim ops on
//! tensors, each replayable with `grim-opt` (docs/ARCHITECTURE.md, "The
//! graph level").
//!
//! * `graph-simplify` — egg equality saturation over each function
//!   (`egraph/`, rules in `rules/`), extracted by the cost model;
//! * `graph-apply-lr` — the LR file's per-layer choices onto the products;
//! * `graph-choose-kernel` — dense or BCR and the block, by the cost model;
//! * `graph-plan-memory` — liveness, in-place reuse and arena offsets;
//! * `graph-profile-layers` — per-layer timing calls for `grimc bench`.

pub mod apply_lr;
pub mod choose_kernel;
pub mod egraph;
pub mod layer;
pub mod plan_memory;
pub mod profile_layers;
pub mod rules;
pub mod simplify;

use crate::PassError;
use grim_dialects::abi;
use grim_model::cost::Target;
use melior::ir::Module;

/// The module's target (`grim.target`), which the cost model reads.
pub fn target(module: &Module) -> Result<Target, PassError> {
    let operation = module.as_operation();
    let text = grim_dialects::attr::string(&operation, abi::TARGET_ATTR).ok_or_else(|| {
        PassError::Unsupported(format!(
            "error: the module has no '{}' attribute naming its target (e.g. `module attributes {{{} = \"avx2\"}}`); grimc sets it, a hand-written file must state it",
            abi::TARGET_ATTR,
            abi::TARGET_ATTR
        ))
    })?;
    Target::parse(&text).map_err(|e| {
        PassError::Unsupported(format!(
            "error: module attribute '{}': {e}",
            abi::TARGET_ATTR
        ))
    })
}
