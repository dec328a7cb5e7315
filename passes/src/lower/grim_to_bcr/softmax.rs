//! `grim.softmax` to loops: the input viewed as `[outer, reduce, inner]`
//! (the dims before, in and after the span), per `(outer, inner)` three
//! walks over `reduce`: the maximum, the sum of `exp(x - max)` (carried in
//! a register), then each `exp(x - max) / sum` stored. Subtracting the
//! maximum keeps `exp` finite for any input, as ONNX's reference does.

use super::Lowering;
use crate::{builder::Builder, op_error, PassError};
use grim_dialects::grim;
use melior::ir::operation::OperationRef;

impl<'c> Lowering<'c, '_> {
    pub(super) fn softmax(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let (axis, end) =
            grim::softmax_span(&op).ok_or_else(|| op_error(&op, "needs 'axis' and 'axis_end'"))?;
        let input = self.operand(&op, 0)?;
        let shape = input.shape().to_vec();
        let (axis, end) = (axis as usize, (end as usize).min(shape.len()));
        let outer: i64 = shape[..axis].iter().product();
        let reduce: i64 = shape[axis..end].iter().product();
        let inner: i64 = shape[end..].iter().product();
        let view = [outer, reduce, inner];
        let x = self.read(b, &input, &view);
        let output = self.result(&op, &shape)?;
        let y = self.view(b, &output.reshaped(view.to_vec()));
        super::elementwise::loop_nest(b, &[outer, inner], &mut Vec::new(), &|b, ivs| {
            let (o, i) = (ivs[0], ivs[1]);
            let max = b.for_range(0, reduce, 1, &[b.f32(f64::NEG_INFINITY)], |b, r, m| {
                vec![b.maximumf(m[0], b.load(x, &[o, r, i]))]
            })[0];
            let sum = b.for_range(0, reduce, 1, &[b.f32(0.0)], |b, r, s| {
                let e = b.math("math.exp", b.subf(b.load(x, &[o, r, i]), max));
                vec![b.addf(s[0], e)]
            })[0];
            b.for_range(0, reduce, 1, &[], |b, r, _| {
                let e = b.math("math.exp", b.subf(b.load(x, &[o, r, i]), max));
                b.store(b.divf(e, sum), y, &[o, r, i]);
                vec![]
            });
        });
        self.define(&op, output)
    }
}
