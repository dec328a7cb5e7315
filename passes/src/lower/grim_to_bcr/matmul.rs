//! `grim.matmul` (numpy matmul of any ranks) to a loop nest: per element of
//! the batch-broadcast `[..., N, M]` result, a dot product over K with the
//! sum carried in a register. Operands are read through their promoted
//! shapes (a 1-D left operand as `[1, K]`, a 1-D right one as `[K, 1]`)
//! and the result through the full shape, which has the ONNX result's
//! elements in the same order, so no data moves.
//!
//! Scalar code: the matmuls that reach here multiply activations (batched
//! attention-like products, a 1-D vector); products with a 2-D matrix are
//! gemms, which run the BCR or dense kernels.

use super::Lowering;
use crate::{builder::Builder, op_error, PassError};
use grim_dialects::grim;
use melior::ir::{operation::OperationRef, ValueLike};

impl<'c> Lowering<'c, '_> {
    pub(super) fn matmul(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let (lhs, rhs) = (self.operand(&op, 0)?, self.operand(&op, 1)?);
        let shape = grim::matmul_shape(lhs.shape(), rhs.shape()).map_err(|e| op_error(&op, e))?;
        let dims = |s: &[usize]| s.iter().map(|&d| d as i64).collect::<Vec<i64>>();
        let (a_shape, b_shape, full) = (dims(&shape.a), dims(&shape.b), dims(&shape.full));
        let x = self.read(b, &lhs, &a_shape);
        let w = self.read(b, &rhs, &b_shape);
        let result = op.result(0).map_err(|e| op_error(&op, e))?;
        let out_shape = grim_dialects::shape::static_shape(result.r#type())
            .ok_or_else(|| op_error(&op, "needs a static result shape"))?;
        let output = self.result(&op, &out_shape)?;
        let y = self.view(b, &output.reshaped(full.clone()));
        let rank = full.len();
        let k = shape.k as i64;
        // An operand's batch dims align to the right of the result's; a
        // dim of 1 broadcasts (index 0).
        let batch = |b: &Builder<'c>, ivs: &[melior::ir::Value<'c, 'c>], of: &[i64]| {
            let skip = rank - of.len();
            let zero = b.index(0);
            (0..of.len() - 2)
                .map(|d| if of[d] == 1 { zero } else { ivs[skip + d] })
                .collect::<Vec<_>>()
        };
        super::elementwise::loop_nest(b, &full, &mut Vec::new(), &|b, ivs| {
            let (i, j) = (ivs[rank - 2], ivs[rank - 1]);
            let (a_batch, b_batch) = (batch(b, ivs, &a_shape), batch(b, ivs, &b_shape));
            let sum = b.for_range(0, k, 1, &[b.f32(0.0)], |b, kk, carried| {
                let mut at = a_batch.clone();
                at.extend([i, kk]);
                let mut bt = b_batch.clone();
                bt.extend([kk, j]);
                let (u, v) = (b.load(x, &at), b.load(w, &bt));
                vec![b.fma(u, v, carried[0])]
            });
            b.store(sum[0], y, ivs);
        });
        self.define(&op, output)
    }
}
