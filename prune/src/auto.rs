//! `--auto`: each layer's block from the compiler's cost model, then each
//! layer's rate from its sensitivity, meeting the overall rate.
//!
//! The two choices are decoupled as GRIM does. **Block**: for every
//! candidate of `grim_model::cost::BLOCK_CANDIDATES` that fits the layer's
//! matrices, the cost model (the one graph-choose-kernel uses, for the
//! target being compiled for) estimates the layer's BCR kernels pruned at
//! the overall rate with that block's keeps; the cheapest wins. **Rates**:
//! each layer's sensitivity is measured at anchor rates 2, 4, 8, 16 and 32,
//! projecting that layer alone: with validation data, the accuracy (or
//! loss) lost; without data, the fraction of the layer's squared magnitude
//! the projection removes. Between anchors it is interpolated in log-rate.
//! Then, starting from every layer dense, the cheapest step per element
//! saved is taken, one layer's next-finer keep at a time, until the kept
//! elements over all pruned layers (weighted by their element counts) are
//! within 2% of `1 / rate`; a step that would undershoot the window is
//! only taken when nothing else is left.

use std::collections::BTreeMap;

use grim_model::cost::{self, BcrShape, Kernel, Product, Target, BLOCK_CANDIDATES};
use grim_model::projection::{split_rate, Keep};
use grim_model::BlockSize;

use crate::error::PruneError;
use crate::layers::Layer;

/// The anchor rates sensitivity is measured at.
pub const ANCHORS: [f64; 5] = [2.0, 4.0, 8.0, 16.0, 32.0];
/// How far the overall kept fraction may be from `1 / rate`.
pub const RATE_TOLERANCE: f64 = 0.02;

/// What one layer's matrices cost to multiply: the product each runs.
#[derive(Debug, Clone)]
pub struct LayerCost {
    /// Per matrix: its product (`m`, `k` are the matrix's) and how many
    /// times a run calls it.
    pub products: Vec<(Product, f64)>,
}

/// A layer's block choice: the winner and every candidate's estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockChoice {
    /// The cheapest block.
    pub block: BlockSize,
    /// Estimated ns per run, by label (`bcr 8x16`, `dense`).
    pub estimates: BTreeMap<String, f64>,
}

/// Picks each layer's block by the cost model at `rate`.
pub fn choose_blocks(
    target: &Target,
    layers: &[Layer],
    costs: &[LayerCost],
    rate: f64,
) -> Result<Vec<BlockChoice>, PruneError> {
    let mut out = Vec::new();
    for (layer, c) in layers.iter().zip(costs) {
        let mut estimates = BTreeMap::new();
        let dense: f64 = c
            .products
            .iter()
            .map(|(p, times)| cost::product_ns(target, p, &Kernel::Dense) * times)
            .sum();
        estimates.insert("dense".to_string(), dense);
        let mut best: Option<(f64, BlockSize)> = None;
        for block in BLOCK_CANDIDATES {
            if layer
                .matrices
                .iter()
                .any(|m| m.rows < block.rows || m.cols < block.cols)
            {
                continue;
            }
            let keep = split_rate(block, rate)?;
            let ns: f64 = c
                .products
                .iter()
                .map(|(p, times)| {
                    let shape = BcrShape::uniform(p.m, p.k, block, keep.rows, keep.cols);
                    cost::product_ns(target, p, &Kernel::Bcr(shape)) * times
                })
                .sum();
            estimates.insert(format!("bcr {block}"), ns);
            if best.is_none_or(|(b, _)| ns < b) {
                best = Some((ns, block));
            }
        }
        let block = best
            .map(|(_, b)| b)
            .unwrap_or(BlockSize { rows: 8, cols: 16 });
        out.push(BlockChoice { block, estimates });
    }
    Ok(out)
}

/// Elements a layer keeps with `block` and `keep` (edge blocks included).
pub fn kept_elements(layer: &Layer, block: BlockSize, keep: Keep) -> usize {
    layer
        .matrices
        .iter()
        .map(|m| grim_model::projection::kept_count(m.rows, m.cols, block, keep))
        .sum()
}

/// One layer's finer and finer keeps: (keep, kept elements), from dense on.
fn options(layer: &Layer, block: BlockSize) -> Result<Vec<(Keep, usize)>, PruneError> {
    let mut out: Vec<(Keep, usize)> = Vec::new();
    let mut r = 1.0f64;
    while r <= 64.0 {
        let keep = split_rate(block, r)?;
        let kept = kept_elements(layer, block, keep);
        if out.last().is_none_or(|(_, k)| kept < *k) {
            out.push((keep, kept));
        }
        r *= 1.05;
    }
    Ok(out)
}

/// Interpolates a sensitivity measured at [`ANCHORS`] (rate 1 costs 0) at
/// `rate`, in log-rate.
fn interpolate(at: &[f64; 5], rate: f64) -> f64 {
    let points: Vec<(f64, f64)> = std::iter::once((0.0, 0.0))
        .chain(ANCHORS.iter().zip(at).map(|(r, s)| (r.ln(), *s)))
        .collect();
    let x = rate.max(1.0).ln();
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x <= x1 {
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
        }
    }
    points.last().map(|p| p.1).unwrap_or(0.0)
}

/// Per-layer keeps meeting the overall `rate`, given each layer's block
/// and its sensitivity at [`ANCHORS`]: the greedy of the module docs.
pub fn choose_keeps(
    layers: &[Layer],
    blocks: &[BlockSize],
    sensitivity: &[[f64; 5]],
    rate: f64,
) -> Result<Vec<Keep>, PruneError> {
    let opts: Vec<Vec<(Keep, usize)>> = layers
        .iter()
        .zip(blocks)
        .map(|(l, b)| options(l, *b))
        .collect::<Result<_, _>>()?;
    let elements: usize = layers.iter().map(|l| l.elements()).sum();
    let target = elements as f64 / rate;
    let (hi, lo) = (
        target * (1.0 + RATE_TOLERANCE),
        target * (1.0 - RATE_TOLERANCE),
    );
    let cost = |l: usize, i: usize| {
        let kept = opts[l][i].1.max(1);
        interpolate(&sensitivity[l], layers[l].elements() as f64 / kept as f64)
    };
    let mut at = vec![0usize; layers.len()];
    let mut kept: usize = opts.iter().map(|o| o[0].1).sum();
    while kept as f64 > hi {
        // (cost per element saved, undershoots, layer)
        let mut best: Option<(f64, bool, usize)> = None;
        for l in 0..layers.len() {
            let i = at[l];
            if i + 1 >= opts[l].len() {
                continue;
            }
            let saved = (opts[l][i].1 - opts[l][i + 1].1) as f64;
            let per = (cost(l, i + 1) - cost(l, i)).max(0.0) / saved;
            let under = (kept as f64 - saved) < lo;
            let better = match best {
                None => true,
                Some((p, u, _)) => (!under && u) || (under == u && per < p),
            };
            if better {
                best = Some((per, under, l));
            }
        }
        let Some((_, _, l)) = best else { break };
        kept -= opts[l][at[l]].1 - opts[l][at[l] + 1].1;
        at[l] += 1;
    }
    if (kept as f64) < lo {
        // The last step jumped over the window (a large layer's steps are
        // coarse): the cheapest state one or two layers' steps away that
        // lands in it.
        let total = |at: &[usize]| -> (usize, f64) {
            let k = at.iter().enumerate().map(|(l, &i)| opts[l][i].1).sum();
            let c = at.iter().enumerate().map(|(l, &i)| cost(l, i)).sum();
            (k, c)
        };
        let mut best: Option<(f64, Vec<usize>)> = None;
        let n = layers.len();
        for a in 0..n {
            for da in -3i64..=3 {
                for b in 0..n {
                    for db in -3i64..=3 {
                        let mut t = at.clone();
                        let step = |i: usize, d: i64, len: usize| -> Option<usize> {
                            let j = i as i64 + d;
                            (0..len as i64).contains(&j).then_some(j as usize)
                        };
                        let Some(ia) = step(t[a], da, opts[a].len()) else {
                            continue;
                        };
                        t[a] = ia;
                        if b != a {
                            let Some(ib) = step(t[b], db, opts[b].len()) else {
                                continue;
                            };
                            t[b] = ib;
                        } else if db != 0 {
                            continue;
                        }
                        let (k, c) = total(&t);
                        if (lo..=hi).contains(&(k as f64))
                            && best.as_ref().is_none_or(|(bc, _)| c < *bc)
                        {
                            best = Some((c, t));
                        }
                    }
                }
            }
        }
        if let Some((_, t)) = best {
            at = t;
        }
    }
    Ok(at.iter().zip(&opts).map(|(&i, o)| o[i].0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Matrix;

    fn layer(rows: usize, cols: usize) -> Layer {
        Layer {
            node: format!("l{rows}x{cols}"),
            index: 0,
            unit: format!("l{rows}x{cols}"),
            op: "Gemm",
            weight: "w".into(),
            shape: vec![rows, cols],
            matrices: vec![Matrix {
                rows,
                cols,
                offset: 0,
                transposed: false,
                part: None,
            }],
        }
    }

    #[test]
    fn keeps_meet_the_overall_rate_within_two_percent_and_spare_the_sensitive_layer() {
        let layers = [layer(256, 512), layer(128, 256), layer(64, 64)];
        let blocks = [BlockSize { rows: 8, cols: 16 }; 3];
        // The second layer loses a lot at every rate; the others little.
        let sens = [
            [0.001, 0.002, 0.004, 0.01, 0.02],
            [0.05, 0.1, 0.2, 0.4, 0.8],
            [0.001, 0.002, 0.004, 0.01, 0.02],
        ];
        for rate in [4.0, 8.0, 12.0] {
            let keeps = choose_keeps(&layers, &blocks, &sens, rate).unwrap();
            let kept: usize = layers
                .iter()
                .zip(&keeps)
                .map(|(l, k)| kept_elements(l, blocks[0], *k))
                .sum();
            let elements: usize = layers.iter().map(|l| l.elements()).sum();
            let fraction = kept as f64 / elements as f64;
            assert!(
                (fraction * rate - 1.0).abs() <= RATE_TOLERANCE,
                "rate {rate}: kept {fraction}"
            );
            let rate_of = |i: usize| {
                layers[i].elements() as f64 / kept_elements(&layers[i], blocks[0], keeps[i]) as f64
            };
            assert!(
                rate_of(1) < rate_of(0),
                "rate {rate}: sensitive layer {} vs {}",
                rate_of(1),
                rate_of(0)
            );
        }
    }

    #[test]
    fn interpolation_is_linear_in_log_rate_and_zero_when_dense() {
        let at = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(interpolate(&at, 1.0), 0.0);
        assert!((interpolate(&at, 4.0) - 2.0).abs() < 1e-12);
        assert!((interpolate(&at, 2.0f64.powf(2.5)) - 2.5).abs() < 1e-12);
        assert_eq!(interpolate(&at, 100.0), 5.0);
    }
}
