//! The compiler's one cost model: estimated run time of the code grim
//! generates for one graph op, in **estimated nanoseconds on one core of
//! the target at its sustained clock** ([`Target::ghz`]), for one call.
//!
//! The estimate models the loops `lower-bcr-to-loops` emits with the
//! schedules `bcr-lre` and `bcr-tile` choose (docs/ARCHITECTURE.md,
//! "Kernels as built"): multiply-adds at the FMA rate the register tile can
//! sustain, the BCR kernels' per-block work (mask decode, output tile
//! loads and stores), the dense kernel's packing, im2col, transposes, and
//! the bytes each loop moves to and from the cache level that holds them.
//! It is used to compare alternatives (fused vs unfused ops, dense vs BCR
//! and block sizes), so what matters most is that it orders them right;
//! docs/cost-model.md gives its terms, the fit and its accuracy (within
//! 1.62x of every single-thread benchmark row, typically 12%).
//!
//! Everything here is plain arithmetic on shapes and counts; nothing needs
//! MLIR, so the pruning tool and the tuner can use it too.

mod kernels;
mod target;

use serde::{Deserialize, Serialize};

use crate::bcrc::BlockSize;
use crate::error::ModelError;

pub use target::{Calibration, Isa, Target, TargetError};

/// Kept rows the BCR matrix-matrix kernel computes together: `bcr-lre`'s
/// `register_tile = min(block_rows, 4)` on every target; a block's kept
/// rows beyond a multiple of it run one at a time.
pub const SPMM_TILE_ROWS: usize = 4;

/// The narrowest output row for which the BCR kernels read a conv's image
/// in place. They walk it row by row, each row in register chunks of up to
/// 24 columns (AVX2) with one masked tail: a 14-column row (resnet18's
/// layer3) fills one vector of a two-vector tile, so each broadcast weight
/// feeds half the FMAs, and such convs measured 1.5x-2.5x slower in place
/// than through an explicit patch matrix; 56-column rows (vgg16 conv3_1)
/// ran as fast as the GEMM view, without the 9x larger patch matrix.
pub const BCR_IMPLICIT_MIN_WO: usize = 48;

/// The block sizes the compiler tries for a layer the LR file leaves open.
pub const BLOCK_CANDIDATES: [BlockSize; 5] = [
    BlockSize { rows: 4, cols: 16 },
    BlockSize { rows: 8, cols: 16 },
    BlockSize { rows: 16, cols: 16 },
    BlockSize { rows: 16, cols: 32 },
    BlockSize { rows: 32, cols: 32 },
];

/// What the BCR kernels' work depends on: the counts of one BCR-packed
/// weight, computed without packing by [`crate::bcrc::bcr_shape`] (or for
/// a hypothetical pruning by [`BcrShape::uniform`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BcrShape {
    /// Block shape.
    pub block: BlockSize,
    /// Values stored: kept rows x kept columns, summed over blocks.
    pub stored_values: usize,
    /// Stored (non-empty) blocks.
    pub blocks: usize,
    /// Stored (non-empty) strips.
    pub strips: usize,
    /// Kept rows summed over stored blocks: output rows each block updates.
    pub row_visits: usize,
    /// Kept columns summed over stored blocks: activation rows each block reads.
    pub col_visits: usize,
    /// Sum over stored blocks of (kept rows mod the register tile
    /// `min(block.rows, SPMM_TILE_ROWS)`): rows computed one at a time.
    pub leftover_rows: usize,
    /// Sum over stored blocks of (kept rows mod the register tile) x kept
    /// columns: the stored values multiplied one row at a time.
    pub leftover_row_cols: usize,
}

impl BcrShape {
    /// The shape of a `rows x cols` matrix pruned so that every block keeps
    /// `kept_rows` rows and `kept_cols` columns (fewer in edge blocks that
    /// have fewer), as `bcr_project` and `random_bcr_weight` prune: what a
    /// pruning tool can estimate before it prunes.
    pub fn uniform(
        rows: usize,
        cols: usize,
        block: BlockSize,
        kept_rows: usize,
        kept_cols: usize,
    ) -> BcrShape {
        let mut shape = BcrShape::empty(block);
        if kept_rows == 0 || kept_cols == 0 || block.rows == 0 || block.cols == 0 {
            return shape;
        }
        for r0 in (0..rows).step_by(block.rows) {
            let kept_r = kept_rows.min(block.rows.min(rows - r0));
            for c0 in (0..cols).step_by(block.cols) {
                let kept_c = kept_cols.min(block.cols.min(cols - c0));
                shape.add_block(kept_r, kept_c);
            }
            shape.strips += 1;
        }
        shape
    }

    /// No blocks yet.
    pub(crate) fn empty(block: BlockSize) -> BcrShape {
        BcrShape {
            block,
            stored_values: 0,
            blocks: 0,
            strips: 0,
            row_visits: 0,
            col_visits: 0,
            leftover_rows: 0,
            leftover_row_cols: 0,
        }
    }

    /// Counts one stored block that keeps `kept_rows` x `kept_cols`.
    pub(crate) fn add_block(&mut self, kept_rows: usize, kept_cols: usize) {
        let tile = SPMM_TILE_ROWS.min(self.block.rows).max(1);
        let leftover = kept_rows % tile;
        self.stored_values += kept_rows * kept_cols;
        self.blocks += 1;
        self.row_visits += kept_rows;
        self.col_visits += kept_cols;
        self.leftover_rows += leftover;
        self.leftover_row_cols += leftover * kept_cols;
    }

    /// Bytes of the packed index arrays: strip records (3 u32 each plus a
    /// sentinel), one u16 block column and the masks per block.
    pub fn index_bytes(&self) -> usize {
        12 * (self.strips + 1) + self.blocks * (2 + self.block.mask_bytes())
    }
}

/// The kernel a matrix product runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernel {
    /// `bcr.gemm` on row panels (`bcr.gemv`-style panel sums when N = 1).
    Dense,
    /// `bcr.spmm` (N > 1) or `bcr.spmv` on column panels (N = 1) over the
    /// BCR-packed weight of this shape.
    Bcr(BcrShape),
}

impl Kernel {
    /// `dense` or `bcr RxC`: how the compiler labels a candidate.
    pub fn label(&self) -> String {
        match self {
            Kernel::Dense => "dense".to_string(),
            Kernel::Bcr(shape) => format!("bcr {}", shape.block),
        }
    }
}

/// The geometry of a `grim.conv2d` (group 1) whose product this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvGeometry {
    /// Input channels C.
    pub channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Strides along height and width.
    pub stride: [usize; 2],
    /// Pads as ONNX orders them: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Output height and width (from the graph's shape inference, so
    /// dilations are already accounted for).
    pub output: [usize; 2],
}

impl ConvGeometry {
    /// A 1x1, stride-1, unpadded conv: the image is already the `[C, H*W]`
    /// matrix, no im2col at all.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pads == [0; 4]
    }

    /// Whether the BCR kernels read the image in place (implicit im2col)
    /// rather than an explicit patch matrix: stride 1 along W and output
    /// rows at least [`BCR_IMPLICIT_MIN_WO`] wide. graph-choose-kernel
    /// decides each conv's route with this rule, and lowering follows it.
    pub fn bcr_reads_in_place(&self) -> bool {
        self.stride[1] == 1 && self.output[1] >= BCR_IMPLICIT_MIN_WO
    }

    /// Values of the input image: C x H x W.
    pub fn image_values(&self) -> usize {
        self.channels * self.input[0] * self.input[1]
    }

    /// Values of the zero-padded copy the in-place BCR kernels read.
    pub fn padded_values(&self) -> usize {
        self.channels
            * (self.input[0] + self.pads[0] + self.pads[2])
            * (self.input[1] + self.pads[1] + self.pads[3])
    }
}

/// One matrix product `Y = W X` as the compiled code runs it: W is
/// `m x k`; each of `images` products multiplies `k x n` activations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Rows of W (output features or channels).
    pub m: usize,
    /// Columns of W (input features, or C x kh x kw for a conv).
    pub k: usize,
    /// Columns of X per image: the batch rows of a gemm, Ho x Wo of a conv.
    pub n: usize,
    /// Independent products: the batch of a conv (1 for a gemm).
    pub images: usize,
    /// Set for a convolution: how its image reaches the product.
    pub conv: Option<ConvGeometry>,
    /// A gemm with `n > 1` transposes its `[n, k]` input to `[k, n]`
    /// first (the kernels vectorise along N); false when a `grim.transpose`
    /// before it cancels that.
    pub transpose_input: bool,
    /// ... and transposes its `[m, n]` result back to `[n, m]`; false when
    /// a `grim.transpose` after it cancels that.
    pub transpose_output: bool,
}

impl Product {
    /// A gemm `Y[n, m] = X[n, k] W^T` as the graph holds it: both
    /// transposes are done (set the flags to false where they cancel).
    pub fn gemm(m: usize, k: usize, n: usize) -> Product {
        Product {
            m,
            k,
            n,
            images: 1,
            conv: None,
            transpose_input: n > 1,
            transpose_output: n > 1,
        }
    }

    /// A gemm whose activations are already `[k, n]` and whose result stays
    /// `[m, n]` (both transposes cancelled, as in the kernel benchmarks).
    pub fn kn(m: usize, k: usize, n: usize) -> Product {
        Product {
            transpose_input: false,
            transpose_output: false,
            ..Product::gemm(m, k, n)
        }
    }

    /// A conv with `m` output channels over `images` images: K and N come
    /// from the geometry (C x kh x kw and Ho x Wo).
    pub fn conv(m: usize, images: usize, geometry: ConvGeometry) -> Product {
        Product {
            m,
            k: geometry.channels * geometry.kernel[0] * geometry.kernel[1],
            n: geometry.output[0] * geometry.output[1],
            images,
            conv: Some(geometry),
            transpose_input: false,
            transpose_output: false,
        }
    }
}

/// An estimate and what it is made of.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Estimate {
    /// Estimated ns on one core (the number to compare).
    pub ns: f64,
    /// The instruction-bound part: cycles at [`Target::ghz`], in ns.
    pub compute_ns: f64,
    /// The part spent moving bytes beyond L1, in ns.
    pub memory_ns: f64,
    /// Flops executed: 2 per multiply-add of a stored (BCR) or every
    /// (dense) weight, plus epilogue arithmetic.
    pub flops: f64,
    /// Bytes moved between the core and L2 or beyond.
    pub bytes: f64,
}

impl Estimate {
    /// The sum of two estimates (ops that run one after the other).
    pub fn then(self, other: Estimate) -> Estimate {
        Estimate {
            ns: self.ns + other.ns,
            compute_ns: self.compute_ns + other.compute_ns,
            memory_ns: self.memory_ns + other.memory_ns,
            flops: self.flops + other.flops,
            bytes: self.bytes + other.bytes,
        }
    }

    /// This estimate repeated `times` times.
    pub fn times(self, times: f64) -> Estimate {
        Estimate {
            ns: self.ns * times,
            compute_ns: self.compute_ns * times,
            memory_ns: self.memory_ns * times,
            flops: self.flops * times,
            bytes: self.bytes * times,
        }
    }
}

/// The estimate of one matrix product (gemm or conv, all its images,
/// including the output's bias fill, im2col and transposes) on `kernel`.
pub fn estimate_product(target: &Target, product: &Product, kernel: &Kernel) -> Estimate {
    kernels::product(target, product, kernel)
}

/// [`estimate_product`]'s ns.
pub fn product_ns(target: &Target, product: &Product, kernel: &Kernel) -> f64 {
    estimate_product(target, product, kernel).ns
}

/// A standalone elementwise pass (activation, add, batch norm, bias) over
/// `elements` f32 values per operand, reading `inputs_read` tensors and
/// writing `outputs_written`, with `per_element_flops` arithmetic per
/// element. Streaming: the larger of the vector arithmetic and the bytes
/// over the bandwidth of the cache level the pass's tensors fit in.
pub fn elementwise(
    target: &Target,
    elements: usize,
    inputs_read: usize,
    outputs_written: usize,
    per_element_flops: f64,
) -> Estimate {
    kernels::elementwise(
        target,
        elements,
        inputs_read,
        outputs_written,
        per_element_flops,
    )
}

/// [`elementwise`]'s ns.
pub fn elementwise_ns(
    target: &Target,
    elements: usize,
    inputs_read: usize,
    outputs_written: usize,
    per_element_flops: f64,
) -> f64 {
    elementwise(
        target,
        elements,
        inputs_read,
        outputs_written,
        per_element_flops,
    )
    .ns
}

/// A 2-D transpose of a `rows x cols` f32 matrix (16x16 tiles, as the gemm
/// lowering does): one copy per value plus the bytes read and written.
pub fn transpose_ns(target: &Target, rows: usize, cols: usize) -> f64 {
    kernels::transpose(target, rows, cols).ns
}

/// An elementwise epilogue fused into a product: applied to each output
/// tile while it is in registers, so it costs its arithmetic and the bytes
/// of any `extra_inputs_read` tensors (a residual add reads one), not a
/// pass over the output.
pub fn epilogue_ns(
    target: &Target,
    elements: usize,
    extra_inputs_read: usize,
    per_element_flops: f64,
) -> f64 {
    kernels::epilogue(target, elements, extra_inputs_read, per_element_flops).ns
}

/// Whether a matrix-vector product's BCR values are stored as compact
/// panels (each kept column's kept rows only, expanded by the row mask as
/// they load) rather than full-height column panels: on targets whose
/// vector loads expand by a mask in one instruction (AVX-512's
/// `vexpandps`; NEON and AVX2 have none, LLVM would split the load lane by
/// lane), for blocks of 8 or 16 rows (one mask vector), when a quarter or
/// more of the rows the blocks span are pruned, so that the panels read at
/// least a quarter fewer bytes. lower-grim-to-bcr packs by this rule and
/// the cost model prices by it.
pub fn compact_panels(isa: Isa, shape: &BcrShape) -> bool {
    isa == Isa::Avx512
        && [8, 16].contains(&shape.block.rows)
        && 4 * shape.row_visits <= 3 * shape.blocks * shape.block.rows
}

/// One kernel the compiler considered for a layer, and its estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// `dense` or `bcr RxC` ([`Kernel::label`]).
    pub label: String,
    /// The kernel.
    pub kernel: Kernel,
    /// Its estimated ns.
    pub ns: f64,
}

/// The kernel chosen for a layer and why: every candidate's estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The cheapest candidate's kernel (dense on a tie).
    pub kernel: Kernel,
    /// Dense first, then each block candidate in the order given.
    pub candidates: Vec<Candidate>,
}

/// Estimates `product` on the dense kernel and on the BCR kernel at each
/// block in `candidates` (the weight `weight`, `product.m x product.k`
/// row-major, packed with that block), and picks the cheapest; a tie goes
/// to dense, which needs no index arrays. A BCR candidate that stores
/// every value of the matrix (nothing pruned) is recorded but never
/// chosen: it does the dense kernel's arithmetic plus its index reads, so
/// an estimate that puts it ahead of dense is the model's error (measured:
/// ResNet-18's dense 7x7 stem took 8.3 ms as BCR 32x32, estimated 3.6 ms,
/// and 4.3 ms dense). Fails if `weight` does not have `m x k` values or a
/// block size is invalid.
pub fn choose_kernel(
    target: &Target,
    product: &Product,
    weight: &[f32],
    candidates: &[BlockSize],
) -> Result<Choice, ModelError> {
    let dense_ns = product_ns(target, product, &Kernel::Dense);
    let mut all = vec![Candidate {
        label: Kernel::Dense.label(),
        kernel: Kernel::Dense,
        ns: dense_ns,
    }];
    for &block in candidates {
        let shape = crate::bcrc::bcr_shape(weight, product.m, product.k, block)?;
        let kernel = Kernel::Bcr(shape);
        all.push(Candidate {
            label: kernel.label(),
            ns: product_ns(target, product, &kernel),
            kernel,
        });
    }
    let everything = product.m * product.k;
    let best = all
        .iter()
        .filter(|c| !matches!(&c.kernel, Kernel::Bcr(shape) if shape.stored_values >= everything))
        .fold(&all[0], |best, c| if c.ns < best.ns { c } else { best });
    Ok(Choice {
        kernel: best.kernel,
        candidates: all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(rows: usize, cols: usize) -> BlockSize {
        BlockSize { rows, cols }
    }

    #[test]
    fn uniform_shape_counts_edge_blocks_and_leftover_rows() {
        // 10 x 20 in 4x16 blocks: strips of 4, 4, 2 rows; block columns of 16, 4.
        let s = BcrShape::uniform(10, 20, b(4, 16), 3, 8);
        assert_eq!((s.blocks, s.strips), (6, 3));
        // Kept rows: 3, 3 in full strips, 2 in the last; cols 8 then 4.
        assert_eq!(s.row_visits, 2 * 3 + 2 * 3 + 2 * 2);
        assert_eq!(s.col_visits, 3 * (8 + 4));
        assert_eq!(
            s.stored_values,
            3 * 8 + 3 * 4 + 3 * 8 + 3 * 4 + 2 * 8 + 2 * 4
        );
        // Register tile of 4 rows: every block's rows are leftovers.
        assert_eq!(s.leftover_rows, s.row_visits);
        assert_eq!(s.leftover_row_cols, s.stored_values);
        // 16-row blocks keeping 6 rows: one tile of 4, 2 rows one at a time.
        let s = BcrShape::uniform(16, 16, b(16, 16), 6, 5);
        assert_eq!((s.leftover_rows, s.leftover_row_cols), (2, 10));
        assert_eq!(s.index_bytes(), 12 * 2 + 2 + 4);
        assert_eq!(BcrShape::uniform(16, 16, b(16, 16), 0, 5).blocks, 0);
    }

    #[test]
    fn labels_name_the_block() {
        let s = BcrShape::uniform(8, 16, b(8, 16), 4, 4);
        assert_eq!(Kernel::Bcr(s).label(), "bcr 8x16");
        assert_eq!(Kernel::Dense.label(), "dense");
    }

    #[test]
    fn conv_product_takes_k_and_n_from_the_geometry() {
        let g = ConvGeometry {
            channels: 128,
            input: [56, 56],
            kernel: [3, 3],
            stride: [1, 1],
            pads: [1; 4],
            output: [56, 56],
        };
        let p = Product::conv(256, 2, g);
        assert_eq!((p.k, p.n, p.images), (1152, 3136, 2));
        assert!(!g.is_pointwise() && g.bcr_reads_in_place());
        assert_eq!(g.padded_values(), 128 * 58 * 58);
        let narrow = ConvGeometry {
            output: [28, 28],
            ..g
        };
        assert!(!narrow.bcr_reads_in_place());
        let pointwise = ConvGeometry {
            kernel: [1, 1],
            pads: [0; 4],
            ..g
        };
        assert!(pointwise.is_pointwise());
        assert!(Product::gemm(10, 20, 4).transpose_input);
        assert!(!Product::gemm(10, 20, 1).transpose_output);
    }

    #[test]
    fn a_bcr_candidate_storing_everything_never_wins() {
        // A fully dense 64 x 64 weight over many columns, -0.0-free: every
        // BCR candidate stores all 4096 values.
        let t = Target::for_isa(Isa::Avx2);
        let p = Product::kn(64, 64, 12544);
        let w = vec![0.5f32; 64 * 64];
        let blocks = [b(8, 16), b(32, 32)];
        let c = choose_kernel(&t, &p, &w, &blocks).unwrap();
        assert_eq!(c.kernel, Kernel::Dense);
        assert_eq!(c.candidates.len(), 3, "every candidate is still recorded");
        // With half its rows pruned, BCR competes on its estimate again.
        let mut pruned = w.clone();
        pruned[..32 * 64].iter_mut().for_each(|v| *v = 0.0);
        let c = choose_kernel(&t, &p, &pruned, &blocks).unwrap();
        assert!(matches!(c.kernel, Kernel::Bcr(_)), "{:?}", c.kernel);
    }

    #[test]
    fn choose_kernel_reports_weight_errors() {
        let t = Target::for_isa(Isa::Avx2);
        let e = choose_kernel(&t, &Product::kn(4, 4, 8), &[1.0; 15], &[b(4, 4)]).unwrap_err();
        assert!(
            e.to_string().contains("16") || e.to_string().contains("15"),
            "{e}"
        );
        let bad = BlockSize { rows: 0, cols: 4 };
        assert!(choose_kernel(&t, &Product::kn(4, 4, 8), &[1.0; 16], &[bad]).is_err());
        // No candidates: dense, alone.
        let c = choose_kernel(&t, &Product::kn(4, 4, 8), &[1.0; 16], &[]).unwrap();
        assert_eq!((c.kernel, c.candidates.len()), (Kernel::Dense, 1));
    }
}
