//! BCR projection: the nearest BCR-structured matrix to a weight matrix.
//!
//! Given a block size and, per block, how many rows `kr` and columns `kc`
//! survive, the projection keeps in every block the `kr x kc` sub-matrix of
//! largest squared (Frobenius) magnitude and sets everything else to `+0.0`.
//! That is the Euclidean projection onto the BCR set, which is what ADMM's
//! Z-step needs (`grimc prune`) and what the zoo uses to make pruned models.
//!
//! ## The rule inside one block
//!
//! Choosing rows and columns together is a bipartite selection problem with
//! no known polynomial algorithm, but each half is easy: for a fixed set of
//! rows, the best columns are the `kc` of largest squared sum over those
//! rows (and symmetrically). So:
//!
//! - when a side is kept whole (`kr = rows` or `kc = cols`), the other side's
//!   top-k is **exact**;
//! - else, when one side has at most [`EXACT_SUBSETS`] subsets of its kept
//!   size (8 choose 4 = 70 for the 8x16 blocks grim defaults to), every
//!   subset of that side is tried with the other side's top-k: **exact**;
//! - else alternating maximisation from the column-norm start (columns by
//!   norm, rows by norm over them, then columns again, ...), which never
//!   decreases the kept magnitude and stops at a fixed point: a local optimum,
//!   reported as not exact ([`Projection::exact_blocks`]).
//!
//! Ties go to the lower index, so the result is deterministic.
//!
//! ## How a rate becomes kept rows and columns
//!
//! A rate `R` asks every block of `rows x cols` values to keep `t =
//! rows * cols / R`. [`split_rate`] picks the `(kr, kc)` minimising
//! `|ln(kr kc / t)| + 0.1 |ln(row_keep / col_keep)|`, ties to more kept rows:
//! the kept count as close to `t` as the block allows, and among near-equal
//! counts the more balanced split (balanced splits keep more of a matrix's
//! magnitude than a sliver of rows or columns, and keep enough rows for the
//! kernels' vectors). 8x16 blocks: rate 4 keeps 4x8, rate 8 4x4, rate 10 3x4
//! (10.7x), rate 16 2x4. Edge blocks keep `ceil(keep * side)` of each side.

use crate::bcrc::BlockSize;
use crate::error::ModelError;

/// Subsets of one side a block may try for an exact selection.
pub const EXACT_SUBSETS: u64 = 2048;

/// How many rows and columns each full block keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Kept rows per full block.
    pub rows: usize,
    /// Kept columns per full block.
    pub cols: usize,
}

impl Keep {
    /// The kept rows as a fraction of the block's rows.
    pub fn row_keep(&self, block: BlockSize) -> f64 {
        self.rows as f64 / block.rows as f64
    }

    /// The kept columns as a fraction of the block's columns.
    pub fn col_keep(&self, block: BlockSize) -> f64 {
        self.cols as f64 / block.cols as f64
    }

    /// Kept rows of an edge block of `rows` (the same fraction, rounded up).
    fn rows_of(&self, block: BlockSize, rows: usize) -> usize {
        keep_count(self.row_keep(block), rows).max(1)
    }

    /// Kept columns of an edge block of `cols`.
    fn cols_of(&self, block: BlockSize, cols: usize) -> usize {
        keep_count(self.col_keep(block), cols).max(1)
    }
}

/// What a projection did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    /// Values kept (nonzero or not).
    pub kept: usize,
    /// Values of the matrix.
    pub total: usize,
    /// Blocks whose selection is provably optimal.
    pub exact_blocks: usize,
    /// Blocks of the matrix.
    pub blocks: usize,
    /// Squared magnitude kept, as a fraction of the matrix's (1 for a zero
    /// matrix).
    pub magnitude_kept: f64,
}

/// The `(kr, kc)` a rate asks of a full block (module docs: the rule).
pub fn split_rate(block: BlockSize, rate: f64) -> Result<Keep, ModelError> {
    block.check()?;
    if !(rate.is_finite() && rate >= 1.0) {
        return Err(ModelError::Bcr {
            message: format!("the pruning rate must be a number >= 1, got {rate}"),
        });
    }
    let (br, bc) = (block.rows as f64, block.cols as f64);
    let target = br * bc / rate;
    let mut best: Option<(f64, Keep)> = None;
    for kr in 1..=block.rows {
        for kc in 1..=block.cols {
            let count = (kr * kc) as f64;
            let balance = ((kr as f64 / br) / (kc as f64 / bc)).ln().abs();
            let score = (count / target).ln().abs() + 0.1 * balance;
            // Equal scores (within float noise) go to more kept rows.
            let better = match best {
                None => true,
                Some((s, k)) => score < s - 1e-12 || (score <= s + 1e-12 && kr > k.rows),
            };
            if better {
                best = Some((score, Keep { rows: kr, cols: kc }));
            }
        }
    }
    Ok(best.map(|(_, k)| k).unwrap_or(Keep { rows: 1, cols: 1 }))
}

/// Values [`project`] keeps of a `rows x cols` matrix (edge blocks
/// included), without projecting.
pub fn kept_count(rows: usize, cols: usize, block: BlockSize, keep: Keep) -> usize {
    let mut kept = 0;
    for r0 in (0..rows).step_by(block.rows.max(1)) {
        let kr = keep.rows_of(block, block.rows.min(rows - r0));
        for c0 in (0..cols).step_by(block.cols.max(1)) {
            kept += kr * keep.cols_of(block, block.cols.min(cols - c0));
        }
    }
    kept
}

/// `ceil(keep * n)` clamped to `0..=n`, tolerant of float noise such as
/// `0.3 * 10 = 3.0000000000000004`.
pub(crate) fn keep_count(keep: f64, n: usize) -> usize {
    ((keep * n as f64 - 1e-9).ceil().max(0.0) as usize).min(n)
}

/// Projects the row-major `rows x cols` matrix `w` onto BCR with `block`
/// keeping `keep` per full block: pruned values become `+0.0`.
pub fn project(
    w: &mut [f32],
    rows: usize,
    cols: usize,
    block: BlockSize,
    keep: Keep,
) -> Result<Projection, ModelError> {
    block.check()?;
    if !(1..=block.rows).contains(&keep.rows) || !(1..=block.cols).contains(&keep.cols) {
        return Err(ModelError::Bcr {
            message: format!(
                "a {block} block cannot keep {} rows and {} columns",
                keep.rows, keep.cols
            ),
        });
    }
    project_fractions(
        w,
        rows,
        cols,
        block,
        keep.row_keep(block),
        keep.col_keep(block),
    )
}

/// [`project`] keeping, in every block of `r x c` values (edge blocks
/// included), `ceil(row_keep * r)` rows and `ceil(col_keep * c)` columns
/// (at least one of each).
pub(crate) fn project_fractions(
    w: &mut [f32],
    rows: usize,
    cols: usize,
    block: BlockSize,
    row_keep: f64,
    col_keep: f64,
) -> Result<Projection, ModelError> {
    block.check()?;
    if rows == 0 || cols == 0 || rows.checked_mul(cols) != Some(w.len()) {
        return Err(ModelError::Bcr {
            message: format!("matrix is {rows}x{cols} but {} values were given", w.len()),
        });
    }
    let total_sq: f64 = w.iter().map(|&v| (v as f64).powi(2)).sum();
    let mut out = Projection {
        kept: 0,
        total: w.len(),
        exact_blocks: 0,
        blocks: 0,
        magnitude_kept: 0.0,
    };
    let mut kept_sq = 0.0;
    let mut sq = Vec::with_capacity(block.rows * block.cols);
    for r0 in (0..rows).step_by(block.rows) {
        let br = block.rows.min(rows - r0);
        for c0 in (0..cols).step_by(block.cols) {
            let bc = block.cols.min(cols - c0);
            sq.clear();
            for i in 0..br {
                let row = &w[(r0 + i) * cols + c0..][..bc];
                sq.extend(row.iter().map(|&v| (v as f64).powi(2)));
            }
            let kr = keep_count(row_keep, br).max(1);
            let kc = keep_count(col_keep, bc).max(1);
            let s = select(&sq, br, bc, kr, kc);
            out.blocks += 1;
            out.exact_blocks += s.exact as usize;
            out.kept += kr * kc;
            kept_sq += s.value;
            for i in 0..br {
                for j in 0..bc {
                    if s.rows >> i & 1 == 0 || s.cols >> j & 1 == 0 {
                        w[(r0 + i) * cols + c0 + j] = 0.0;
                    }
                }
            }
        }
    }
    out.magnitude_kept = if total_sq > 0.0 {
        kept_sq / total_sq
    } else {
        1.0
    };
    Ok(out)
}

/// One block's choice: bit `i` of `rows` keeps row `i`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Selection {
    pub(crate) rows: u64,
    pub(crate) cols: u64,
    /// The kept squared magnitude.
    pub(crate) value: f64,
    /// Provably optimal.
    pub(crate) exact: bool,
}

/// The best `kr x kc` sub-matrix of the `br x bc` block of squared values
/// `sq` (row-major), by the module's rule.
pub(crate) fn select(sq: &[f64], br: usize, bc: usize, kr: usize, kc: usize) -> Selection {
    let row_sums = |cols: u64| -> Vec<f64> {
        (0..br)
            .map(|i| {
                (0..bc)
                    .filter(|j| cols >> j & 1 == 1)
                    .map(|j| sq[i * bc + j])
                    .sum()
            })
            .collect()
    };
    let col_sums = |rows: u64| -> Vec<f64> {
        (0..bc)
            .map(|j| {
                (0..br)
                    .filter(|i| rows >> i & 1 == 1)
                    .map(|i| sq[i * bc + j])
                    .sum()
            })
            .collect()
    };
    let all = |n: usize| if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    let value_of = |rows: u64, cols: u64| -> f64 {
        let mut v = 0.0;
        for i in (0..br).filter(|i| rows >> i & 1 == 1) {
            for j in (0..bc).filter(|j| cols >> j & 1 == 1) {
                v += sq[i * bc + j];
            }
        }
        v
    };
    let finish = |rows: u64, cols: u64, exact: bool| Selection {
        rows,
        cols,
        value: value_of(rows, cols),
        exact,
    };
    if kr == br {
        let rows = all(br);
        return finish(rows, top_k(&col_sums(rows), kc), true);
    }
    if kc == bc {
        let cols = all(bc);
        return finish(top_k(&row_sums(cols), kr), cols, true);
    }
    let row_subsets = binomial(br as u64, kr as u64);
    let col_subsets = binomial(bc as u64, kc as u64);
    let by_rows = row_subsets <= col_subsets;
    let side = if by_rows { br } else { bc };
    if row_subsets.min(col_subsets) <= EXACT_SUBSETS && side < 64 {
        let mut best: Option<Selection> = None;
        let (n, k) = if by_rows { (br, kr) } else { (bc, kc) };
        for subset in Subsets::new(n, k) {
            let (rows, cols) = if by_rows {
                (subset, top_k(&col_sums(subset), kc))
            } else {
                (top_k(&row_sums(subset), kr), subset)
            };
            let s = finish(rows, cols, true);
            if best.is_none_or(|b| s.value > b.value) {
                best = Some(s);
            }
        }
        if let Some(b) = best {
            return b;
        }
    }
    // Alternating maximisation: each half-step is optimal given the other
    // side, so the kept value never decreases; stop at a fixed point.
    let mut cols = top_k(&col_sums(all(br)), kc);
    let mut rows = top_k(&row_sums(cols), kr);
    let mut value = value_of(rows, cols);
    for _ in 0..64 {
        let c = top_k(&col_sums(rows), kc);
        let r = top_k(&row_sums(c), kr);
        let v = value_of(r, c);
        if v <= value {
            break;
        }
        (rows, cols, value) = (r, c, v);
    }
    Selection {
        rows,
        cols,
        value,
        exact: false,
    }
}

/// The `k` largest scores as a bit set (ties: lower index first).
fn top_k(scores: &[f64], k: usize) -> u64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx[..k.min(idx.len())].iter().fold(0, |m, &i| m | 1 << i)
}

/// `n choose k`, saturating.
fn binomial(n: u64, k: u64) -> u64 {
    let k = k.min(n - k);
    let mut c: u64 = 1;
    for i in 0..k {
        c = c.saturating_mul(n - i) / (i + 1);
    }
    c
}

/// The `k`-element subsets of `0..n` as bit sets, in increasing order
/// (Gosper's hack).
pub(crate) struct Subsets {
    next: Option<u64>,
    limit: u64,
}

impl Subsets {
    pub(crate) fn new(n: usize, k: usize) -> Subsets {
        debug_assert!(n < 64 && k <= n);
        Subsets {
            next: Some((1u64 << k) - 1),
            limit: 1u64 << n,
        }
    }
}

impl Iterator for Subsets {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let cur = self.next?;
        if cur >= self.limit {
            self.next = None;
            return None;
        }
        self.next = if cur == 0 {
            None
        } else {
            let c = cur & cur.wrapping_neg();
            let r = cur + c;
            Some((((r ^ cur) >> 2) / c) | r)
        };
        Some(cur)
    }
}

#[cfg(test)]
mod tests;
