//! `grim.pool` to loops: per output element, its window walked with the
//! positions outside the input skipped (max) or not counted (average,
//! unless `count_include_pad`), as ONNX's reference defines pooling.
//!
//! A max pool with the module's `grim.target` vectors and a column stride
//! of 1 or 2 runs the interior of each output row (the columns whose
//! window is inside the input row) `lanes` columns at a time, as the
//! depthwise conv does (`Columns`, `load_columns` in grouped_conv.rs): per
//! window tap one vector load (stride 2: two and a shuffle) and a vector
//! maximum. Measured on ResNet-18 at 224x224 (AVX2), the scalar stem max
//! pool took 1.85 ms, 6% of the pruned model. Everything else, and every
//! average pool, is scalar.

use super::Lowering;
use crate::{
    builder::{Builder, V},
    op_error, PassError,
};
use grim_dialects::grim::{self, PoolKind};
use melior::{
    dialect::arith::CmpiPredicate,
    ir::{operation::OperationRef, ValueLike},
};

impl<'c> Lowering<'c, '_> {
    pub(super) fn pool(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let attrs =
            grim::pool_attrs(&op).ok_or_else(|| op_error(&op, "has malformed attributes"))?;
        let input = self.operand(&op, 0)?;
        let shape = input.shape().to_vec();
        let &[_, _, h, w] = &shape[..] else {
            return Err(op_error(&op, format!("needs an NCHW input, got {shape:?}")));
        };
        let x = self.read(b, &input, &shape);
        let result = op.result(0).map_err(|e| op_error(&op, e))?;
        let out_shape = grim_dialects::shape::static_shape(result.r#type())
            .ok_or_else(|| op_error(&op, "needs a static result shape"))?;
        let output = self.result(&op, &out_shape)?;
        let y = self.view(b, &output);
        let identity = match attrs.kind {
            PoolKind::Max => f64::NEG_INFINITY,
            PoolKind::Average => 0.0,
        };
        let scalar = |b: &Builder<'c>, ivs: &[V<'c>]| {
            let (image, channel, oh, ow) = (ivs[0], ivs[1], ivs[2], ivs[3]);
            // The window's first row and column in input coordinates (may be negative).
            let start = |o: V<'c>, axis: usize| {
                let at = b.muli(o, b.index(attrs.strides[axis]));
                b.subi(at, b.index(attrs.pads[axis]))
            };
            let (r0, s0) = (start(oh, 0), start(ow, 1));
            let inits = [b.f32(identity), b.f32(0.0)];
            let row_sums = b.for_range(0, attrs.kernel[0], 1, &inits, |b, i, carried| {
                let r = b.addi(r0, b.muli(i, b.index(attrs.dilations[0])));
                b.for_range(0, attrs.kernel[1], 1, carried, |b, j, carried| {
                    let s = b.addi(s0, b.muli(j, b.index(attrs.dilations[1])));
                    let (zero, lt, ge) = (b.index(0), CmpiPredicate::Slt, CmpiPredicate::Sge);
                    let within = |v: V<'c>, limit: i64| {
                        b.andi(b.cmpi(ge, v, zero), b.cmpi(lt, v, b.index(limit)))
                    };
                    let inside = b.andi(within(r, h), within(s, w));
                    let value = b.if_else(
                        inside,
                        &[b.f32_type()],
                        |b| vec![b.load(x, &[image, channel, r, s])],
                        |b| vec![b.f32(identity)],
                    )[0];
                    let acc = match attrs.kind {
                        PoolKind::Max => b.maximumf(carried[0], value),
                        PoolKind::Average => b.addf(carried[0], value),
                    };
                    // Padding counts inside the padded extent only (a ceiled
                    // window may reach past it).
                    let counted = if attrs.count_include_pad {
                        let r_end = b.cmpi(lt, r, b.index(h + attrs.pads[2]));
                        let s_end = b.cmpi(lt, s, b.index(w + attrs.pads[3]));
                        b.andi(r_end, s_end)
                    } else {
                        inside
                    };
                    let one = b.select(counted, b.f32(1.0), b.f32(0.0));
                    vec![acc, b.addf(carried[1], one)]
                })
            });
            let value = match attrs.kind {
                PoolKind::Max => row_sums[0],
                PoolKind::Average => b.divf(row_sums[0], row_sums[1]),
            };
            b.store(value, y, ivs);
        };
        let lanes = Some(self.lanes).filter(|&l| l > 1 && attrs.kind == PoolKind::Max);
        let [_, _, _, wo] = out_shape[..] else {
            return Err(op_error(&op, "needs an NCHW result"));
        };
        let columns = super::grouped_conv::Columns::of(
            w,
            wo,
            attrs.kernel[1],
            attrs.strides[1],
            attrs.pads[1],
            attrs.dilations[1],
            lanes,
        );
        match lanes {
            Some(lanes) if columns.vector_end > columns.first_inside => {
                let (first, end) = (columns.first_inside, columns.vector_end);
                super::elementwise::loop_nest(b, &out_shape[..3], &mut Vec::new(), &|b, ivs| {
                    let (image, channel, oh) = (ivs[0], ivs[1], ivs[2]);
                    let scalar_columns = |b: &Builder<'c>, from: i64, to: i64| {
                        if from < to {
                            b.for_range(from, to, 1, &[], |b, ow, _| {
                                scalar(b, &[image, channel, oh, ow]);
                                vec![]
                            });
                        }
                    };
                    scalar_columns(b, 0, first);
                    let l = lanes as u64;
                    b.for_range(first, end, lanes, &[], |b, ow, _| {
                        let r0 = b.subi(
                            b.muli(oh, b.index(attrs.strides[0])),
                            b.index(attrs.pads[0]),
                        );
                        let s0 = b.subi(
                            b.muli(ow, b.index(attrs.strides[1])),
                            b.index(attrs.pads[1]),
                        );
                        let init = b.broadcast(b.f32(f64::NEG_INFINITY), l);
                        let max = b.for_range(0, attrs.kernel[0], 1, &[init], |b, i, carried| {
                            let r = b.addi(r0, b.muli(i, b.index(attrs.dilations[0])));
                            let (zero, lt, ge) =
                                (b.index(0), CmpiPredicate::Slt, CmpiPredicate::Sge);
                            let inside = b.andi(b.cmpi(ge, r, zero), b.cmpi(lt, r, b.index(h)));
                            b.if_else(
                                inside,
                                &[b.vector_type(l)],
                                |b| {
                                    b.for_range(0, attrs.kernel[1], 1, carried, |b, j, carried| {
                                        let s = b.addi(s0, b.muli(j, b.index(attrs.dilations[1])));
                                        let v = super::grouped_conv::load_columns(
                                            b,
                                            x,
                                            [image, channel, r, s],
                                            attrs.strides[1],
                                            lanes,
                                        );
                                        vec![b.maximumf(carried[0], v)]
                                    })
                                },
                                |_| carried.to_vec(),
                            )
                        });
                        b.vstore(max[0], y, &[image, channel, oh, ow]);
                        vec![]
                    });
                    scalar_columns(b, end, wo);
                });
            }
            _ => super::elementwise::loop_nest(b, &out_shape, &mut Vec::new(), &scalar),
        }
        self.define(&op, output)
    }
}
