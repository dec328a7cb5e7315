//! `grim.concat` to copies: the result viewed as `[outer, lhs + rhs,
//! inner]` (the dims before, at and after the axis), each operand viewed as
//! `[outer, its size, inner]` and copied into its rows, the innermost loop
//! over contiguous `inner`. A constant operand is read from the blob.
//!
//! An operand graph-plan-memory placed in its slice of the result (its
//! producer wrote it there) is not copied: a concat of such operands
//! lowers to nothing.

use super::{values::Tensor, Lowering};
use crate::{builder::Builder, op_error, PassError};
use grim_dialects::grim;
use melior::ir::{operation::OperationRef, ValueLike};

impl<'c> Lowering<'c, '_> {
    pub(super) fn concat(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let axis = grim::concat_axis(&op).ok_or_else(|| op_error(&op, "needs 'axis'"))? as usize;
        let result = op.result(0).map_err(|e| op_error(&op, e))?;
        let out_shape = grim_dialects::shape::static_shape(result.r#type())
            .ok_or_else(|| op_error(&op, "needs a static result shape"))?;
        let outer: i64 = out_shape[..axis].iter().product();
        let inner: i64 = out_shape[axis + 1..].iter().product();
        let output = self.result(&op, &out_shape)?;
        let y = self.view(b, &output.reshaped(vec![outer, out_shape[axis], inner]));
        let mut offset = 0;
        for index in 0..2 {
            let part: Tensor<'c> = self.operand(&op, index)?;
            let size = part.shape()[axis];
            if in_its_slice(&part, &output, outer, 4 * offset * inner) {
                offset += size;
                continue;
            }
            let x = self.read(b, &part, &[outer, size, inner]);
            super::elementwise::loop_nest(b, &[outer, size, inner], &mut Vec::new(), &|b, ivs| {
                let value = b.load(x, ivs);
                let row = b.addi(ivs[1], b.index(offset));
                b.store(value, y, &[ivs[0], row, ivs[2]]);
            });
            offset += size;
        }
        self.define(&op, output)
    }
}

/// Whether `part` already sits in the result `output` at `offset_bytes`:
/// both in the arena, the result one run per operand (`outer` 1).
fn in_its_slice(part: &Tensor, output: &Tensor, outer: i64, offset_bytes: i64) -> bool {
    match (part, output) {
        (Tensor::Buffer { offset: p, .. }, Tensor::Buffer { offset: o, .. }) => {
            outer == 1 && *p == o + offset_bytes
        }
        _ => false,
    }
}
