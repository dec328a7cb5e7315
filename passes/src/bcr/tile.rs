//! bcr-tile: tile the output columns of every sparse matrix-matrix product so each strip's working set stays in L1.
//!
//! `bcr.spmm` walks a strip's blocks; for each block it reads its kept
//! activation rows `X[k, :]` and updates the strip's output rows `C[r, :]`.
//! With long rows (a conv's N = H x W = 3136) a block streams whole rows
//! through the cache and the next block finds them evicted. This pass sets
//! `tile_n`: `lower-bcr-to-loops` then walks the strip's blocks once per
//! tile of `tile_n` output columns, so the strip's output tile
//! (`block_rows x tile_n`) and a block's activation panel
//! (`block_cols x tile_n`) stay in L1 while every block of the strip uses
//! them (GRIM, TPAMI 2022, §4.4 "tiling").
//!
//! The default: the largest multiple of `vector_width x vectors` (one
//! register chunk, as bcr-lre chose) with
//! `(block_rows + block_cols) x tile_n x 4 bytes <= l1-bytes / 2`; a product
//! whose N fits already is left untiled. A product that already carries
//! `tile_n` (from the LR file) keeps it. Run it after bcr-lre.
//!
//! Options: `tile-n=N` forces the tile (0 = untiled); `l1-bytes=N` (32768).
//!
//! Before: `"bcr.spmm"(...) {block_cols = 32, block_rows = 32, vector_width = 8, vectors = 2, ...} : (..., memref<1152x3136xf32>, memref<256x3136xf32>)`
//! After:  the same op with `tile_n = 64 : i64`.

use crate::{Pass, PassError, PassOptions};
use grim_dialects::{bcr, shape};
use melior::{
    ir::{
        operation::{OperationLike, OperationRefMut, WalkOrder, WalkResult},
        Module, ValueLike,
    },
    Context,
};

/// Pipeline flag.
pub const FLAG: &str = "bcr-tile";
/// One-line summary.
pub const SUMMARY: &str = "tile the output columns of every sparse matrix-matrix product so each strip's working set stays in L1";
/// Accepted options.
pub const OPTIONS: &[&str] = &["tile-n=N output columns per tile, 0 = untiled (from l1-bytes)", "l1-bytes=N L1 data cache bytes (32768)"];

/// The pass object.
pub struct BcrTile {
    tile_n: Option<i64>,
    l1_bytes: i64,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_known(FLAG, &["tile-n", "l1-bytes"])?;
    let tile_n = match options.string("tile-n") {
        None => None,
        Some(_) => Some(options.int(FLAG, "tile-n", 0)?),
    };
    if tile_n.is_some_and(|t| t < 0) {
        return Err(PassError::Option { pass: FLAG.into(), message: "tile-n must be >= 0".into() });
    }
    let l1_bytes = options.int(FLAG, "l1-bytes", 32768)?;
    if l1_bytes < 1024 {
        return Err(PassError::Option { pass: FLAG.into(), message: format!("l1-bytes must be at least 1024, got {l1_bytes}") });
    }
    Ok(Box::new(BcrTile { tile_n, l1_bytes }))
}

impl BcrTile {
    /// The tile for one product (0 = untiled): a multiple of `chunk` columns.
    pub fn choose(&self, block_rows: i64, block_cols: i64, chunk: i64, n: i64) -> i64 {
        let chunk = chunk.max(1);
        let tile = match self.tile_n {
            Some(forced) => forced / chunk * chunk,
            None => (self.l1_bytes / 2) / (4 * (block_rows + block_cols)) / chunk * chunk,
        };
        if tile <= 0 || tile >= n {
            0
        } else {
            tile
        }
    }
}

impl Pass for BcrTile {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let mut products = Vec::new();
        module.as_operation().walk(WalkOrder::PreOrder, |op| {
            if op.name().as_string_ref().as_str() == Ok(bcr::SPMM) && !op.has_attribute(bcr::TILE_N_ATTR) {
                products.push(op.to_raw());
            }
            WalkResult::Advance
        });
        for raw in products {
            // SAFETY: collected above and still alive.
            let mut op = unsafe { OperationRefMut::from_raw(raw) };
            let Some(product) = bcr::sparse_product(&op) else { continue };
            let n = shape::static_shape(product.c.r#type()).and_then(|s| s.get(1).copied()).unwrap_or(1);
            let tile = self.choose(product.block_rows, product.block_cols, product.vector_width * product.vectors, n);
            if tile > 0 {
                bcr::set_int(&mut op, context, bcr::TILE_N_ATTR, tile);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_fit_half_of_l1_and_are_whole_register_chunks() {
        let pass = BcrTile { tile_n: None, l1_bytes: 32768 };
        // 32x32 blocks: 16384 / (4 * 64) = 64 columns.
        assert_eq!(pass.choose(32, 32, 16, 3136), 64);
        // 8x16 blocks: 16384 / 96 = 170 -> 160 (multiple of 16).
        assert_eq!(pass.choose(8, 16, 16, 3136), 160);
        // N that fits is left alone.
        assert_eq!(pass.choose(8, 16, 16, 128), 0);
        let forced = BcrTile { tile_n: Some(100), l1_bytes: 32768 };
        assert_eq!(forced.choose(8, 16, 16, 3136), 96);
        assert_eq!(BcrTile { tile_n: Some(0), l1_bytes: 32768 }.choose(8, 16, 16, 3136), 0);
    }
}
