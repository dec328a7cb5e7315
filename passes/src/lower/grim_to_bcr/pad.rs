//! `grim.pad` to a loop nest over the output: each element reads the input
//! at its source index per dim (constant: the value outside the input;
//! edge: the index clamped; reflect: mirrored about the first and last
//! element; wrap: modulo the dim). Scalar code: in the CNNs grim compiles,
//! a Pad feeds a conv or pool whose own zero padding could absorb it, and
//! it moves each element once.

use super::Lowering;
use crate::{
    builder::{Builder, V},
    op_error, PassError,
};
use grim_dialects::grim;
use grim_model::pad::PadMode;
use melior::{
    dialect::arith::CmpiPredicate,
    ir::{operation::OperationRef, ValueLike},
};

impl<'c> Lowering<'c, '_> {
    pub(super) fn pad(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let attrs =
            grim::pad_attrs(&op).ok_or_else(|| op_error(&op, "has malformed attributes"))?;
        let input = self.operand(&op, 0)?;
        let shape = input.shape().to_vec();
        let rank = shape.len();
        if attrs.pads.len() != 2 * rank {
            return Err(op_error(
                &op,
                format!("has pads {:?} for rank {rank}", attrs.pads),
            ));
        }
        let x = self.read(b, &input, &shape);
        let result = op.result(0).map_err(|e| op_error(&op, e))?;
        let out_shape = grim_dialects::shape::static_shape(result.r#type())
            .ok_or_else(|| op_error(&op, "needs a static result shape"))?;
        let output = self.result(&op, &out_shape)?;
        let y = self.view(b, &output);
        super::elementwise::loop_nest(b, &out_shape, &mut Vec::new(), &|b, ivs| {
            // Per dim the position in the unpadded input (may be outside).
            let positions: Vec<V<'c>> = (0..rank)
                .map(|d| b.subi(ivs[d], b.index(attrs.pads[d])))
                .collect();
            let (zero, slt, sge) = (b.index(0), CmpiPredicate::Slt, CmpiPredicate::Sge);
            match attrs.mode {
                PadMode::Constant => {
                    let mut inside: Option<V<'c>> = None;
                    for (d, &p) in positions.iter().enumerate() {
                        let here = b.andi(b.cmpi(sge, p, zero), b.cmpi(slt, p, b.index(shape[d])));
                        inside = Some(match inside {
                            Some(all) => b.andi(all, here),
                            None => here,
                        });
                    }
                    let value = match inside {
                        Some(inside) => b.if_else(
                            inside,
                            &[b.f32_type()],
                            |b| vec![b.load(x, &positions)],
                            |b| vec![b.f32(attrs.value as f64)],
                        )[0],
                        None => b.load(x, &positions),
                    };
                    b.store(value, y, ivs);
                }
                mode => {
                    let at: Vec<V<'c>> = positions
                        .iter()
                        .enumerate()
                        .map(|(d, &p)| {
                            let last = b.index(shape[d] - 1);
                            match mode {
                                PadMode::Edge => b.minsi(b.maxsi(p, zero), last),
                                PadMode::Reflect => {
                                    // |p|, then 2(n-1) - |p| past the end.
                                    let negated = b.subi(zero, p);
                                    let mirrored = b.maxsi(p, negated);
                                    let back = b.subi(b.addi(last, last), mirrored);
                                    b.minsi(mirrored, back)
                                }
                                _ => {
                                    let n = b.index(shape[d]);
                                    b.remsi(b.addi(b.remsi(p, n), n), n)
                                }
                            }
                        })
                        .collect();
                    let value = b.load(x, &at);
                    b.store(value, y, ivs);
                }
            }
        });
        self.define(&op, output)
    }
}
