//! graph-profile-layers: mark every computing op as a profiled layer, named by its ONNX node, for `grimc bench --per-layer`.
//!
//! Each op that computes (a product, an elementwise op, a transpose) gets
//! `grim.profile_id = i`, and its function `grim.layers = [...]`, the
//! layers' names by id (the op's name location, the ONNX node name, else
//! `<op>#<index>`). lower-grim-to-bcr then brackets each marked op's code
//! with `grim_profile_begin(ctx, i)` / `grim_profile_end(ctx, i)`, runtime
//! calls that accumulate wall time per id; a marked op that emits no code
//! (a transpose a gemm absorbs) is dropped from the list there.
//!
//! What it does not do: time anything itself, or change what runs. Run it
//! last at the graph level, after fusion, so a layer is what runs.
//!
//! Before: `%r = grim.conv2d(...) loc("conv1")`.
//! After:  `%r = grim.conv2d(...) {grim.profile_id = 0 : i64}`, function `grim.layers = ["conv1"]`.

use crate::{lower::grim_to_bcr, Pass, PassError, PassOptions};
use grim_dialects::abi;
use melior::{
    ir::{
        attribute::{ArrayAttribute, StringAttribute},
        block::BlockLike,
        operation::{OperationLike, OperationMutLike, OperationRefMut},
        Attribute, Module, RegionLike,
    },
    Context,
};

/// Pipeline flag.
pub const FLAG: &str = "graph-profile-layers";
/// One-line summary.
pub const SUMMARY: &str = "mark every computing op as a profiled layer, named by its ONNX node, for `grimc bench --per-layer`";
/// Accepted options.
pub const OPTIONS: &[&str] = &[];
/// Attribute of a profiled op: its layer id.
pub const PROFILE_ID_ATTR: &str = grim_dialects::grim::PROFILE_ID_ATTR;

/// The pass object.
pub struct GraphProfileLayers;

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    Ok(Box::new(GraphProfileLayers))
}

impl Pass for GraphProfileLayers {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        for function in grim_to_bcr::top_level_ops(module) {
            if function.name().as_string_ref().as_str() != Ok("func.func") {
                continue;
            }
            let Some(body) = function.region(0).ok().and_then(|r| r.first_block()) else {
                continue;
            };
            let mut names: Vec<Attribute> = Vec::new();
            let mut next = body.first_operation();
            while let Some(op) = next {
                next = op.next_in_block();
                let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
                if !grim_dialects::grim::computes(&name) {
                    continue;
                }
                let id = names.len();
                let layer = grim_to_bcr::layer_name(&op, &name, id);
                names.push(StringAttribute::new(context, &layer).into());
                // SAFETY: the op is alive; only an attribute is added.
                let mut op = unsafe { OperationRefMut::from_raw(op.to_raw()) };
                grim_dialects::bcr::set_int(&mut op, context, PROFILE_ID_ATTR, id as i64);
            }
            // SAFETY: the function is alive; only an attribute is added.
            let mut function = unsafe { OperationRefMut::from_raw(function.to_raw()) };
            function.set_attribute(
                abi::LAYERS_ATTR,
                ArrayAttribute::new(context, &names).into(),
            );
        }
        Ok(())
    }
}
