//! `bcr.spmv` and narrow `bcr.spmm` over compact column panels (`layout =
//! "compact_panels"`, blocks of 8 or 16 rows).
//!
//! A strip's outputs stay in vector registers across all of its blocks,
//! one vector of the block's rows per output column: a column stores only
//! its kept rows, and each is expanded to the block's height by the block's
//! row mask as it is loaded (`vector.expandload`: one `vexpandps` with
//! AVX-512). Half the rows pruned, half the bytes read, which is what keeps
//! a recurrent matrix in L2. The expanded panel is then multiplied with the
//! activation of each output column (a broadcast load per column): a
//! block costs one expand per kept column and one FMA per kept column and
//! output column, against the row-major walk's decoded row lists and
//! output loads and stores per block — at N = 8 (the speech GRU's batch)
//! that walk spent most of its time decoding masks (perf, 2026-12-04;
//! docs/benchmarks/analysis.md). Pruned rows are multiplied as zeros:
//! twice the FMAs of the kept values at half the rows kept, bought back
//! many times over by registers that never leave the strip.
//!
//! lower-grim-to-bcr picks this layout only for targets with an expanding
//! load, and for `bcr.spmm` only up to [`bcr::COMPACT_SPMM_MAX_N`] columns.

use super::{
    masks::{decode_mask, has_bits, mask_word},
    panel::Panel,
    spmv::{narrow_grain, spmv_grain},
    strips::{column_base, grained_strip_loop, operands, Strip},
};
use crate::builder::{Builder, V};
use grim_dialects::bcr;

/// Blocks per iteration of the matrix-vector walk, each with its own sum.
const UNROLL: i64 = 4;

/// Emits the product over compact panels: `bcr.spmv` (`columns = None`: `x`
/// and `c` are vectors) or `bcr.spmm` over `columns` output columns (`x`
/// is `[K, N]`, `c` is `[M, N]`). `rows`: the output's rows.
pub(super) fn compact_product<'c>(
    b: &Builder<'c>,
    product: &bcr::SparseProduct<'c, '_>,
    rows: i64,
    columns: Option<i64>,
) {
    let (block_rows, block_cols) = (product.block_rows, product.block_cols);
    let (p, x, c, row_mask_bytes, mask_stride) = operands(product);
    let lanes = block_rows;
    let vector = b.vector_type(lanes as u64);
    let mask_type = melior::ir::Type::vector(&[lanes as u64], b.int_type(1));
    let bytes_type = melior::ir::Type::vector(&[row_mask_bytes as u64], b.int_type(8));
    let kept_cols = b.alloca(&[block_cols], b.index_type());
    let n = columns.unwrap_or(1);
    let sums_buffer = b.alloca(&[block_rows * n], b.f32_type());
    let kept = bcr::defining_packed(product.packed.strips).and_then(|info| info.kept);
    let grain = match columns {
        None => spmv_grain(product),
        Some(n) => narrow_grain(product, n),
    };
    grained_strip_loop(
        b,
        &p,
        product.threads,
        grain,
        |b,
         Strip {
             strip,
             first_block,
             first_value,
             end_block,
         }| {
            // One block into `sums` (one per output column): the next
            // block's first value and the new sums.
            let step = |b: &Builder<'c>, block: V<'c>, value: V<'c>, sums: &[V<'c>]| {
                let column_base = column_base(b, &p, block, block_cols);
                let mask_base = b.muli(block, b.index(mask_stride));
                // The row mask as lanes of i1, and its count.
                let bytes = b.op("vector.load", &[p.masks, mask_base], &[bytes_type], &[])[0];
                let mask = b.op("vector.bitcast", &[bytes], &[mask_type], &[])[0];
                let row_word = mask_word(b, p.masks, mask_base, block_rows);
                let cols_mask_base = b.addi(mask_base, b.index(row_mask_bytes));
                let col_word = mask_word(b, p.masks, cols_mask_base, block_cols);
                let height = b.to_index(b.ctpop(row_word));
                let cols = b.to_index(b.ctpop(col_word));
                let passthru = b.broadcast(b.f32(0.0), lanes as u64);
                // sums += the panel of column k (`at` values in) times row k of x.
                let column = |b: &Builder<'c>, k: V<'c>, at: V<'c>, sums: &[V<'c>]| {
                    let w = b.op(
                        "vector.expandload",
                        &[p.values, at, mask, passthru],
                        &[vector],
                        &[],
                    )[0];
                    sums.iter()
                        .enumerate()
                        .map(|(j, sum)| {
                            let xk = match columns {
                                None => b.load(x, &[k]),
                                Some(_) => b.load(x, &[k, b.index(j as i64)]),
                            };
                            b.vfma(w, b.broadcast(xk, lanes as u64), *sum)
                        })
                        .collect::<Vec<_>>()
                };
                // Every column with a counted walk over the mask.
                let counted = |b: &Builder<'c>, sums: &[V<'c>]| -> Vec<V<'c>> {
                    let kept = decode_mask(
                        b,
                        p.masks,
                        cols_mask_base,
                        block_cols,
                        column_base,
                        kept_cols,
                    );
                    let (zero_index, one) = (b.index(0), b.index(1));
                    b.for_loop(zero_index, kept, one, sums, |b, j, sums| {
                        let k = b.load(kept_cols, &[j]);
                        column(b, k, b.addi(value, b.muli(j, height)), sums)
                    })
                };
                let types = vec![vector; sums.len()];
                let sums = match kept {
                    // Every block of the packed weight keeps `rows` x `cols`:
                    // straight-line code for that block, versioned on the
                    // block's own counts (a blob swapped in with --emit
                    // weights may differ).
                    Some((rows, kept_cols)) => {
                        let uniform = b.andi(
                            has_bits(b, row_word, rows),
                            has_bits(b, col_word, kept_cols),
                        );
                        b.if_else(
                            uniform,
                            &types,
                            |b| {
                                let mut word = col_word;
                                let mut sums = sums.to_vec();
                                for j in 0..kept_cols {
                                    let k = b.addi(column_base, b.to_index(b.cttz(word)));
                                    let at = b.addi(value, b.index(j * rows));
                                    sums = column(b, k, at, &sums);
                                    word = b.andi(word, b.subi(word, b.int(1, 64)));
                                }
                                sums
                            },
                            |b| counted(b, sums),
                        )
                    }
                    None => counted(b, sums),
                };
                (b.addi(value, b.muli(cols, height)), sums)
            };
            let zero = b.broadcast(b.f32(0.0), lanes as u64);
            let row_base = b.muli(strip, b.index(block_rows));
            match columns {
                None => {
                    // UNROLL blocks per iteration, each into its own sum, so
                    // that the multiply-adds of consecutive blocks do not wait
                    // for each other (one sum would chain every FMA of the strip).
                    let count = b.subi(end_block, first_block);
                    let unroll = b.index(UNROLL);
                    let full_end = b.addi(first_block, b.muli(b.divui(count, unroll), unroll));
                    let mut inits = vec![first_value];
                    inits.extend(std::iter::repeat_n(zero, UNROLL as usize));
                    let unrolled = b.for_loop(
                        first_block,
                        full_end,
                        unroll,
                        &inits,
                        |b, block, carried| {
                            let mut value = carried[0];
                            let mut next = vec![value];
                            for u in 0..UNROLL as usize {
                                let block = b.addi(block, b.index(u as i64));
                                let (v, sums) = step(b, block, value, &carried[1 + u..2 + u]);
                                value = v;
                                next.extend(sums);
                            }
                            next[0] = value;
                            next
                        },
                    );
                    let one = b.index(1);
                    let rest = b.for_loop(
                        full_end,
                        end_block,
                        one,
                        &[unrolled[0], unrolled[1]],
                        |b, block, carried| {
                            let (v, sums) = step(b, block, carried[0], &carried[1..]);
                            std::iter::once(v).chain(sums).collect()
                        },
                    );
                    let mut total = rest[1];
                    for sum in &unrolled[2..] {
                        total = b.op("arith.addf", &[total, *sum], &[vector], &[])[0];
                    }
                    let panel = Panel {
                        c,
                        sums: sums_buffer,
                        rows,
                        lanes,
                        vectors: 1,
                    };
                    panel.add(b, row_base, &[total]);
                }
                Some(n) => {
                    // The N sums are N independent chains: no unrolling.
                    let mut inits = vec![first_value];
                    inits.extend(std::iter::repeat_n(zero, n as usize));
                    let one = b.index(1);
                    let results =
                        b.for_loop(first_block, end_block, one, &inits, |b, block, carried| {
                            let (v, sums) = step(b, block, carried[0], &carried[1..]);
                            std::iter::once(v).chain(sums).collect()
                        });
                    add_transposed(b, c, sums_buffer, &results[1..], row_base, rows, lanes);
                }
            }
        },
    );
}

/// Adds the strip's sums (`sums[j]`: the strip's rows of output column `j`)
/// into `c[row_base.., j]`, through `buffer` (`[lanes * N]`): column-major
/// in registers, row-major in `c`; once per strip, so scalar. Rows past
/// `rows` (a bottom strip that the output cuts short) are not written.
fn add_transposed<'c>(
    b: &Builder<'c>,
    c: V<'c>,
    buffer: V<'c>,
    sums: &[V<'c>],
    row_base: V<'c>,
    rows: i64,
    lanes: i64,
) {
    for (j, sum) in sums.iter().enumerate() {
        b.vstore(*sum, buffer, &[b.index(j as i64 * lanes)]);
    }
    let valid = b.minui(b.subi(b.index(rows), row_base), b.index(lanes));
    let (zero, one) = (b.index(0), b.index(1));
    b.for_loop(zero, valid, one, &[], |b, r, _| {
        let row = b.addi(row_base, r);
        for j in 0..sums.len() as i64 {
            let column = b.index(j);
            let old = b.load(c, &[row, column]);
            let add = b.load(buffer, &[b.addi(b.index(j * lanes), r)]);
            b.store(b.addf(old, add), c, &[row, column]);
        }
        vec![]
    });
}
