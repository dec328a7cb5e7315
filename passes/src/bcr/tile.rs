//! bcr-tile: tile the output columns of every sparse matrix-matrix product, and block dense ones over M, N and K, so each working set stays in cache.
//!
//! `bcr.spmm` walks a strip's blocks; for each block it reads its kept
//! activation rows `X[k, :]` and updates the strip's output rows `C[r, :]`.
//! With long rows (a conv's N = H x W = 3136) a block streams whole rows
//! through the cache and the next block finds them evicted. This pass sets
//! `tile_n`: `lower-bcr-to-loops` then walks the strip's blocks once per
//! tile of `tile_n` output columns, so the strip's output tile
//! (`block_rows x tile_n`) and a block's activation panel
//! (`block_cols x tile_n`) stay in cache while every block of the strip
//! uses them (GRIM, TPAMI 2022, §4.4 "tiling").
//!
//! The default: the largest multiple of `vector_width x vectors` (one
//! register chunk, as bcr-lre chose) with
//! `(block_rows + block_cols) x tile_n x 4 bytes <= cache-bytes` (default
//! 256 KiB, half of a Zen 3 or Cortex-A76 L2); a product whose N fits is
//! left untiled. Measured on vgg16.conv3_1 (N = 3136, 32x32 blocks): a
//! dense matrix runs 25% faster tiled by 1024 than untiled, while at 8x
//! sparsity tiles smaller than about 1024 lose to untiled (each tile decodes
//! every block again, and a sparse block touches few rows), so the budget is
//! L2-, not L1-sized. A product that already carries `tile_n` (from the LR
//! file) keeps it. Run it after bcr-lre.
//!
//! A dense matrix product (`bcr.gemm` with a `[K, N]` input) is blocked
//! the way GotoBLAS blocks GEMM, by a small analytical model of the caches
//! (no search): `tile_k` = min(K, 256) columns of W, so a register tile's
//! weight panel (`register_tile x tile_k`, 4 KiB at 4 rows) stays in L1 for
//! every chunk of N; `tile_n` = the largest multiple of the register chunk
//! with `tile_k x tile_n x 4 <= cache-bytes`, so the activation block stays
//! in L2 while every panel of the work item uses it; `tile_m` = the rows of
//! one parallel work item. With at least four N tiles the work items are
//! the N tiles, each over all of M (`tile_m` = M rounded up to whole
//! panels): every activation is then copied into the packed block once and
//! W streams from the outer caches once per tile. Otherwise an item is a
//! quarter of M (at least one panel, at most 128 rows, so its
//! `tile_m x tile_k` weights take at most half the budget), which gives the
//! thread pool at least four items and re-reads the activations at most
//! M / tile_m times. A matrix-vector product needs no
//! cache blocking (its activation vector is small) and is left alone.
//!
//! A sparse product that reads an image in place (implicit im2col) walks
//! whole output rows, so its tile is rounded down to whole rows (at least one).
//!
//! A sparse product over a matrix (an activation or explicit patch matrix
//! `X[K, N]`) whose `X` is larger than [`PANEL_BUDGET`] budgets (4 x
//! cache-bytes, 1 MiB) is also tiled so that one tile's panel of every
//! row, `K x tile_n x 4` bytes, fits that budget (at least one register
//! chunk): the lowering walks such products tile-major (all strips over
//! one panel before the next), so the panel stays in L2 while every strip
//! reads it. Measured on a 512 x 4608 x 784 8x16 conv (ResNet stage at
//! 28 x 28, Sapphire Rapids, AVX-512): untiled 20.6-21.0 ms for the stage,
//! tile 64 tile-major 15.5-16.3 ms; at 256 channels 9.5-10.1 ms against
//! 7.7-8.0 ms. An image read in place loses with such tiles (a 56 x 56
//! stage: 16.5 ms untiled, 19.3-22.5 ms at 64-128), so it keeps the rule
//! above.
//!
//! Options: `tile-n=N` forces the tile (0 = untiled); `cache-bytes=N` (262144).
//!
//! Before: `"bcr.spmm"(...) {block_cols = 32, block_rows = 32, vector_width = 8, vectors = 2, ...} : (..., memref<1152x3136xf32>, memref<256x3136xf32>)`
//! After:  the same op with `tile_n = 1024 : i64`.

use crate::{collect_ops, op_name, Pass, PassError, PassOptions};
use grim_dialects::{bcr, shape};
use melior::{
    ir::{
        operation::{OperationLike, OperationRefMut},
        Module, ValueLike,
    },
    Context,
};

/// Pipeline flag.
pub const FLAG: &str = "bcr-tile";
/// One-line summary.
pub const SUMMARY: &str = "tile the output columns of every sparse matrix-matrix product, and block dense ones over M, N and K, so each working set stays in cache";
/// Accepted options.
pub const OPTIONS: &[&str] = &[
    "tile-n=N output columns per tile, 0 = untiled (from cache-bytes)",
    "cache-bytes=N working-set budget per strip and tile (262144)",
];

/// The pass object.
pub struct BcrTile {
    tile_n: Option<i64>,
    cache_bytes: i64,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    let tile_n = match options.string("tile-n") {
        None => None,
        Some(_) => Some(options.int(FLAG, "tile-n", 0)?),
    };
    if tile_n.is_some_and(|t| t < 0) {
        return Err(PassError::Option {
            pass: FLAG.into(),
            message: "tile-n must be >= 0".into(),
        });
    }
    let cache_bytes = options.int(FLAG, "cache-bytes", 262144)?;
    if cache_bytes < 1024 {
        return Err(PassError::Option {
            pass: FLAG.into(),
            message: format!("cache-bytes must be at least 1024, got {cache_bytes}"),
        });
    }
    Ok(Box::new(BcrTile {
        tile_n,
        cache_bytes,
    }))
}

/// Activation panels per cache budget: a matrix product's tile-major panel
/// (`K x tile_n x 4` bytes) may take this many `cache-bytes` (about half of
/// a 2 MiB L2; on a 512 KiB L2 the panel comes from L3, still once per
/// tile rather than once per strip).
pub const PANEL_BUDGET: i64 = 4;

impl BcrTile {
    /// The tile of a sparse product over a `k x n` matrix (0 = untiled):
    /// the strip rule of [`BcrTile::choose`], or, when the matrix exceeds
    /// the panel budget, the largest whole number of register chunks whose
    /// `k`-row panel fits it (at least one chunk), whichever is smaller.
    pub fn choose_matrix(
        &self,
        block_rows: i64,
        block_cols: i64,
        chunk: i64,
        k: i64,
        n: i64,
    ) -> i64 {
        let strip = self.choose(block_rows, block_cols, chunk, n);
        if self.tile_n.is_some() {
            return strip;
        }
        let chunk = chunk.max(1);
        let budget = PANEL_BUDGET * self.cache_bytes;
        if 4 * k * n <= budget {
            return strip;
        }
        let panel = (budget / (4 * k.max(1)) / chunk * chunk).max(chunk);
        let tile = if strip > 0 { strip.min(panel) } else { panel };
        if tile >= n {
            0
        } else {
            tile
        }
    }

    /// The tile for one product (0 = untiled): a multiple of `chunk` columns.
    pub fn choose(&self, block_rows: i64, block_cols: i64, chunk: i64, n: i64) -> i64 {
        let chunk = chunk.max(1);
        let tile = match self.tile_n {
            Some(forced) => forced / chunk * chunk,
            None => self.cache_bytes / (4 * (block_rows + block_cols)) / chunk * chunk,
        };
        if tile <= 0 || tile >= n {
            0
        } else {
            tile
        }
    }
}

/// Reduction depth of a dense block.
pub const DENSE_TILE_K: i64 = 256;
/// N tiles from which a dense product's work items are N tiles (all rows
/// each) rather than groups of rows.
pub const DENSE_MIN_N_ITEMS: i64 = 4;
/// Most rows of a dense work item.
pub const DENSE_MAX_TILE_M: i64 = 128;

impl BcrTile {
    /// `(tile_m, tile_n, tile_k)` of a dense `m x k` by `k x n` product whose
    /// register tile is `rows` x `chunk` columns (0 = not blocked).
    pub fn choose_dense(&self, m: i64, k: i64, n: i64, rows: i64, chunk: i64) -> (i64, i64, i64) {
        let (rows, chunk) = (rows.max(1), chunk.max(1));
        let tile_k = k.min(DENSE_TILE_K);
        let tile_n = match self.tile_n {
            Some(forced) => forced / chunk * chunk,
            None => (self.cache_bytes / (4 * tile_k)).max(chunk) / chunk * chunk,
        };
        let tile_n = if tile_n <= 0 || tile_n >= n {
            0
        } else {
            tile_n
        };
        let n_tiles = if tile_n > 0 {
            (n + tile_n - 1) / tile_n
        } else {
            1
        };
        // Even out the N tiles (work items), so the last one is not a sliver
        // that leaves a thread idle: 784 in tiles of 240 is 240, 240, 240, 64;
        // in tiles of 216 it is 216, 216, 216, 136.
        let tile_n = if self.tile_n.is_none() && n_tiles >= DENSE_MIN_N_ITEMS {
            ((n + n_tiles - 1) / n_tiles + chunk - 1) / chunk * chunk
        } else {
            tile_n
        };
        let tile_m = if n_tiles >= DENSE_MIN_N_ITEMS {
            // Enough N tiles to share out: one item per N tile over all rows.
            (m + rows - 1) / rows * rows
        } else {
            let quarter = (m / 4 + rows - 1) / rows * rows;
            quarter.clamp(rows, (DENSE_MAX_TILE_M / rows * rows).max(rows))
        };
        (tile_m, tile_n, if tile_k >= k { 0 } else { tile_k })
    }
}

impl Pass for BcrTile {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let dense = collect_ops(module, |op| {
            op_name(op) == bcr::GEMM && !op.has_attribute(bcr::TILE_M_ATTR)
        });
        for raw in dense {
            // SAFETY: collected above and still alive.
            let mut op = unsafe { OperationRefMut::from_raw(raw) };
            let Some(product) = bcr::dense_product(&op) else {
                continue;
            };
            let (Some(x), Some(c)) = (
                shape::static_shape(product.x.r#type()),
                shape::static_shape(product.c.r#type()),
            ) else {
                continue;
            };
            // An image read through its patch matrix has K = C * kh * kw.
            let (k, n) = match (bcr::im2col_of(&op), &x[..], c.get(1)) {
                (Some(patch), [channels, _, _], Some(n)) => (channels * patch.kh * patch.kw, *n),
                (None, [k, n], _) => (*k, *n),
                _ => continue,
            };
            let (tile_m, tile_n, tile_k) = self.choose_dense(
                c[0],
                k,
                n,
                product.register_tile,
                product.vector_width * product.vectors,
            );
            bcr::set_int(&mut op, context, bcr::TILE_M_ATTR, tile_m);
            if tile_n > 0 && !op.has_attribute(bcr::TILE_N_ATTR) {
                bcr::set_int(&mut op, context, bcr::TILE_N_ATTR, tile_n);
            }
            if tile_k > 0 {
                bcr::set_int(&mut op, context, bcr::TILE_K_ATTR, tile_k);
            }
        }
        let products = collect_ops(module, |op| {
            op_name(op) == bcr::SPMM && !op.has_attribute(bcr::TILE_N_ATTR)
        });
        for raw in products {
            // SAFETY: collected above and still alive.
            let mut op = unsafe { OperationRefMut::from_raw(raw) };
            let Some(product) = bcr::sparse_product(&op) else {
                continue;
            };
            let n = shape::static_shape(product.c.r#type())
                .and_then(|s| s.get(1).copied())
                .unwrap_or(1);
            let chunk = product.vector_width * product.vectors;
            // A product reading an image in place walks whole output rows:
            // its tiles are whole rows too.
            let image = bcr::im2col_of(&op)
                .zip(shape::static_shape(product.x.r#type()))
                .and_then(|(patch, image)| patch.output(&image));
            let row = image.map_or(1, |(_, _, wo)| wo);
            let tile = match (image, shape::static_shape(product.x.r#type())) {
                (None, Some(x)) if x.len() == 2 => {
                    self.choose_matrix(product.block_rows, product.block_cols, chunk, x[0], n)
                }
                _ => self.choose(product.block_rows, product.block_cols, chunk, n),
            };
            let tile = if tile > 0 && row > 1 {
                (tile / row).max(1) * row
            } else {
                tile
            };
            if tile > 0 && tile < n {
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
    fn tiles_fit_the_budget_and_are_whole_register_chunks() {
        let pass = BcrTile {
            tile_n: None,
            cache_bytes: 262144,
        };
        // 32x32 blocks: 262144 / (4 * 64) = 1024 columns.
        assert_eq!(pass.choose(32, 32, 16, 3136), 1024);
        // 8x16 blocks: 262144 / 96 = 2730 -> 2720 (multiple of 16).
        assert_eq!(pass.choose(8, 16, 16, 3136), 2720);
        // N that fits is left alone.
        assert_eq!(pass.choose(32, 32, 16, 784), 0);
        let forced = BcrTile {
            tile_n: Some(100),
            cache_bytes: 262144,
        };
        assert_eq!(forced.choose(8, 16, 16, 3136), 96);
        assert_eq!(
            BcrTile {
                tile_n: Some(0),
                cache_bytes: 262144
            }
            .choose(8, 16, 16, 3136),
            0
        );
    }

    #[test]
    fn a_matrix_larger_than_the_panel_budget_gets_panels_that_fit() {
        let pass = BcrTile {
            tile_n: None,
            cache_bytes: 262144,
        };
        // 4608 x 784 x 4 = 14.5 MB > 1 MiB; 1 MiB / (4608 x 4) = 56 -> one chunk of 64.
        assert_eq!(pass.choose_matrix(8, 16, 64, 4608, 784), 64);
        // 2304 rows: 113 columns fit -> 64 (whole chunks only).
        assert_eq!(pass.choose_matrix(8, 16, 64, 2304, 784), 64);
        // 576 rows: 455 -> 448 with 16-column chunks.
        assert_eq!(pass.choose_matrix(8, 16, 16, 576, 3136), 448);
        // A matrix within the budget keeps the strip rule (here: untiled).
        assert_eq!(pass.choose_matrix(8, 16, 64, 256, 784), 0);
        // Never wider than the strip rule's tile.
        assert_eq!(pass.choose_matrix(32, 32, 16, 64, 100000), 1024);
        // A forced tile wins.
        let forced = BcrTile {
            tile_n: Some(128),
            cache_bytes: 262144,
        };
        assert_eq!(forced.choose_matrix(8, 16, 64, 4608, 784), 128);
    }

    #[test]
    fn dense_blocks_follow_the_cache_model() {
        let pass = BcrTile {
            tile_n: None,
            cache_bytes: 262144,
        };
        // vgg16.conv3_1 as GEMM: 256 x 1152 by 1152 x 3136, 4x24 register tile.
        // K block 256; 262144 / 1024 = 256 -> 240 columns; 14 N tiles, so
        // each work item is an N tile over all 256 rows.
        assert_eq!(pass.choose_dense(256, 1152, 3136, 4, 24), (256, 240, 256));
        // vgg16.conv4_2: 784 / 240 -> 4 N tiles, evened out to 216 columns,
        // each over 510 rows rounded up to 512.
        assert_eq!(pass.choose_dense(510, 4608, 784, 4, 24), (512, 216, 256));
        // transformer.fc1: N = 128 fits one tile: items of M / 4 capped at 128 rows.
        assert_eq!(pass.choose_dense(3072, 768, 128, 4, 24), (128, 0, 256));
        // Small K and N fit whole; M = 64 -> items of 16 rows.
        assert_eq!(pass.choose_dense(64, 200, 196, 4, 24), (16, 0, 0));
        // Large M: at most 128 rows per item; at least one panel.
        assert_eq!(pass.choose_dense(4096, 1024, 128, 8, 12).0, 128);
        assert_eq!(pass.choose_dense(3, 64, 64, 4, 24).0, 4);
    }
}
