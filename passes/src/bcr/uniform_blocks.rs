//! bcr-uniform-blocks: record on each packed weight whose stored blocks all keep the same number of rows and columns those two counts.
//!
//! BCR pruning keeps the same number of rows and columns in every block
//! (GRIM's projection does, and so does a user's `w *= mask` with a
//! balanced mask), so the trip counts of the sparse walk are the same for
//! every block. This pass reads each `bcr.packed`'s weight and, when every
//! block the packer will store keeps exactly `r` rows and `c` columns
//! (`grim_model::bcrc::uniform_counts`, with the packer's zeros: `+0.0`
//! and `-0.0` alike), sets `kept_rows = r` and `kept_cols = c` on it.
//! `lower-bcr-to-loops` then emits the walk of those products with
//! constant trip counts (the kept-row tiles, the loop over kept columns
//! and the mask decoding unroll) and an activation prefetch, versioned on
//! each block's own counts so that a blob other than the compiled one
//! (`--emit weights`) still runs correctly, on the counted walk. Measured
//! on the 1536x1536 gemm on a batch of 64 pruned 4 of 8 rows x 4 of 16
//! columns (Zen 3, AVX2): 20% fewer instructions (cachegrind) and about 20%
//! less time (docs/benchmarks/analysis.md).
//!
//! What it does not do: it does not change the blob or the values (the
//! counts are a fact about the weight, which the packer checks when it
//! lays out the blob: a `bcr.packed` whose `kept_rows`/`kept_cols` the
//! weight does not have is an error there, not a wrong kernel), and it
//! leaves a weight whose counts differ between blocks alone — the edge
//! blocks of a matrix the block size does not divide usually do. An
//! existing `kept_rows`/`kept_cols` is recomputed, not trusted.
//!
//! Before: `%s:4 = "bcr.packed"(%blob) {block_rows = 8, block_cols = 16, ...}`
//! After:  `%s:4 = "bcr.packed"(%blob) {block_rows = 8, block_cols = 16, kept_cols = 4, kept_rows = 4, ...}`

use crate::{collect_ops, op_error, op_name, Pass, PassError, PassOptions};
use grim_dialects::bcr;
use grim_model::bcrc::{uniform_counts, BlockSize};
use melior::{
    ir::{
        operation::{OperationMutLike, OperationRef, OperationRefMut},
        Module,
    },
    Context,
};

/// Pipeline flag.
pub const FLAG: &str = "bcr-uniform-blocks";
/// One-line summary.
pub const SUMMARY: &str = "record on each packed weight whose stored blocks all keep the same number of rows and columns those two counts";
/// Accepted options.
pub const OPTIONS: &[&str] = &[];

/// The pass object.
pub struct BcrUniformBlocks;

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    Ok(Box::new(BcrUniformBlocks))
}

impl Pass for BcrUniformBlocks {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        for raw in collect_ops(module, |op| op_name(op) == bcr::PACKED) {
            // SAFETY: the op was found in the module above and is still alive.
            let op = unsafe { OperationRef::from_raw(raw) };
            let counts = counts_of(&op)?;
            // SAFETY: as above; no other reference to the op is used while it changes.
            let mut op = unsafe { OperationRefMut::from_raw(raw) };
            match counts {
                Some((rows, cols)) => bcr::set_kept(&mut op, context, rows, cols),
                None => {
                    op.remove_attribute(bcr::KEPT_ROWS_ATTR).ok();
                    op.remove_attribute(bcr::KEPT_COLS_ATTR).ok();
                }
            }
        }
        Ok(())
    }
}

/// The uniform counts of one `bcr.packed`'s weight.
fn counts_of(op: &OperationRef) -> Result<Option<(i64, i64)>, PassError> {
    let info = bcr::packed_info(op).ok_or_else(|| op_error(op, "malformed bcr.packed"))?;
    let values = bcr::weight_value(op)
        .and_then(grim_dialects::weights::read)
        .ok_or_else(|| op_error(op, format!("weight '{}' has no values", info.name)))?;
    let block = BlockSize::new(info.block_rows as usize, info.block_cols as usize)
        .map_err(|e| op_error(op, e))?;
    let counts = uniform_counts(&values, info.rows as usize, info.cols as usize, block)
        .map_err(|e| op_error(op, format!("weight '{}': {e}", info.name)))?;
    Ok(counts.map(|(rows, cols)| (rows as i64, cols as i64)))
}
