//! The im2col copy: rows of a convolution's patch matrix, read straight
//! from the image. Shared by `bcr.im2col` (an explicit patch matrix for the
//! BCR kernels) and the dense kernel's implicit im2col (patches copied
//! into its packed activation blocks, never into a whole matrix), so both
//! read the image the same way and one set of tests covers both.
//!
//! Row `kk = (c, i, j)` of the patch matrix of a `kh x kw` kernel holds,
//! for output position `n = (oh, ow)`, the input
//! `X[c, oh*sh + i*dh - pt, ow*sw + j*dw - pl]`, or 0 outside the image.
//! Which output columns read inside the image depends on `j` only, and
//! which output rows on `i` only, so both ranges are computed once per
//! patch row; every output row is then a run of zeros (left padding), a
//! plain copy (contiguous for stride 1, which LLVM vectorises) and zeros
//! (right padding), and no position pays a bounds check.

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
    /// Output rows.
    pub ho: i64,
    /// Output columns (a run is at most this long).
    pub wo: i64,
}

/// Where patch row `kk` reads the image.
struct Row<'c> {
    channel: V<'c>,
    /// Input row of output row 0 (may be negative: padding).
    h_off: V<'c>,
    /// Input column of output column 0 (may be negative: padding).
    w_off: V<'c>,
    /// Output columns `[ow_lo, ow_hi)` read inside the image.
    ow_lo: V<'c>,
    ow_hi: V<'c>,
}

impl Geometry {
    /// The geometry for an image `[C, H, W]` (`None` if the kernel does not fit).
    pub fn new(patch: &Im2col, image: &[i64]) -> Option<Geometry> {
        let (_, ho, wo) = patch.output(image)?;
        Some(Geometry {
            h: image[1],
            w: image[2],
            patch: *patch,
            ho,
            wo,
        })
    }

    /// `[lo, hi)`: the outputs `o` in `[0, count)` with `o * stride + offset`
    /// inside `[0, size)`.
    fn inside<'c>(
        b: &Builder<'c>,
        offset: V<'c>,
        stride: i64,
        size: i64,
        count: i64,
    ) -> (V<'c>, V<'c>) {
        let (zero, stride) = (b.index(0), b.index(stride));
        let first = b.signed("arith.ceildivsi", b.subi(zero, offset), stride);
        let lo = b.signed(
            "arith.minsi",
            b.signed("arith.maxsi", first, zero),
            b.index(count),
        );
        let last = b.signed(
            "arith.floordivsi",
            b.subi(b.index(size - 1), offset),
            stride,
        );
        let hi = b.signed(
            "arith.minsi",
            b.signed("arith.maxsi", b.addi(last, b.index(1)), lo),
            b.index(count),
        );
        (lo, hi)
    }

    fn row<'c>(&self, b: &Builder<'c>, kk: V<'c>) -> Row<'c> {
        let p = &self.patch;
        let index = |v: i64| b.index(v);
        let channel = b.divui(kk, index(p.kh * p.kw));
        let within = b.remui(kk, index(p.kh * p.kw));
        let i = b.divui(within, index(p.kw));
        let j = b.remui(within, index(p.kw));
        let h_off = b.subi(b.muli(i, index(p.conv.dilations[0])), index(p.conv.pads[0]));
        let w_off = b.subi(b.muli(j, index(p.conv.dilations[1])), index(p.conv.pads[1]));
        let (ow_lo, ow_hi) = Self::inside(b, w_off, p.conv.strides[1], self.w, self.wo);
        Row {
            channel,
            h_off,
            w_off,
            ow_lo,
            ow_hi,
        }
    }

    /// Output columns `[ow0, ow1)` of output row `oh` of a patch row whose
    /// input row `ih` is inside the image: zeros, copy, zeros; column `ow`
    /// goes to `dst[at(ow + shift)]`.
    #[allow(clippy::too_many_arguments)]
    fn run<'c>(
        &self,
        b: &Builder<'c>,
        x: V<'c>,
        row: &Row<'c>,
        ih: V<'c>,
        (ow0, ow1): (V<'c>, V<'c>),
        (lo, hi): (V<'c>, V<'c>),
        shift: V<'c>,
        dst: V<'c>,
        at: &dyn Fn(&Builder<'c>, V<'c>) -> Vec<V<'c>>,
    ) {
        let one = b.index(1);
        let f0 = b.f32(0.0);
        for (start, end) in [(ow0, lo), (hi, ow1)] {
            b.for_loop(start, end, one, &[], |b, ow, _| {
                b.store(f0, dst, &at(b, b.addi(ow, shift)));
                vec![]
            });
        }
        b.for_loop(lo, hi, one, &[], |b, ow, _| {
            let iw = b.addi(b.muli(ow, b.index(self.patch.conv.strides[1])), row.w_off);
            let value = b.load(x, &[row.channel, ih, iw]);
            b.store(value, dst, &at(b, b.addi(ow, shift)));
            vec![]
        });
    }

    /// Rewrites the first `count` entries of `list` from patch rows `kk` to
    /// the flat offset of their first element in an unpadded image,
    /// `c * H * W + i * dh * W + j * dw`: a BCR kernel reading the image in
    /// place then adds only the output position.
    pub fn patch_offsets<'c>(&self, b: &Builder<'c>, list: V<'c>, count: V<'c>) {
        let p = &self.patch;
        let (zero, one) = (b.index(0), b.index(1));
        b.for_loop(zero, count, one, &[], |b, at, _| {
            let kk = b.load(list, &[at]);
            let channel = b.divui(kk, b.index(p.kh * p.kw));
            let within = b.remui(kk, b.index(p.kh * p.kw));
            let i = b.divui(within, b.index(p.kw));
            let j = b.remui(within, b.index(p.kw));
            let offset = b.muli(channel, b.index(self.h * self.w));
            let offset = b.addi(offset, b.muli(i, b.index(p.conv.dilations[0] * self.w)));
            let offset = b.addi(offset, b.muli(j, b.index(p.conv.dilations[1])));
            b.store(offset, list, &[at]);
            vec![]
        });
    }

    /// Copies all of patch row `kk` (positions `0..Ho*Wo`) of the image `x`
    /// (`memref<CxHxWxf32>`) to `dst[at(position)]`: output rows above and
    /// below the image are zeros, the others runs of zeros, copy, zeros
    /// whose bounds are the same for every row.
    pub fn copy_full_row<'c>(
        &self,
        b: &Builder<'c>,
        x: V<'c>,
        kk: V<'c>,
        dst: V<'c>,
        at: &dyn Fn(&Builder<'c>, V<'c>) -> Vec<V<'c>>,
    ) {
        let row = self.row(b, kk);
        let (oh_lo, oh_hi) =
            Self::inside(b, row.h_off, self.patch.conv.strides[0], self.h, self.ho);
        let (one, f0, wo) = (b.index(1), b.f32(0.0), b.index(self.wo));
        // Whole output rows in the padding: zeros.
        for (start, end) in [(b.index(0), oh_lo), (oh_hi, b.index(self.ho))] {
            let (start, end) = (b.muli(start, wo), b.muli(end, wo));
            b.for_loop(start, end, one, &[], |b, n, _| {
                b.store(f0, dst, &at(b, n));
                vec![]
            });
        }
        b.for_loop(oh_lo, oh_hi, one, &[], |b, oh, _| {
            let ih = b.addi(b.muli(oh, b.index(self.patch.conv.strides[0])), row.h_off);
            let shift = b.muli(oh, b.index(self.wo));
            self.run(
                b,
                x,
                &row,
                ih,
                (b.index(0), b.index(self.wo)),
                (row.ow_lo, row.ow_hi),
                shift,
                dst,
                at,
            );
            vec![]
        });
    }

    /// Copies positions `[n_start, n_end)` of patch row `kk` of the image
    /// `x` to destination positions `0..`, stored at `dst[at(position)]`:
    /// a walk over the output rows the range touches.
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
        let row = self.row(b, kk);
        b.while_loop(
            &[n_start],
            |b, carried| b.cmpi(CmpiPredicate::Ult, carried[0], n_end),
            |b, carried| {
                let n = carried[0];
                let wo = b.index(self.wo);
                let oh = b.divui(n, wo);
                let ow0 = b.subi(n, b.muli(oh, wo));
                let run_end = b.minui(n_end, b.muli(b.addi(oh, b.index(1)), wo));
                let ow1 = b.addi(ow0, b.subi(run_end, n));
                let ih = b.addi(b.muli(oh, b.index(self.patch.conv.strides[0])), row.h_off);
                let inside = b.cmpi(CmpiPredicate::Sge, ih, b.index(0));
                let above = b.cmpi(CmpiPredicate::Slt, ih, b.index(self.h));
                let row_ok = b.andi(inside, above);
                // A row outside the image is all zeros: an empty copy range at ow1.
                let lo = b.signed("arith.minsi", b.signed("arith.maxsi", row.ow_lo, ow0), ow1);
                let lo = b.select(row_ok, lo, ow1);
                let hi = b.signed("arith.minsi", b.signed("arith.maxsi", row.ow_hi, lo), ow1);
                let hi = b.select(row_ok, hi, ow1);
                let shift = b.subi(b.subi(n, n_start), ow0);
                self.run(b, x, &row, ih, (ow0, ow1), (lo, hi), shift, dst, at);
                vec![run_end]
            },
        );
    }
}
