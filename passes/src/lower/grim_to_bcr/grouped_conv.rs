//! A grouped `grim.conv2d` (`group` > 1; depthwise when every group has one
//! input channel) as a direct convolution: per output element, the taps of
//! its group's input channels summed in a register, starting from the bias
//! and residual, the activation applied as it is stored.
//!
//! Why not the GEMM view: a group's matrix has `M / group` rows and
//! `C / group * kh * kw` columns (1 x 9 for a 3x3 depthwise conv), far too
//! small for BCR blocks or the dense kernel's register tile, and the patch
//! matrix would cost more memory traffic than the taps themselves.
//!
//! The output width is split into a left border, an interior and a right
//! border by the padding: interior columns read every tap without a bounds
//! check, the borders check each column. Rows are checked once per kernel
//! row. With the module's `grim.target` vectors and a column stride of 1 or
//! 2 (every depthwise conv of MobileNet-V2 and its kin), the interior runs
//! `lanes` output columns at a time in one vector register: per tap, one
//! vector load of the input row (stride 2: two loads and a shuffle keeping
//! the even lanes) and one fma with the broadcast weight, then the
//! activation and one vector store. LLVM does not vectorise the scalar form
//! itself: the column loop is not innermost (the taps are), and measured
//! on MobileNet-V2 at 224x224 the depthwise convs were over half its time.
//! What is left of the interior, and the borders, stay scalar.

use super::{values::Tensor, Lowering};
use crate::{
    builder::{Builder, V},
    op_error, PassError,
};
use grim_dialects::grim::{self, Activation, ConvAttrs};
use melior::{dialect::arith::CmpiPredicate, ir::operation::OperationRef};

impl<'c> Lowering<'c, '_> {
    pub(super) fn grouped_conv(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
        attrs: &ConvAttrs,
    ) -> Result<(), PassError> {
        let operands = grim::product(&op)
            .ok_or_else(|| op_error(&op, "needs (input, weight, bias?, residual?)"))?;
        let input = self.buffer(&op, 0)?;
        let weight = self.value(&op, operands.weight, 1)?;
        let (&[images, _, h, w], &[m, per_group, kh, kw]) = (input.shape(), weight.shape()) else {
            return Err(op_error(&op, "needs a 4-D input and weight"));
        };
        let group = attrs.group;
        let outputs_per_group = m / group;
        let (ho, wo) = attrs
            .output(h, w, kh, kw)
            .ok_or_else(|| op_error(&op, "has a kernel that does not fit its input"))?;
        let lanes = Some(self.lanes).filter(|&l| l > 1);
        let x = self.view(b, &input);
        let wt = self.read(b, &weight, &[m, per_group, kh, kw]);
        let bias = match operands.bias {
            Some(bias) => {
                let bias = self.value(&op, bias, 2)?;
                Some(self.read(b, &bias, &[m]))
            }
            None => None,
        };
        let residual = match operands.residual {
            Some(residual) => {
                let index = 2 + usize::from(operands.bias.is_some());
                let residual: Tensor<'c> = self.buffer_value(&op, residual, index)?;
                Some(self.read(b, &residual, &[images, m, ho, wo]))
            }
            None => None,
        };
        let activation = Activation::of_epilogue(&op).map_err(|e| op_error(&op, e))?;
        let output = self.result(&op, &[images, m, ho, wo])?;
        let y = self.view(b, &output);
        let [sh, sw] = attrs.strides;
        let [pt, pl, _, _] = attrs.pads;
        let [dh, dw] = attrs.dilations;
        let Columns {
            first_inside,
            last_inside,
            vector_end,
        } = Columns::of(w, wo, kw, sw, pl, dw, lanes);
        let parallel = [(
            crate::bcr::parallelize::PARALLEL_ATTR,
            melior::ir::Attribute::unit(b.context),
        )];
        b.for_range(0, images, 1, &[], |b, image, _| {
            let (c0, c1) = (b.index(0), b.index(1));
            b.for_loop_with(c0, b.index(m), c1, &[], &parallel, |b, channel, _| {
                let first_channel = b.muli(
                    b.divui(channel, b.index(outputs_per_group)),
                    b.index(per_group),
                );
                let start = match bias {
                    Some(bias) => b.load(bias, &[channel]),
                    None => b.f32(0.0),
                };
                b.for_range(0, ho, 1, &[], |b, oh, _| {
                    let row0 = b.subi(b.muli(oh, b.index(sh)), b.index(pt));
                    let columns = |b: &Builder<'c>, from: i64, to: i64, checked: bool| {
                        if from >= to {
                            return;
                        }
                        b.for_range(from, to, 1, &[], |b, ow, _| {
                            let col0 = b.subi(b.muli(ow, b.index(sw)), b.index(pl));
                            let mut acc = start;
                            if let Some(residual) = residual {
                                acc = b.addf(acc, b.load(residual, &[image, channel, oh, ow]));
                            }
                            let sum = b.for_range(0, per_group, 1, &[acc], |b, wc, carried| {
                                let ic = b.addi(first_channel, wc);
                                b.for_range(0, kh, 1, carried, |b, i, carried| {
                                    let r = b.addi(row0, b.muli(i, b.index(dh)));
                                    let row_inside = inside(b, r, h);
                                    b.if_else(
                                        row_inside,
                                        &[b.f32_type()],
                                        |b| {
                                            b.for_range(0, kw, 1, carried, |b, j, carried| {
                                                let s = b.addi(col0, b.muli(j, b.index(dw)));
                                                let tap = |b: &Builder<'c>| {
                                                    let v = b.load(x, &[image, ic, r, s]);
                                                    let t = b.load(wt, &[channel, wc, i, j]);
                                                    b.fma(v, t, carried[0])
                                                };
                                                if checked {
                                                    let ok = inside(b, s, w);
                                                    b.if_else(
                                                        ok,
                                                        &[b.f32_type()],
                                                        |b| vec![tap(b)],
                                                        |_| vec![carried[0]],
                                                    )
                                                } else {
                                                    vec![tap(b)]
                                                }
                                            })
                                        },
                                        |_| carried.to_vec(),
                                    )
                                })
                            });
                            let value = match &activation {
                                Some(activation) => {
                                    super::elementwise::activate(b, sum[0], activation)
                                }
                                None => sum[0],
                            };
                            b.store(value, y, &[image, channel, oh, ow]);
                            vec![]
                        });
                    };
                    if let (Some(lanes), true) = (lanes, vector_end > first_inside) {
                        let l = lanes as u64;
                        b.for_range(first_inside, vector_end, lanes, &[], |b, ow, _| {
                            let col0 = b.subi(b.muli(ow, b.index(sw)), b.index(pl));
                            let mut acc = b.broadcast(start, l);
                            if let Some(residual) = residual {
                                let r = b.vload(residual, &[image, channel, oh, ow], l);
                                acc = b.addf(acc, r);
                            }
                            let sum = b.for_range(0, per_group, 1, &[acc], |b, wc, carried| {
                                let ic = b.addi(first_channel, wc);
                                b.for_range(0, kh, 1, carried, |b, i, carried| {
                                    let r = b.addi(row0, b.muli(i, b.index(dh)));
                                    b.if_else(
                                        inside(b, r, h),
                                        &[b.vector_type(l)],
                                        |b| {
                                            b.for_range(0, kw, 1, carried, |b, j, carried| {
                                                let s = b.addi(col0, b.muli(j, b.index(dw)));
                                                let v = load_columns(
                                                    b,
                                                    x,
                                                    [image, ic, r, s],
                                                    sw,
                                                    lanes,
                                                );
                                                let t = b.load(wt, &[channel, wc, i, j]);
                                                vec![b.vfma(v, b.broadcast(t, l), carried[0])]
                                            })
                                        },
                                        |_| carried.to_vec(),
                                    )
                                })
                            });
                            let value = match &activation {
                                Some(activation) => super::elementwise::activate_lanes(
                                    b,
                                    sum[0],
                                    activation,
                                    Some(l),
                                ),
                                None => sum[0],
                            };
                            b.vstore(value, y, &[image, channel, oh, ow]);
                            vec![]
                        });
                    }
                    columns(b, 0, first_inside, true);
                    columns(b, vector_end, last_inside, false);
                    columns(b, last_inside, wo, true);
                    vec![]
                });
                vec![]
            });
            vec![]
        });
        self.define(&op, output)
    }
}

/// `0 <= v < limit` for an index `v` that may be negative.
fn inside<'c>(b: &Builder<'c>, v: V<'c>, limit: i64) -> V<'c> {
    let zero = b.index(0);
    b.andi(
        b.cmpi(CmpiPredicate::Sge, v, zero),
        b.cmpi(CmpiPredicate::Slt, v, b.index(limit)),
    )
}

/// How an output row splits by the padding: `[0, first_inside)` and
/// `[last_inside, wo)` have taps outside the input, `[first_inside,
/// vector_end)` runs in whole vectors, `[vector_end, last_inside)` is the
/// scalar rest of the interior.
pub(super) struct Columns {
    pub first_inside: i64,
    pub last_inside: i64,
    pub vector_end: i64,
}

impl Columns {
    /// For an input row of `w`, `wo` output columns, a window of `kw` taps
    /// `dw` apart, stride `sw` and left padding `pl`; vectors of `lanes`
    /// when given and the stride is 1 or 2 (the forms [`load_columns`]
    /// loads). With stride 2 the second load reads one column past the last
    /// tap, so the vectors stop where that column is still inside the row.
    pub fn of(w: i64, wo: i64, kw: i64, sw: i64, pl: i64, dw: i64, lanes: Option<i64>) -> Self {
        // The columns ow whose taps ow*sw - pl + j*dw, for j up to `last`,
        // are all inside the row end at this bound.
        let end = |last: i64, from: i64| {
            if w - 1 - last + pl >= 0 {
                ((w - 1 - last + pl) / sw + 1).clamp(from, wo)
            } else {
                from
            }
        };
        let first_inside = ((pl + sw - 1) / sw).min(wo);
        let last_inside = end((kw - 1) * dw, first_inside);
        let vector_end = match (lanes, sw) {
            (Some(lanes), 1 | 2) => {
                let safe_end = end((kw - 1) * dw + (sw - 1), first_inside).min(last_inside);
                first_inside + (safe_end - first_inside) / lanes * lanes
            }
            _ => first_inside,
        };
        Columns {
            first_inside,
            last_inside,
            vector_end,
        }
    }
}

/// `lanes` values of row `at[..3]` of `x` from column `at[3]` on, `stride`
/// (1 or 2) apart: one vector load, or two and a shuffle keeping the even
/// lanes.
pub(super) fn load_columns<'c>(
    b: &Builder<'c>,
    x: V<'c>,
    at: [V<'c>; 4],
    stride: i64,
    lanes: i64,
) -> V<'c> {
    let l = lanes as u64;
    if stride == 1 {
        return b.vload(x, &at, l);
    }
    let lo = b.vload(x, &at, l);
    let next = b.addi(at[3], b.index(lanes));
    let hi = b.vload(x, &[at[0], at[1], at[2], next], l);
    let even: Vec<i64> = (0..lanes).map(|k| 2 * k).collect();
    b.shuffle(lo, hi, &even)
}
