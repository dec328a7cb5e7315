//! The scratch each op's lowering needs while it runs, beyond its result:
//! one list, in the order the lowering takes the buffers, read by the
//! lowering and by graph-plan-memory alike (so the plan places exactly the
//! buffers the code uses).
//!
//! * a product whose weight is computed at run time: its row panels
//!   (`bcr.pack_panels_floats`), first;
//! * a gemm with `N > 1` rows: the `[K, N]` transposed input (not with
//!   `trans_a`, whose input is `[K, N]`) (unless a
//!   transpose before it cancels) and the `[M, N]` accumulator (unless a
//!   transpose after it takes the accumulator as its result);
//! * a conv on the BCR kernels that reads its image in place and pads: the
//!   zero-padded image `[C, H + pt + pb, W + pl + pr]`;
//! * a conv through an explicit patch matrix: `[C*kh*kw, Ho*Wo]`;
//! * a grouped conv: nothing (its direct kernel reads the image itself);
//! * a recurrent op: X transposed, one direction's input projections, the
//!   states, a step's gates, a GRU's `r * h` and the panels of run-time
//!   W and R (`recurrent::temporaries`).

use super::{cancel::Cancelled, key};
use crate::{graph::layer::Layer, op_error, PassError};
use grim_dialects::{
    bcr,
    grim::{self, Im2col},
};
use melior::ir::operation::{OperationLike, OperationRef};

/// Attribute of an op: the byte offset of its result in the arena (set by
/// graph-plan-memory; absent for a result in a caller's buffer).
pub const OFFSET_ATTR: &str = "grim.offset";
/// Attribute of an op with more than one result (`grim.recurrent`): the
/// byte offsets of results 1.. in the arena, -1 for one in a caller's
/// buffer (set by graph-plan-memory).
pub const RESULT_OFFSETS_ATTR: &str = "grim.result_offsets";
/// Attribute of an op: the byte offsets of its temporaries, in
/// [`temporaries`] order.
pub const TEMPORARIES_ATTR: &str = "grim.temporaries";
/// Function attribute: bytes of the arena the plan needs.
pub const ARENA_BYTES_ATTR: &str = "grim.arena_bytes";
/// Function attribute: bytes of every intermediate tensor, summed.
pub const ACTIVATIONS_BYTES_ATTR: &str = "grim.activations_bytes";
/// Function attribute: bytes of the largest intermediate tensor.
pub const LARGEST_ACTIVATION_BYTES_ATTR: &str = "grim.largest_activation_bytes";

/// The route a conv's image takes: its `im2col` attribute, else the one
/// graph-choose-kernel would give it.
pub fn conv_route(op: &OperationRef, layer: &Layer) -> Option<Im2col> {
    let bcr =
        grim_dialects::attr::string(op, grim::KERNEL_ATTR).as_deref() != Some(grim::KERNEL_DENSE);
    Im2col::of(op).or_else(|| layer.im2col(bcr))
}

/// The temporaries of `op`, as tensor shapes.
pub fn temporaries(op: &OperationRef, cancelled: &Cancelled) -> Result<Vec<Vec<i64>>, PassError> {
    let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
    // A product whose weight is computed at run time packs it first.
    let runtime_panels = |layer: &Layer| -> Vec<Vec<i64>> {
        match layer.weight {
            Some(_) => Vec::new(),
            None => vec![vec![bcr::pack_panels_floats(
                layer.m as i64,
                layer.k as i64,
            )]],
        }
    };
    if name == grim::GEMM {
        let product = grim::product(op).ok_or_else(|| op_error(op, "has malformed operands"))?;
        let layer = Layer::of(op)?;
        let result = op.result(0).map_err(|e| op_error(op, e))?;
        let (n, m, k) = (layer.n as i64, layer.m as i64, layer.k as i64);
        let mut shapes = runtime_panels(&layer);
        if n > 1 {
            // With trans_a the input already is [K, N].
            if !grim::gemm_attrs(op).trans_a && !cancelled.inputs.contains_key(&key(product.input))
            {
                shapes.push(vec![k, n]);
            }
            if !cancelled.results.contains_key(&key(result.into())) {
                shapes.push(vec![m, n]);
            }
        }
        return Ok(shapes);
    }
    if name == grim::RECURRENT {
        let (r, dims) = super::recurrent::describe(op)?;
        return Ok(super::recurrent::temporaries(&r, &dims));
    }
    if name == grim::CONV2D {
        let layer = Layer::of(op)?;
        // The direct kernel of a grouped conv needs no scratch.
        if layer.group > 1 {
            return Ok(Vec::new());
        }
        let geometry = layer.conv.ok_or_else(|| op_error(op, "has no geometry"))?;
        let bcr = grim_dialects::attr::string(op, grim::KERNEL_ATTR).as_deref()
            != Some(grim::KERNEL_DENSE)
            && layer.weight.is_some();
        let mut shapes = runtime_panels(&layer);
        shapes.extend(match conv_route(op, &layer) {
            Some(Im2col::Explicit) => vec![vec![layer.k as i64, layer.n as i64]],
            Some(Im2col::Implicit) if bcr && geometry.pads != [0; 4] => vec![vec![
                geometry.channels as i64,
                (geometry.input[0] + geometry.pads[0] + geometry.pads[2]) as i64,
                (geometry.input[1] + geometry.pads[1] + geometry.pads[3]) as i64,
            ]],
            _ => Vec::new(),
        });
        return Ok(shapes);
    }
    Ok(Vec::new())
}
