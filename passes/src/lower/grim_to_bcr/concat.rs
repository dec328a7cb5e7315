//! `grim.concat` to copies: the result viewed as `[outer, lhs + rhs,
//! inner]` (the dims before, at and after the axis), each operand viewed as
//! `[outer, its size, inner]` and copied into its rows, the innermost loop
//! over contiguous `inner`. A constant operand is read from the blob.
//!
//! What it does not do: place the producers in the result's slices so no
//! copy is needed (the memory plan would have to give a value an offset
//! inside another's buffer).

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
