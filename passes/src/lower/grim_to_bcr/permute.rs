//! `grim.permute` (ONNX Transpose of any rank) to a loop nest over the
//! output, each element read at the permuted index of the input. Scalar
//! code: permutations of more than two dims come from exporters' layout
//! shuffles (channel shuffle, NCHW/NHWC at a model's edge), not from the
//! hot loops; the 2-D swap is `grim.transpose`, lowered in register tiles.

use super::Lowering;
use crate::{builder::Builder, op_error, PassError};
use grim_dialects::grim;
use melior::ir::{operation::OperationRef, ValueLike};

impl<'c> Lowering<'c, '_> {
    pub(super) fn permute(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let perm = grim::permutation(&op).ok_or_else(|| op_error(&op, "needs 'perm'"))?;
        let input = self.operand(&op, 0)?;
        let shape = input.shape().to_vec();
        let x = self.read(b, &input, &shape);
        let result = op.result(0).map_err(|e| op_error(&op, e))?;
        let out_shape = grim_dialects::shape::static_shape(result.r#type())
            .ok_or_else(|| op_error(&op, "needs a static result shape"))?;
        let output = self.result(&op, &out_shape)?;
        let y = self.view(b, &output);
        // Input dim perm[d] is output dim d.
        let mut from = vec![0usize; perm.len()];
        for (d, &p) in perm.iter().enumerate() {
            let p = usize::try_from(p)
                .ok()
                .filter(|p| *p < from.len())
                .ok_or_else(|| op_error(&op, format!("has a bad perm {perm:?}")))?;
            from[p] = d;
        }
        super::elementwise::loop_nest(b, &out_shape, &mut Vec::new(), &|b, ivs| {
            let at: Vec<_> = from.iter().map(|&d| ivs[d]).collect();
            let value = b.load(x, &at);
            b.store(value, y, ivs);
        });
        self.define(&op, output)
    }
}
