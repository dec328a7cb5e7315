//! BCR (block-based column-row) sparsity and its compact storage, BCRC.
//!
//! See `BCR.md`: a weight matrix W (M rows x K columns, row-major) is cut
//! into `block.rows x block.cols` blocks; inside each block only the rows and
//! columns that hold a nonzero are kept, and the dense kept-rows x kept-cols
//! sub-matrix is stored (zeros inside it included). That makes packing
//! lossless for *every* matrix; pruning ([`bcr_project`]) is what makes it
//! efficient.
//!
//! The layout is chosen for the kernels: work is listed strip by strip
//! (a strip is one block row), masks have a fixed stride per block so a kernel
//! can index them without a prefix sum, and the values of consecutive blocks
//! are contiguous so a kernel walks them with one running offset.

use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::projection::keep_count;

/// Largest block side: masks are handled as `u64` bit sets.
pub const MAX_BLOCK_SIDE: usize = 64;

/// The block shape of BCR pruning and packing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockSize {
    /// Rows per block (1..=64).
    pub rows: usize,
    /// Columns per block (1..=64).
    pub cols: usize,
}

impl BlockSize {
    /// A checked block size: both sides in `1..=64`.
    pub fn new(rows: usize, cols: usize) -> Result<Self, ModelError> {
        let b = BlockSize { rows, cols };
        b.check()?;
        Ok(b)
    }

    pub(crate) fn check(&self) -> Result<(), ModelError> {
        if !(1..=MAX_BLOCK_SIDE).contains(&self.rows) || !(1..=MAX_BLOCK_SIDE).contains(&self.cols)
        {
            return Err(ModelError::BlockSize {
                text: self.to_string(),
                message: format!("rows and cols must be in 1..={MAX_BLOCK_SIDE}"),
            });
        }
        Ok(())
    }

    /// Bytes of one block's row mask.
    pub fn row_mask_bytes(&self) -> usize {
        self.rows.div_ceil(8)
    }

    /// Bytes of one block's column mask.
    pub fn col_mask_bytes(&self) -> usize {
        self.cols.div_ceil(8)
    }

    /// Bytes of masks per stored block (row mask then column mask).
    pub fn mask_bytes(&self) -> usize {
        self.row_mask_bytes() + self.col_mask_bytes()
    }
}

impl fmt::Display for BlockSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.rows, self.cols)
    }
}

impl FromStr for BlockSize {
    type Err = ModelError;

    /// Parses `RxC`, e.g. `8x16`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |message: &str| ModelError::BlockSize {
            text: s.to_string(),
            message: message.to_string(),
        };
        let (r, c) = s
            .trim()
            .split_once(['x', 'X'])
            .ok_or_else(|| err("expected ROWSxCOLS, e.g. 8x16"))?;
        let r: usize = r
            .trim()
            .parse()
            .map_err(|_| err("rows is not a positive integer"))?;
        let c: usize = c
            .trim()
            .parse()
            .map_err(|_| err("cols is not a positive integer"))?;
        BlockSize::new(r, c)
            .map_err(|_| err(&format!("rows and cols must be in 1..={MAX_BLOCK_SIDE}")))
    }
}

/// The order in which a packed matrix lists its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Strips ascending, blocks ascending by column (no reorder).
    #[default]
    Natural,
    /// GRIM's BCR-based reorder: in each strip, blocks with identical row masks
    /// are consecutive (so an output tile can stay in registers across them);
    /// strips sorted by descending work (so greedy scheduling balances load).
    Grouped,
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Natural => "natural",
            Order::Grouped => "grouped",
        })
    }
}

impl FromStr for Order {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "natural" => Ok(Order::Natural),
            "grouped" => Ok(Order::Grouped),
            _ => Err(ModelError::Order {
                text: s.to_string(),
            }),
        }
    }
}

/// A BCR-packed (BCRC) weight matrix. See the module docs for the layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Bcrc {
    /// M: rows of W.
    pub rows: usize,
    /// K: columns of W.
    pub cols: usize,
    /// Block shape.
    pub block: BlockSize,
    /// Work order the arrays are laid out in.
    pub order: Order,
    /// One record of 3 u32 per non-empty strip in work order, then one sentinel record:
    /// `[strip_index (block-row index), first_block, first_value] ... [0, num_blocks, num_values]`
    pub strips: Vec<u32>,
    /// Block-column index of each stored block, in work order.
    pub block_col: Vec<u16>,
    /// Per stored block: ceil(block.rows/8) row-mask bytes then ceil(block.cols/8) col-mask bytes;
    /// bit i of byte i/8 (LSB first) = local row/col i kept.
    pub masks: Vec<u8>,
    /// Per stored block, its kept_rows x kept_cols sub-matrix, row-major, kept rows and cols ascending.
    pub values: Vec<f32>,
}

/// Size and efficiency figures of a packed matrix (what `grimc inspect` shows).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BcrcStats {
    /// Values stored (nonzeros plus zeros inside kept sub-matrices).
    pub stored_values: usize,
    /// Nonzeros of W.
    pub nonzeros: usize,
    /// `nonzeros / stored_values` (1.0 when nothing is stored).
    pub fill: f64,
    /// Stored (non-empty) blocks.
    pub blocks: usize,
    /// Stored (non-empty) strips.
    pub strips: usize,
    /// Runs of consecutive blocks with equal row masks within strips, summed.
    pub groups: usize,
    /// Bytes of `values`.
    pub value_bytes: usize,
    /// Every other byte: `strips`, `block_col` and `masks`.
    pub index_bytes: usize,
    /// Index bytes CSR would need for the same matrix: `4*nnz + 4*(rows+1)`.
    pub csr_index_bytes: usize,
}

/// One stored block, decoded (for tests, inspection and simple kernels).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockView<'a> {
    /// Block-row index.
    pub strip: usize,
    /// Block-column index.
    pub block_col: usize,
    /// Kept local rows, ascending.
    pub kept_rows: Vec<usize>,
    /// Kept local columns, ascending.
    pub kept_cols: Vec<usize>,
    /// The kept sub-matrix, row-major.
    pub values: &'a [f32],
}

fn bcr_err(message: String) -> ModelError {
    ModelError::Bcr { message }
}

fn write_mask(out: &mut Vec<u8>, mask: u64, nbytes: usize) {
    out.extend_from_slice(&mask.to_le_bytes()[..nbytes]);
}

fn read_mask(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(b)
}

fn bits(mask: u64) -> Vec<usize> {
    (0..64).filter(|&i| mask >> i & 1 == 1).collect()
}

/// Checks `w` against `rows x cols` and the block, and returns the block grid.
/// The kept rows and columns of block `(strip, block_col)` of a row-major
/// `? x cols` matrix as bitmasks: a row or column is kept when it holds a
/// nonzero value. `+0.0` and `-0.0` are both structural zeros: pruning by
/// mask multiplication (numpy `w *= mask`, `torch.nn.utils.prune`) leaves
/// `-0.0` wherever a pruned weight was negative (BCR.md).
fn block_masks(
    w: &[f32],
    cols: usize,
    block: BlockSize,
    strip: usize,
    block_col: usize,
) -> (u64, u64) {
    let rows = w.len() / cols;
    let (r0, c0) = (strip * block.rows, block_col * block.cols);
    let (br, bc) = (block.rows.min(rows - r0), block.cols.min(cols - c0));
    let (mut row_mask, mut col_mask) = (0u64, 0u64);
    for i in 0..br {
        for j in 0..bc {
            if w[(r0 + i) * cols + c0 + j] != 0.0 {
                row_mask |= 1 << i;
                col_mask |= 1 << j;
            }
        }
    }
    (row_mask, col_mask)
}

/// How many values [`Bcrc::pack`] would store for `w` with `block` (kept
/// rows x kept columns, summed over blocks), without building the arrays:
/// what a compiler needs to choose between the BCR and a dense kernel.
pub fn stored_values(
    w: &[f32],
    rows: usize,
    cols: usize,
    block: BlockSize,
) -> Result<usize, ModelError> {
    let (n_strips, n_bcols) = check_matrix(w.len(), rows, cols, block)?;
    let mut stored = 0;
    for s in 0..n_strips {
        for c in 0..n_bcols {
            let (row_mask, col_mask) = block_masks(w, cols, block, s, c);
            stored += (row_mask.count_ones() * col_mask.count_ones()) as usize;
        }
    }
    Ok(stored)
}

/// The counts the cost model needs about `w` packed with `block`
/// ([`crate::cost::BcrShape`]: stored values, blocks, strips, kept rows and
/// columns per block), from one walk over the block masks and without
/// packing. Like [`stored_values`], `+0.0` and `-0.0` are both zeros.
pub fn bcr_shape(
    w: &[f32],
    rows: usize,
    cols: usize,
    block: BlockSize,
) -> Result<crate::cost::BcrShape, ModelError> {
    let (n_strips, n_bcols) = check_matrix(w.len(), rows, cols, block)?;
    let mut shape = crate::cost::BcrShape::empty(block);
    for s in 0..n_strips {
        let blocks_before = shape.blocks;
        for c in 0..n_bcols {
            let (row_mask, col_mask) = block_masks(w, cols, block, s, c);
            if row_mask != 0 {
                shape.add_block(
                    row_mask.count_ones() as usize,
                    col_mask.count_ones() as usize,
                );
            }
        }
        shape.strips += usize::from(shape.blocks > blocks_before);
    }
    Ok(shape)
}

/// `Some((rows, cols))` when every block [`Bcrc::pack`] would store for `w`
/// keeps exactly `rows` of its rows and `cols` of its columns (the kernels
/// then run fixed trip counts); `None` when the counts differ or nothing
/// would be stored. Structured pruning gives this: BCR keeps the same
/// number of rows and columns in each block, unless the matrix edges cut
/// blocks short. Zeros count as in [`stored_values`].
pub fn uniform_counts(
    w: &[f32],
    rows: usize,
    cols: usize,
    block: BlockSize,
) -> Result<Option<(usize, usize)>, ModelError> {
    let (n_strips, n_bcols) = check_matrix(w.len(), rows, cols, block)?;
    let mut counts = None;
    for s in 0..n_strips {
        for c in 0..n_bcols {
            let (row_mask, col_mask) = block_masks(w, cols, block, s, c);
            if row_mask == 0 {
                continue;
            }
            let these = (
                row_mask.count_ones() as usize,
                col_mask.count_ones() as usize,
            );
            match counts {
                None => counts = Some(these),
                Some(first) if first != these => return Ok(None),
                Some(_) => {}
            }
        }
    }
    Ok(counts)
}

fn check_matrix(
    w_len: usize,
    rows: usize,
    cols: usize,
    block: BlockSize,
) -> Result<(usize, usize), ModelError> {
    block.check()?;
    if rows == 0 || cols == 0 {
        return Err(bcr_err(format!(
            "matrix must be non-empty, got {rows}x{cols}"
        )));
    }
    if rows.checked_mul(cols) != Some(w_len) {
        return Err(bcr_err(format!(
            "matrix is {rows}x{cols} but {w_len} values were given"
        )));
    }
    Ok((rows.div_ceil(block.rows), cols.div_ceil(block.cols)))
}

struct PackedBlock {
    col: usize,
    row_mask: u64,
    col_mask: u64,
    values: Vec<f32>,
}

impl Bcrc {
    /// Packs the row-major `rows x cols` matrix `w`, listing work in `order`.
    ///
    /// Lossless: [`Bcrc::unpack`] gives `w` back bit for bit, except that a
    /// pruned `-0.0` (a zero outside every kept row or column) comes back as
    /// `+0.0`. Both zeros are structural (mask-multiplied pruning writes
    /// `-0.0`); a `-0.0` inside a kept sub-matrix is stored as it is. The one
    /// observable difference: a pruned weight times `inf` contributes nothing,
    /// where a dense product would give NaN.
    pub fn pack(
        w: &[f32],
        rows: usize,
        cols: usize,
        block: BlockSize,
        order: Order,
    ) -> Result<Bcrc, ModelError> {
        let (n_strips, n_bcols) = check_matrix(w.len(), rows, cols, block)?;
        if n_bcols - 1 > u16::MAX as usize {
            return Err(bcr_err(format!(
                "{cols} columns make {n_bcols} block columns at block {block}; at most {} fit \
                 the 16-bit block index (use wider blocks)",
                u16::MAX as usize + 1
            )));
        }
        let mut strips_blocks: Vec<(usize, Vec<PackedBlock>)> = Vec::new();
        for s in 0..n_strips {
            let r0 = s * block.rows;
            let mut blocks = Vec::new();
            for c in 0..n_bcols {
                let c0 = c * block.cols;
                let (row_mask, col_mask) = block_masks(w, cols, block, s, c);
                if row_mask == 0 {
                    continue;
                }
                let mut values = Vec::new();
                for i in bits(row_mask) {
                    for j in bits(col_mask) {
                        values.push(w[(r0 + i) * cols + c0 + j]);
                    }
                }
                blocks.push(PackedBlock {
                    col: c,
                    row_mask,
                    col_mask,
                    values,
                });
            }
            if blocks.is_empty() {
                continue;
            }
            if order == Order::Grouped {
                // Groups appear in the order of their first block; sort_by_key is
                // stable, so blocks stay ascending by column inside a group.
                let mut first_seen: Vec<u64> = Vec::new();
                for b in &blocks {
                    if !first_seen.contains(&b.row_mask) {
                        first_seen.push(b.row_mask);
                    }
                }
                blocks.sort_by_key(|b| first_seen.iter().position(|&m| m == b.row_mask));
            }
            strips_blocks.push((s, blocks));
        }
        if order == Order::Grouped {
            // Heaviest strips first (stable): greedy scheduling then balances load.
            strips_blocks.sort_by_key(|(_, blocks)| {
                std::cmp::Reverse(blocks.iter().map(|b| b.values.len()).sum::<usize>())
            });
        }

        let to_u32 = |v: usize, what: &str| {
            u32::try_from(v).map_err(|_| bcr_err(format!("{what} {v} does not fit in u32")))
        };
        let mut out = Bcrc {
            rows,
            cols,
            block,
            order,
            strips: Vec::with_capacity(3 * (strips_blocks.len() + 1)),
            block_col: Vec::new(),
            masks: Vec::new(),
            values: Vec::new(),
        };
        for (s, blocks) in strips_blocks {
            out.strips.push(to_u32(s, "strip index")?);
            out.strips.push(to_u32(out.block_col.len(), "block count")?);
            out.strips.push(to_u32(out.values.len(), "value count")?);
            for b in blocks {
                // Fits: checked against n_bcols above.
                out.block_col.push(b.col as u16);
                write_mask(&mut out.masks, b.row_mask, block.row_mask_bytes());
                write_mask(&mut out.masks, b.col_mask, block.col_mask_bytes());
                out.values.extend_from_slice(&b.values);
            }
        }
        out.strips.push(0);
        out.strips.push(to_u32(out.block_col.len(), "block count")?);
        out.strips.push(to_u32(out.values.len(), "value count")?);
        Ok(out)
    }

    /// Number of stored (non-empty) strips.
    pub fn num_strips(&self) -> usize {
        (self.strips.len() / 3).saturating_sub(1)
    }

    /// Number of stored blocks.
    pub fn num_blocks(&self) -> usize {
        self.block_col.len()
    }

    /// Row and column mask of stored block `b` (0-based, work order).
    pub fn block_masks(&self, b: usize) -> (u64, u64) {
        let stride = self.block.mask_bytes();
        let rm = self.block.row_mask_bytes();
        let m = &self.masks[b * stride..(b + 1) * stride];
        (read_mask(&m[..rm]), read_mask(&m[rm..]))
    }

    /// Checks that the four arrays are consistent with each other and with
    /// the matrix shape. [`Bcrc::pack`] always produces valid data; call this
    /// on data read from elsewhere before [`Bcrc::unpack`] or [`Bcrc::blocks`].
    pub fn validate(&self) -> Result<(), ModelError> {
        let (n_strips, n_bcols) =
            check_matrix(self.rows * self.cols, self.rows, self.cols, self.block)?;
        if self.strips.len() < 3 || self.strips.len() % 3 != 0 {
            return Err(bcr_err(format!(
                "strips has {} entries, expected 3 per strip plus a 3-entry sentinel",
                self.strips.len()
            )));
        }
        let nb = self.block_col.len();
        if self.masks.len() != nb * self.block.mask_bytes() {
            return Err(bcr_err(format!(
                "masks has {} bytes, expected {} for {nb} blocks",
                self.masks.len(),
                nb * self.block.mask_bytes()
            )));
        }
        let recs: Vec<&[u32]> = self.strips.chunks(3).collect();
        let sentinel = recs[recs.len() - 1];
        if sentinel[1] as usize != nb || sentinel[2] as usize != self.values.len() {
            return Err(bcr_err(format!(
                "sentinel {sentinel:?} does not match {nb} blocks and {} values",
                self.values.len()
            )));
        }
        let mut seen = vec![false; n_strips];
        for (k, pair) in recs.windows(2).enumerate() {
            let (s, fb, fv) = (
                pair[0][0] as usize,
                pair[0][1] as usize,
                pair[0][2] as usize,
            );
            let (nb_end, nv_end) = (pair[1][1] as usize, pair[1][2] as usize);
            if s >= n_strips || std::mem::replace(&mut seen[s], true) {
                return Err(bcr_err(format!(
                    "strip record {k}: strip index {s} is out of range or repeated"
                )));
            }
            if fb >= nb_end || nb_end > nb {
                return Err(bcr_err(format!(
                    "strip record {k}: block range {fb}..{nb_end} is empty or out of range"
                )));
            }
            let br = self.block.rows.min(self.rows - s * self.block.rows);
            let mut off = fv;
            for b in fb..nb_end {
                let c = self.block_col[b] as usize;
                if c >= n_bcols {
                    return Err(bcr_err(format!(
                        "block {b}: block column {c} is out of range"
                    )));
                }
                let bc = self.block.cols.min(self.cols - c * self.block.cols);
                let (rm, cm) = self.block_masks(b);
                if rm == 0 || rm >> br != 0 || cm == 0 || cm >> bc != 0 {
                    return Err(bcr_err(format!(
                        "block {b}: masks {rm:#x}/{cm:#x} are empty or exceed the {br}x{bc} block"
                    )));
                }
                off += (rm.count_ones() * cm.count_ones()) as usize;
            }
            if off != nv_end {
                return Err(bcr_err(format!(
                    "strip record {k}: its blocks hold {} values but the next record starts at {nv_end}",
                    off - fv
                )));
            }
        }
        Ok(())
    }

    /// Decodes every stored block in work order.
    ///
    /// # Panics
    /// If the arrays are inconsistent (never for [`Bcrc::pack`] output; use
    /// [`Bcrc::validate`] on untrusted data).
    pub fn blocks(&self) -> Vec<BlockView<'_>> {
        let mut out = Vec::with_capacity(self.block_col.len());
        let recs: Vec<&[u32]> = self.strips.chunks(3).collect();
        for pair in recs.windows(2) {
            let strip = pair[0][0] as usize;
            let mut off = pair[0][2] as usize;
            for b in pair[0][1] as usize..pair[1][1] as usize {
                let (rm, cm) = self.block_masks(b);
                let (kept_rows, kept_cols) = (bits(rm), bits(cm));
                let n = kept_rows.len() * kept_cols.len();
                out.push(BlockView {
                    strip,
                    block_col: self.block_col[b] as usize,
                    kept_rows,
                    kept_cols,
                    values: &self.values[off..off + n],
                });
                off += n;
            }
        }
        out
    }

    /// The dense row-major matrix, exactly as packed (zeros included).
    ///
    /// # Panics
    /// As [`Bcrc::blocks`].
    pub fn unpack(&self) -> Vec<f32> {
        let mut w = vec![0.0f32; self.rows * self.cols];
        for b in self.blocks() {
            let (r0, c0) = (b.strip * self.block.rows, b.block_col * self.block.cols);
            let nc = b.kept_cols.len();
            for (ri, &i) in b.kept_rows.iter().enumerate() {
                for (ci, &j) in b.kept_cols.iter().enumerate() {
                    w[(r0 + i) * self.cols + c0 + j] = b.values[ri * nc + ci];
                }
            }
        }
        w
    }

    /// `Y = W X` computed straight from the packed form, where `X` is
    /// `cols x n` row-major and `Y` is `rows x n`. This is the semantics every
    /// generated kernel must reproduce, written as plainly as possible.
    pub fn matmul(&self, x: &[f32], n: usize) -> Result<Vec<f32>, ModelError> {
        if self.cols.checked_mul(n) != Some(x.len()) {
            return Err(bcr_err(format!(
                "X has {} values, expected {}x{n}",
                x.len(),
                self.cols
            )));
        }
        let mut y = vec![0.0f32; self.rows * n];
        for b in self.blocks() {
            let (r0, c0) = (b.strip * self.block.rows, b.block_col * self.block.cols);
            let nc = b.kept_cols.len();
            for (ri, &i) in b.kept_rows.iter().enumerate() {
                for (ci, &j) in b.kept_cols.iter().enumerate() {
                    let wv = b.values[ri * nc + ci];
                    let xrow = &x[(c0 + j) * n..(c0 + j + 1) * n];
                    let yrow = &mut y[(r0 + i) * n..(r0 + i + 1) * n];
                    for (yv, xv) in yrow.iter_mut().zip(xrow) {
                        *yv += wv * xv;
                    }
                }
            }
        }
        Ok(y)
    }

    /// The values as column panels for matrix-vector kernels, with the strip
    /// records that index them.
    ///
    /// Per stored block, for each kept column (ascending), the block's full
    /// column of `block.rows` values, zeros included for pruned rows and for
    /// the rows a bottom edge strip lacks. A matrix-vector kernel then keeps a
    /// strip's `block.rows` outputs in vector registers across all of its
    /// blocks and needs no row masks at all (BCR.md, "Kernels"). The strip
    /// records are those of [`Bcrc::strips`] with `first_value` counted in
    /// panel values; blocks, columns and masks are unchanged.
    pub fn col_panels(&self) -> (Vec<u32>, Vec<f32>) {
        let mut strips = self.strips.clone();
        let mut values = Vec::new();
        let records = self.strips.len() / 3;
        for record in 0..records {
            strips[3 * record + 2] = values.len() as u32;
            if record + 1 == records {
                break;
            }
            let (first, end) = (
                self.strips[3 * record + 1] as usize,
                self.strips[3 * record + 4] as usize,
            );
            let mut offset = self.strips[3 * record + 2] as usize;
            for b in first..end {
                let (row_mask, col_mask) = self.block_masks(b);
                let (kept_rows, kept_cols) = (bits(row_mask), bits(col_mask));
                for (ci, _) in kept_cols.iter().enumerate() {
                    for i in 0..self.block.rows {
                        let value = kept_rows
                            .iter()
                            .position(|&r| r == i)
                            .map_or(0.0, |ri| self.values[offset + ri * kept_cols.len() + ci]);
                        values.push(value);
                    }
                }
                offset += kept_rows.len() * kept_cols.len();
            }
        }
        (strips, values)
    }

    /// The values as compact column panels for matrix-vector kernels: per
    /// stored block, for each kept column (ascending), the values of the
    /// block's kept rows (ascending), i.e. each block's row-major
    /// sub-matrix transposed. Blocks start where they start in
    /// [`Bcrc::values`], so the strip records are unchanged; a kernel
    /// expands a panel to the block's height with the block's row mask.
    pub fn compact_panels(&self) -> Vec<f32> {
        let mut values = Vec::with_capacity(self.values.len());
        let mut offset = 0;
        for b in 0..self.block_col.len() {
            let (row_mask, col_mask) = self.block_masks(b);
            let (rows, cols) = (bits(row_mask).len(), bits(col_mask).len());
            for c in 0..cols {
                for r in 0..rows {
                    values.push(self.values[offset + r * cols + c]);
                }
            }
            offset += rows * cols;
        }
        values
    }

    /// Size and efficiency figures.
    pub fn stats(&self) -> BcrcStats {
        let nonzeros = self.values.iter().filter(|&&v| v != 0.0).count();
        let stored = self.values.len();
        let mut groups = 0;
        let recs: Vec<&[u32]> = self.strips.chunks(3).collect();
        for pair in recs.windows(2) {
            let mut prev = None;
            for b in pair[0][1] as usize..pair[1][1] as usize {
                let rm = self.block_masks(b).0;
                if prev != Some(rm) {
                    groups += 1;
                    prev = Some(rm);
                }
            }
        }
        BcrcStats {
            stored_values: stored,
            nonzeros,
            fill: if stored == 0 {
                1.0
            } else {
                nonzeros as f64 / stored as f64
            },
            blocks: self.block_col.len(),
            strips: self.num_strips(),
            groups,
            value_bytes: 4 * stored,
            index_bytes: 4 * self.strips.len() + 2 * self.block_col.len() + self.masks.len(),
            csr_index_bytes: 4 * nonzeros + 4 * (self.rows + 1),
        }
    }
}

#[cfg(test)]
mod col_panel_tests {
    use super::*;

    #[test]
    fn col_panels_hold_each_kept_column_of_the_block_with_zero_rows() {
        // 3x4 matrix, one 4x4 block (edge strip of 3 rows): rows 0 and 2, columns 1 and 3 kept.
        let w = vec![0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 4.0];
        let packed = Bcrc::pack(&w, 3, 4, BlockSize::new(4, 4).unwrap(), Order::Natural).unwrap();
        let (strips, values) = packed.col_panels();
        assert_eq!(values, vec![1.0, 0.0, 3.0, 0.0, 2.0, 0.0, 4.0, 0.0]);
        assert_eq!(strips, vec![0, 0, 0, 0, 1, 8]);
    }

    #[test]
    fn compact_panels_are_each_blocks_kept_values_column_by_column() {
        // 4x8 in 4x4 blocks: block 0 keeps rows 0, 2 and columns 1, 3;
        // block 1 keeps rows 1, 2, 3 and column 4.
        let mut w = vec![0.0f32; 32];
        for (r, c, v) in [(0, 1, 1.0), (0, 3, 2.0), (2, 1, 3.0), (2, 3, 4.0)] {
            w[r * 8 + c] = v;
        }
        for (r, v) in [(1, 5.0), (2, 6.0), (3, 7.0)] {
            w[r * 8 + 4] = v;
        }
        let packed = Bcrc::pack(&w, 4, 8, BlockSize::new(4, 4).unwrap(), Order::Natural).unwrap();
        // Row-major per block: [1, 2, 3, 4], [5, 6, 7]; transposed: [1, 3, 2, 4], [5, 6, 7].
        assert_eq!(packed.values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(
            packed.compact_panels(),
            vec![1.0, 3.0, 2.0, 4.0, 5.0, 6.0, 7.0]
        );
    }
}

fn check_keep(name: &str, keep: f64) -> Result<(), ModelError> {
    if !(keep > 0.0 && keep <= 1.0) {
        return Err(bcr_err(format!("{name} must be in (0, 1], got {keep}")));
    }
    Ok(())
}

/// BCR projection keeping `ceil(row_keep * block_rows)` rows and
/// `ceil(col_keep * block_cols)` columns of every block, those of largest
/// squared magnitude ([`crate::projection`] has the rule and where it is
/// exact); the rest become `+0.0`. Edge blocks keep the same fractions of
/// their actual sizes.
pub fn bcr_project(
    w: &mut [f32],
    rows: usize,
    cols: usize,
    block: BlockSize,
    row_keep: f64,
    col_keep: f64,
) -> Result<(), ModelError> {
    check_matrix(w.len(), rows, cols, block)?;
    check_keep("row_keep", row_keep)?;
    check_keep("col_keep", col_keep)?;
    crate::projection::project_fractions(w, rows, cols, block, row_keep, col_keep).map(|_| ())
}

/// A benchmark/test weight in BCR form: each block keeps
/// `ceil(row_keep * rows)` rows and `ceil(col_keep * cols)` columns drawn
/// independently per block from `seed` (patterns shared by all blocks would
/// collapse into one small dense GEMM and flatter kernels), with values
/// uniform in `[-1, 1]` and never zero.
///
/// Keeps are clamped to `[0, 1]`; a block side of 0 is treated as 1.
pub fn random_bcr_weight(
    rows: usize,
    cols: usize,
    block: BlockSize,
    row_keep: f64,
    col_keep: f64,
    seed: u64,
) -> Vec<f32> {
    let (bro, bco) = (block.rows.max(1), block.cols.max(1));
    let (rk, ck) = (row_keep.clamp(0.0, 1.0), col_keep.clamp(0.0, 1.0));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = vec![0.0f32; rows * cols];
    for r0 in (0..rows).step_by(bro) {
        let br = bro.min(rows - r0);
        for c0 in (0..cols).step_by(bco) {
            let bc = bco.min(cols - c0);
            let kept_rows = rand::seq::index::sample(&mut rng, br, keep_count(rk, br));
            let kept_cols = rand::seq::index::sample(&mut rng, bc, keep_count(ck, bc));
            for i in kept_rows.iter() {
                for j in kept_cols.iter() {
                    let mut v = 0.0f32;
                    while v == 0.0 {
                        v = rng.gen_range(-1.0f32..=1.0);
                    }
                    w[(r0 + i) * cols + c0 + j] = v;
                }
            }
        }
    }
    w
}

/// [`random_bcr_weight`]'s pattern pruned the way users prune: a dense
/// random matrix multiplied by the BCR mask (numpy `w *= mask`), so every
/// pruned weight that was negative is `-0.0`. The kept values are those of
/// [`random_bcr_weight`] with the same arguments.
pub fn mask_multiplied_bcr_weight(
    rows: usize,
    cols: usize,
    block: BlockSize,
    row_keep: f64,
    col_keep: f64,
    seed: u64,
) -> Vec<f32> {
    let pattern = random_bcr_weight(rows, cols, block, row_keep, col_keep, seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6d61_736b);
    pattern
        .into_iter()
        .map(|kept| {
            let dense: f32 = rng.gen_range(-1.0f32..=1.0);
            if kept != 0.0 {
                kept
            } else {
                dense * 0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(r: usize, c: usize) -> BlockSize {
        BlockSize::new(r, c).unwrap()
    }

    #[test]
    fn block_size_parse() {
        assert_eq!("8x16".parse::<BlockSize>().unwrap(), b(8, 16));
        assert_eq!(" 4X4 ".parse::<BlockSize>().unwrap(), b(4, 4));
        for bad in ["8", "8x", "x16", "0x16", "8x65", "-1x4", "8x16x2", "axb"] {
            let e = bad.parse::<BlockSize>().unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert_eq!(b(8, 16).to_string(), "8x16");
        assert_eq!(b(9, 16).mask_bytes(), 4);
    }

    #[test]
    fn order_parse() {
        assert_eq!("grouped".parse::<Order>().unwrap(), Order::Grouped);
        assert_eq!("natural".parse::<Order>().unwrap(), Order::Natural);
        assert!("sorted".parse::<Order>().is_err());
        assert_eq!(
            serde_json::to_string(&Order::Grouped).unwrap(),
            "\"grouped\""
        );
    }

    /// A hand-checked layout: 3x5 matrix, block 2x3 (edge blocks 1 row, 2 cols).
    #[test]
    fn layout_by_hand() {
        #[rustfmt::skip]
        let w = [
            0., 2., 0.,   0., 0.,
            0., 0., 3.,   0., 0.,
            0., 0., 0.,   4., 5.,
        ];
        let p = Bcrc::pack(&w, 3, 5, b(2, 3), Order::Natural).unwrap();
        // Strip 0 has block (0,0) only; strip 1 has block (1,1) only.
        assert_eq!(p.strips, vec![0, 0, 0, 1, 1, 4, 0, 2, 6]);
        assert_eq!(p.block_col, vec![0, 1]);
        // Block (0,0): rows {0,1} -> 0b11, cols {1,2} -> 0b110.
        // Block (1,1): row {0} -> 1, cols {0,1} -> 0b11.
        assert_eq!(p.masks, vec![0b11, 0b110, 0b1, 0b11]);
        assert_eq!(p.values, vec![2., 0., 0., 3., 4., 5.]);
        assert_eq!(p.unpack(), w.to_vec());
        let s = p.stats();
        assert_eq!(
            (s.stored_values, s.nonzeros, s.blocks, s.groups),
            (6, 4, 2, 2)
        );
        assert_eq!(s.index_bytes, 9 * 4 + 2 * 2 + 4);
        assert_eq!(s.csr_index_bytes, 4 * 4 + 4 * 4);
        assert!((s.fill - 4.0 / 6.0).abs() < 1e-12);
        p.validate().unwrap();
    }

    #[test]
    fn grouped_order() {
        // One strip (block 2x1 over 2 rows): column masks alternate rows.
        // Natural row masks: col0 r{0}, col1 r{1}, col2 r{0}, col3 r{0,1}, col4 r{1}.
        #[rustfmt::skip]
        let w = [
            1., 0., 2., 3., 0.,
            0., 4., 0., 5., 6.,
            // second strip is heavier: all 5 blocks full
            1., 1., 1., 1., 1.,
            1., 1., 1., 1., 1.,
        ];
        let p = Bcrc::pack(&w, 4, 5, b(2, 1), Order::Grouped).unwrap();
        // Heavier strip 1 (10 values) first, then strip 0 (6 values).
        assert_eq!(p.strips, vec![1, 0, 0, 0, 5, 10, 0, 10, 16]);
        // Strip 0 grouped by first appearance: r{0}: cols 0,2; r{1}: 1,4; r{0,1}: 3.
        assert_eq!(&p.block_col[5..], &[0, 2, 1, 4, 3]);
        assert_eq!(&p.values[10..], &[1., 2., 4., 6., 3., 5.]);
        assert_eq!(p.stats().groups, 1 + 3);
        assert_eq!(p.unpack(), w.to_vec());
        let n = Bcrc::pack(&w, 4, 5, b(2, 1), Order::Natural).unwrap();
        assert_eq!(n.stats().groups, 1 + 5);
        assert_eq!(n.stats().stored_values, p.stats().stored_values);
    }

    #[test]
    fn all_zero_and_errors() {
        let p = Bcrc::pack(&[0.0; 12], 3, 4, b(2, 2), Order::Grouped).unwrap();
        assert_eq!(p.strips, vec![0, 0, 0]);
        assert!(p.values.is_empty() && p.masks.is_empty());
        assert_eq!(p.unpack(), vec![0.0; 12]);
        assert_eq!(p.stats().fill, 1.0);
        assert!(Bcrc::pack(&[0.0; 11], 3, 4, b(2, 2), Order::Natural).is_err());
        assert!(Bcrc::pack(&[], 0, 4, b(2, 2), Order::Natural).is_err());
        let bad = BlockSize { rows: 0, cols: 4 };
        assert!(Bcrc::pack(&[0.0; 12], 3, 4, bad, Order::Natural).is_err());
        // 65537 block columns of width 1 do not fit u16 indices; 65536 do.
        assert!(Bcrc::pack(&vec![0.0; 65537], 1, 65537, b(1, 1), Order::Natural).is_err());
        assert!(Bcrc::pack(&vec![0.0; 65536], 1, 65536, b(1, 1), Order::Natural).is_ok());
    }

    #[test]
    fn validate_catches_corruption() {
        let w = random_bcr_weight(20, 30, b(4, 8), 0.5, 0.5, 1);
        let p = Bcrc::pack(&w, 20, 30, b(4, 8), Order::Grouped).unwrap();
        p.validate().unwrap();
        let mut q = p.clone();
        q.values.pop();
        assert!(q.validate().is_err());
        let mut q = p.clone();
        q.block_col[0] = 9;
        assert!(q.validate().is_err());
        let mut q = p.clone();
        q.masks[0] = 0;
        assert!(q.validate().is_err());
    }

    #[test]
    fn matmul_matches_dense() {
        let (m, k, n) = (13, 21, 3);
        let w = random_bcr_weight(m, k, b(4, 8), 0.5, 0.25, 7);
        let x: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.37).sin()).collect();
        let p = Bcrc::pack(&w, m, k, b(4, 8), Order::Grouped).unwrap();
        let y = p.matmul(&x, n).unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|kk| w[i * k + kk] * x[kk * n + j]).sum();
                assert!((y[i * n + j] - want).abs() < 1e-4);
            }
        }
        assert!(p.matmul(&x[1..], n).is_err());
    }

    #[test]
    fn projection_keeps_the_largest() {
        // One 2x4 block keeping 1 row and 2 columns. By column norm first
        // (c1 = 10, c2 = 5) the best row keeps 10^2; the optimum is row 0
        // with c0 and c1: 1^2 + 10^2.
        #[rustfmt::skip]
        let mut w = [
            1., 10., 0., 0.1,
            0., 0.,  5., 0.,
        ];
        bcr_project(&mut w, 2, 4, b(2, 4), 0.5, 0.5).unwrap();
        assert_eq!(w, [1., 10., 0., 0., 0., 0., 0., 0.]);
        assert!(bcr_project(&mut w, 2, 4, b(2, 4), 0.0, 0.5).is_err());
        assert!(bcr_project(&mut w, 2, 4, b(2, 4), 0.5, 1.5).is_err());
        assert!(bcr_project(&mut w, 2, 3, b(2, 4), 0.5, 0.5).is_err());
    }

    #[test]
    fn projection_bounds_and_8x() {
        let (m, k, blk) = (37, 45, b(8, 16));
        let mut w: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919 % 1000) as f32) / 500.0 - 1.0)
            .collect();
        bcr_project(&mut w, m, k, blk, 0.5, 0.25).unwrap();
        let p = Bcrc::pack(&w, m, k, blk, Order::Natural).unwrap();
        for bv in p.blocks() {
            let br = blk.rows.min(m - bv.strip * blk.rows);
            let bc = blk.cols.min(k - bv.block_col * blk.cols);
            assert!(bv.kept_rows.len() <= keep_count(0.5, br));
            assert!(bv.kept_cols.len() <= keep_count(0.25, bc));
        }
        // Full blocks of 8x16 keep exactly 4x4.
        assert_eq!(p.blocks()[0].values.len(), 16);
    }

    #[test]
    fn mask_multiplied_zeros_are_structural() {
        let block = b(8, 16);
        let w = mask_multiplied_bcr_weight(64, 96, block, 0.5, 0.25, 7);
        let clean = random_bcr_weight(64, 96, block, 0.5, 0.25, 7);
        let negative_zeros = w
            .iter()
            .filter(|v| v.to_bits() == (-0.0f32).to_bits())
            .count();
        assert!(
            negative_zeros > 64 * 96 / 4,
            "{negative_zeros} pruned -0.0 values"
        );
        // The same structure as the +0.0-pruned weight: 4 of 8 rows x 4 of 16
        // columns per block, an eighth of W stored.
        let stored = stored_values(&w, 64, 96, block).unwrap();
        assert_eq!(stored, stored_values(&clean, 64, 96, block).unwrap());
        assert_eq!(stored, 64 * 96 / 8);
        let packed = Bcrc::pack(&w, 64, 96, block, Order::Grouped).unwrap();
        assert_eq!(packed.stats().stored_values, stored);
        assert_eq!(packed.values.len(), stored);
        // Unpacking gives +0.0 at pruned positions, the kept values exactly.
        let back = packed.unpack();
        for (a, c) in back.iter().zip(&clean) {
            assert_eq!(a.to_bits(), c.to_bits());
        }
    }

    #[test]
    fn random_weight_is_seeded_and_bcr() {
        let blk = b(8, 16);
        let w = random_bcr_weight(64, 128, blk, 0.5, 0.25, 42);
        assert_eq!(w, random_bcr_weight(64, 128, blk, 0.5, 0.25, 42));
        assert_ne!(w, random_bcr_weight(64, 128, blk, 0.5, 0.25, 43));
        let p = Bcrc::pack(&w, 64, 128, blk, Order::Natural).unwrap();
        let s = p.stats();
        // Every block keeps exactly 4 rows x 4 cols of nonzeros: 8x compression.
        assert_eq!(s.blocks, 8 * 8);
        assert_eq!(s.nonzeros, 64 * 128 / 8);
        assert_eq!(s.fill, 1.0);
        // BCR.md: index bytes stay under 15% of value bytes at 8x with 8x16.
        assert!(
            (s.index_bytes as f64) < 0.15 * s.value_bytes as f64,
            "{s:?}"
        );
        assert!(s.index_bytes < s.csr_index_bytes);
        // Patterns differ between blocks (drawn independently).
        let masks: std::collections::BTreeSet<_> =
            (0..s.blocks).map(|i| p.block_masks(i)).collect();
        assert!(masks.len() > 10);
    }

    #[test]
    fn uniform_counts_need_every_block_alike() {
        let blk = b(8, 16);
        // 4 of 8 rows and 4 of 16 columns in every block.
        let w = random_bcr_weight(64, 128, blk, 0.5, 0.25, 7);
        assert_eq!(uniform_counts(&w, 64, 128, blk).unwrap(), Some((4, 4)));
        // Blocks of 4x16 hold 1 to 4 of the kept rows.
        assert_eq!(uniform_counts(&w, 64, 128, b(4, 16)).unwrap(), None);
        // A 60-row matrix cuts the last strip's blocks to 4 rows: they keep 2.
        let w = random_bcr_weight(60, 128, blk, 0.5, 0.25, 7);
        assert_eq!(uniform_counts(&w, 60, 128, blk).unwrap(), None);
        // Matrix row 0 pruned as well: the blocks of strip 0 that kept it keep 3.
        let mut w = random_bcr_weight(64, 128, blk, 0.5, 0.25, 7);
        assert!(w[..128].iter().any(|v| *v != 0.0));
        w[..128].fill(0.0);
        assert_eq!(uniform_counts(&w, 64, 128, blk).unwrap(), None);
        // Nothing stored: no counts; a wrong length is an error.
        assert_eq!(
            uniform_counts(&[0.0; 64 * 128], 64, 128, blk).unwrap(),
            None
        );
        assert!(uniform_counts(&[0.0; 10], 64, 128, blk).is_err());
    }
}
