//! `grim.lrn` to loops: the input viewed as `[N, C, inner]`; per element
//! the squares of its channel window (clamped to `[0, C)`, bounds computed
//! per channel) summed in a register, then `x * (bias + alpha / size *
//! sum)^-beta` with `math.powf`. Scalar: LRN appears once or twice near the
//! input of AlexNet-era models.

use super::Lowering;
use crate::{builder::Builder, op_error, PassError};
use grim_dialects::grim;
use melior::ir::operation::OperationRef;

impl<'c> Lowering<'c, '_> {
    pub(super) fn lrn(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let attrs =
            grim::lrn_attrs(&op).ok_or_else(|| op_error(&op, "has malformed attributes"))?;
        let input = self.operand(&op, 0)?;
        let shape = input.shape().to_vec();
        let (n, c) = (shape[0], shape[1]);
        let inner: i64 = shape[2..].iter().product();
        let view = [n, c, inner];
        let x = self.read(b, &input, &view);
        let output = self.result(&op, &shape)?;
        let y = self.view(b, &output.reshaped(view.to_vec()));
        let (before, after) = ((attrs.size - 1) / 2, attrs.size / 2);
        super::elementwise::loop_nest(b, &view, &mut Vec::new(), &|b, ivs| {
            let (image, channel, i) = (ivs[0], ivs[1], ivs[2]);
            // [max(c - before, 0), min(c + after + 1, C))
            let lo = b.select(
                b.cmpi(
                    melior::dialect::arith::CmpiPredicate::Slt,
                    channel,
                    b.index(before),
                ),
                b.index(0),
                b.subi(channel, b.index(before)),
            );
            let hi = b.minui(b.addi(channel, b.index(after + 1)), b.index(c));
            let sum = b.for_loop(lo, hi, b.index(1), &[b.f32(0.0)], |b, k, carried| {
                let v = b.load(x, &[image, k, i]);
                vec![b.fma(v, v, carried[0])]
            })[0];
            let scaled = b.fma(
                b.f32((attrs.alpha / attrs.size as f32) as f64),
                sum,
                b.f32(attrs.bias as f64),
            );
            let power = b.op(
                "math.powf",
                &[scaled, b.f32(-attrs.beta as f64)],
                &[b.f32_type()],
                &[],
            )[0];
            let value = b.mulf(b.load(x, ivs), power);
            b.store(value, y, ivs);
        });
        self.define(&op, output)
    }
}
