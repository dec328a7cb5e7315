//! The im2col copy: one row of a convolution's patch matrix, read straight
//! from the image. Shared by `bcr.im2col` (an explicit patch matrix for the
//! BCR kernels) and the dense kernel's implicit im2col (patches copied
//! into its packed activation block, never into a whole matrix), so both
//! read the image the same way and one set of tests covers both.
//!
//! Row `kk = (c, i, j)` of the patch matrix of a `kh x kw` kernel holds,
//! for output position `n = (oh, ow)`, the input
//! `X[c, oh*sh + i*dh - pt, ow*sw + j*dw - pl]`, or 0 outside the image.
//! A run of positions within one output row reads one input row: the copy
//! walks runs, and within a run splits the positions into the left padding
//! (zeros), the part inside the image (a plain copy, contiguous for stride
//! 1, which LLVM vectorises) and the right padding, so no position pays a
//! bounds check.

use crate::builder::{Builder, V};
use grim_dialects::bcr::Im2col;
use melior::dialect::arith::CmpiPredicate;

/// A patch geometry with the image size resolved.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Image rows.
    pub h: i64,
    /// Image columns.
    pub w: i64,
    /// The kernel, strides, pads and dilations.
    pub patch: Im2col,
    /// Output columns (a run is at most this long).
    pub wo: i64,
}

impl Geometry {
    /// The geometry for an image `[C, H, W]` (`None` if the kernel does not fit).
    pub fn new(patch: &Im2col, image: &[i64]) -> Option<Geometry> {
        let (_, _, wo) = patch.output(image)?;
        Some(Geometry {
            h: image[1],
            w: image[2],
            patch: *patch,
            wo,
        })
    }

    /// Copies positions `[n_start, n_end)` of patch row `kk` of the image
    /// `x` (`memref<CxHxWxf32>`) to destination positions `0..`, stored at
    /// `dst[at(position)]`.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_row<'c>(
        &self,
        b: &Builder<'c>,
        x: V<'c>,
        kk: V<'c>,
        n_start: V<'c>,
        n_end: V<'c>,
        dst: V<'c>,
        at: &dyn Fn(&Builder<'c>, V<'c>) -> Vec<V<'c>>,
    ) {
        let p = &self.patch;
        let index = |v: i64| b.index(v);
        let channel = b.divui(kk, index(p.kh * p.kw));
        let within = b.remui(kk, index(p.kh * p.kw));
        let i = b.divui(within, index(p.kw));
        let j = b.remui(within, index(p.kw));
        // Offsets of the patch element in the (padded) image; may be negative.
        let h_off = b.subi(b.muli(i, index(p.conv.dilations[0])), index(p.conv.pads[0]));
        let w_off = b.subi(b.muli(j, index(p.conv.dilations[1])), index(p.conv.pads[1]));
        // Output columns whose input column ow*sw + w_off is inside [0, W).
        let zero = index(0);
        let stride_w = index(p.conv.strides[1]);
        let first = b.signed("arith.ceildivsi", b.subi(zero, w_off), stride_w);
        let ow_lo = b.signed("arith.maxsi", first, zero);
        let last = b.signed(
            "arith.floordivsi",
            b.subi(index(self.w - 1), w_off),
            stride_w,
        );
        let ow_hi = b.signed("arith.minsi", b.addi(last, index(1)), index(self.wo));
        let f0 = b.f32(0.0);
        b.while_loop(
            &[n_start],
            |b, carried| b.cmpi(CmpiPredicate::Ult, carried[0], n_end),
            |b, carried| {
                let n = carried[0];
                let wo = b.index(self.wo);
                let oh = b.divui(n, wo);
                let ow0 = b.subi(n, b.muli(oh, wo));
                let row_end = b.muli(b.addi(oh, b.index(1)), wo);
                let run_end = b.minui(n_end, row_end);
                let ow1 = b.addi(ow0, b.subi(run_end, n));
                let ih = b.addi(b.muli(oh, b.index(p.conv.strides[0])), h_off);
                let inside = b.cmpi(CmpiPredicate::Sge, ih, b.index(0));
                let above = b.cmpi(CmpiPredicate::Slt, ih, b.index(self.h));
                let row_ok = b.andi(inside, above);
                let lo = b.signed("arith.minsi", b.signed("arith.maxsi", ow_lo, ow0), ow1);
                let lo = b.select(row_ok, lo, ow1);
                let hi = b.signed("arith.minsi", b.signed("arith.maxsi", ow_hi, lo), ow1);
                let hi = b.select(row_ok, hi, ow1);
                // Destination position of output column `ow` of this run.
                let shift = b.subi(n, n_start);
                let shift = b.subi(shift, ow0);
                let one = b.index(1);
                for (start, end) in [(ow0, lo), (hi, ow1)] {
                    b.for_loop(start, end, one, &[], |b, ow, _| {
                        b.store(f0, dst, &at(b, b.addi(ow, shift)));
                        vec![]
                    });
                }
                b.for_loop(lo, hi, one, &[], |b, ow, _| {
                    let iw = b.addi(b.muli(ow, b.index(p.conv.strides[1])), w_off);
                    let value = b.load(x, &[channel, ih, iw]);
                    b.store(value, dst, &at(b, b.addi(ow, shift)));
                    vec![]
                });
                vec![run_end]
            },
        );
    }
}
