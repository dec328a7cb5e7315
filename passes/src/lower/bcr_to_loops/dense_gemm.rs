//! The dense `bcr.gemm`: work items over rows or N tiles, K blocks, packed
//! activation blocks and the register tile; over a vector, panel sums in
//! registers.
//!
//! Dense products run through the same register tile as the sparse ones,
//! so the two differ only in where the weights come from (a row panel
//! instead of a block's kept sub-matrix).

use super::{
    packing::PackedX,
    panel::{panel_lanes, Panel},
    register_tile::{RowTile, Walk},
    schedule::{n_tiles, parallel_attrs},
};
use crate::builder::{erase, Builder, V};
use crate::lower::im2col::Geometry;
use grim_dialects::bcr;
use melior::dialect::arith::CmpiPredicate;

/// Emits a dense `bcr.gemm`.
///
/// Matrix products (`X[K, N]`): the rows of W are split into work items of
/// `tile_m` rows (the loop `bcr-parallelize` hands to the threads); each
/// item walks N in tiles of `tile_n` and K in blocks of `tile_k`, and in
/// each block runs every panel of `register_tile` rows through the register
/// tile: per chunk of `vectors x vector_width` output columns the C tile is
/// loaded once, then per column `k` of the block the activation vectors are
/// loaded once and each of the panel's weights (consecutive in the panel)
/// broadcast once, and the tile is stored once. The bottom panel that `M`
/// cuts short runs with a shorter tile (its padded rows are never touched).
///
/// Matrix-vector products (`x[K]`): per panel of `register_tile` rows the
/// sums stay in `register_tile / lanes` vector registers over all of K; per
/// `k`, one broadcast activation times one vector load per `lanes` rows.
pub(super) fn dense_gemm<'c>(
    b: &Builder<'c>,
    product: &bcr::DenseProduct<'c, '_>,
    image: Option<Geometry>,
    m: i64,
    k: i64,
    n: Option<i64>,
) {
    let (w, x, c) = (erase(product.w), erase(product.x), erase(product.c));
    let panel_rows = product.register_tile.max(1);
    let parallel = parallel_attrs(b, product.threads);
    let Some(n) = n else {
        let lanes = panel_lanes(product.vector_width, panel_rows);
        let vectors = panel_rows / lanes;
        let sums = b.alloca(&[panel_rows], b.f32_type());
        let panels = (m + panel_rows - 1) / panel_rows;
        let (c0, c1) = (b.index(0), b.index(1));
        b.for_loop_with(c0, b.index(panels), c1, &[], &parallel, |b, p, _| {
            let base = b.muli(p, b.index(k * panel_rows));
            let zero = if lanes == 1 {
                b.f32(0.0)
            } else {
                b.broadcast(b.f32(0.0), lanes as u64)
            };
            let inits = vec![zero; vectors as usize];
            let (c0, c1) = (b.index(0), b.index(1));
            let results = b.for_loop(c0, b.index(k), c1, &inits, |b, kk, sums| {
                let xk = b.load(x, &[kk]);
                let xk = if lanes == 1 {
                    xk
                } else {
                    b.broadcast(xk, lanes as u64)
                };
                let column = b.muli(kk, b.index(panel_rows));
                let column = b.addi(base, column);
                (0..vectors as usize)
                    .map(|v| {
                        let at = b.addi(column, b.index(v as i64 * lanes));
                        if lanes == 1 {
                            b.fma(b.load(w, &[at]), xk, sums[v])
                        } else {
                            b.vfma(b.vload(w, &[at], lanes as u64), xk, sums[v])
                        }
                    })
                    .collect()
            });
            let row_base = b.muli(p, b.index(panel_rows));
            Panel {
                c,
                sums,
                rows: m,
                lanes,
                vectors,
            }
            .add(b, row_base, &results);
            vec![]
        });
        return;
    };
    let lanes = product.vector_width.max(1);
    let vectors = product.vectors.max(1);
    let tile_m = if product.tile_m > 0 {
        product.tile_m
    } else {
        panel_rows
    };
    let panels_per_item = (tile_m / panel_rows).max(1);
    let full_panels = m / panel_rows;
    let short_rows = m % panel_rows;
    let m_items = (m + tile_m - 1) / tile_m;
    let tile_k = if product.tile_k > 0 {
        product.tile_k.min(k)
    } else {
        k
    };
    let tile_n = if product.tile_n > 0 && product.tile_n < n {
        product.tile_n
    } else {
        n
    };
    let n_items = (n + tile_n - 1) / tile_n;
    // The activation block of a work item is packed once per (N tile, K
    // block) into a cache-line aligned stack buffer (PackedX) and read by
    // every panel of the item. Narrow N (at most two register chunks) is
    // read in place: its rows are already short and close together.
    let width = lanes * vectors;
    // An image's patch row for the tile, before it is cut into chunks.
    let line = image
        .is_some()
        .then(|| b.alloca_aligned(&[tile_n], b.f32_type(), 64));
    let buffer = (n > 2 * width || image.is_some()).then(|| {
        let chunks = (tile_n + width - 1) / width;
        b.alloca_aligned(&[chunks * tile_k * width], b.f32_type(), 64)
    });
    // One (N tile) x (panels) block of work, K block by K block.
    let block = |b: &Builder<'c>,
                 panels: (V<'c>, V<'c>),
                 short: Option<V<'c>>,
                 n_base: V<'c>,
                 n_len: i64| {
        let (c0, step) = (b.index(0), b.index(tile_k));
        b.for_loop(c0, b.index(k), step, &[], |b, k0, _| {
            let k_end = b.addi(k0, b.index(tile_k));
            let k_end = b.minui(k_end, b.index(k));
            let packed = buffer.map(|buffer| {
                let packed = PackedX {
                    k0,
                    n0: n_base,
                    depth: tile_k,
                    width,
                };
                packed.fill(b, x, image.as_ref().zip(line), buffer, k_end, n_len, lanes);
                (buffer, packed)
            });
            let run = |b: &Builder<'c>, p: V<'c>, rows: usize| {
                let panel = b.muli(p, b.index(k * panel_rows));
                let walk = Walk::Panel {
                    panel,
                    panel_rows,
                    k0,
                    k_end,
                    values: w,
                };
                let first_row = b.muli(p, b.index(panel_rows));
                RowTile {
                    walk,
                    x: packed.map_or(x, |(buffer, _)| buffer),
                    packed: packed.map(|(_, packed)| packed),
                    image_shift: None,
                    c,
                    matrix: true,
                    n_base,
                    n: n_len,
                    lanes,
                    vectors,
                }
                .emit(b, first_row, rows);
            };
            let one = b.index(1);
            b.for_loop(panels.0, panels.1, one, &[], |b, p, _| {
                run(b, p, panel_rows as usize);
                vec![]
            });
            if short_rows > 0 {
                let tail = |b: &Builder<'c>| {
                    run(b, b.index(full_panels), short_rows as usize);
                    vec![]
                };
                match short {
                    Some(condition) => {
                        b.if_else(condition, &[], tail, |_| vec![]);
                    }
                    None => {
                        tail(b);
                    }
                }
            }
            vec![]
        });
    };
    let (c0, c1) = (b.index(0), b.index(1));
    if m_items == 1 && n_items > 1 {
        // Work items are N tiles over all rows (bcr-tile chose this for long
        // N): each activation is packed once, and W streams from the outer
        // cache once per tile.
        let last = n - (n_items - 1) * tile_n;
        b.for_loop_with(c0, b.index(n_items), c1, &[], &parallel, |b, item, _| {
            let n_base = b.muli(item, b.index(tile_n));
            let panels = (b.index(0), b.index(full_panels));
            if last == tile_n {
                block(b, panels, None, n_base, tile_n);
            } else {
                let is_last = b.cmpi(CmpiPredicate::Eq, item, b.index(n_items - 1));
                b.if_else(
                    is_last,
                    &[],
                    |b| {
                        block(b, panels, None, n_base, last);
                        vec![]
                    },
                    |b| {
                        block(b, panels, None, n_base, tile_n);
                        vec![]
                    },
                );
            }
            vec![]
        });
        return;
    }
    // Work items are groups of `tile_m` rows, each walking all of N.
    b.for_loop_with(c0, b.index(m_items), c1, &[], &parallel, |b, item, _| {
        let first_panel = b.muli(item, b.index(panels_per_item));
        let end_panel = b.addi(first_panel, b.index(panels_per_item));
        let end_panel = b.minui(end_panel, b.index(full_panels));
        let last_item = b.cmpi(CmpiPredicate::Eq, item, b.index(m_items - 1));
        n_tiles(b, n, product.tile_n, |b, n_base, n_len| {
            block(b, (first_panel, end_panel), Some(last_item), n_base, n_len);
        });
        vec![]
    });
}
