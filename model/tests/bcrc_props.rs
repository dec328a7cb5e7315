//! Properties of BCRC packing and BCR projection over random shapes, block
//! sizes and sparsity (edge blocks, fully pruned rows/columns, all-zero).

use std::collections::BTreeSet;

use grim_model::{bcr_project, random_bcr_weight, Bcrc, BlockSize, Order};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A random matrix with `density`% nonzeros, some rows and columns zeroed
/// entirely (density 0 gives the all-zero matrix).
fn matrix(m: usize, k: usize, density: u32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let dead_rows: BTreeSet<usize> = (0..m).filter(|_| rng.gen_bool(0.2)).collect();
    let dead_cols: BTreeSet<usize> = (0..k).filter(|_| rng.gen_bool(0.2)).collect();
    let mut w = vec![0.0f32; m * k];
    for i in 0..m {
        for j in 0..k {
            if !dead_rows.contains(&i) && !dead_cols.contains(&j) && rng.gen_range(0..100) < density
            {
                // Include values that are awkward for "nonzero" tests.
                w[i * k + j] = match rng.gen_range(0..10) {
                    0 => -0.0f32,
                    1 => f32::MIN_POSITIVE / 2.0,
                    _ => rng.gen_range(-2.0f32..2.0),
                };
            }
        }
    }
    w
}

fn params() -> impl Strategy<Value = (usize, usize, BlockSize, u32, u64)> {
    (
        1usize..70,
        1usize..70,
        1usize..=20,
        1usize..=20,
        prop_oneof![Just(0u32), Just(100u32), 0u32..=100],
        any::<u64>(),
    )
        .prop_map(|(m, k, r, c, d, s)| (m, k, BlockSize { rows: r, cols: c }, d, s))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn pack_unpack_is_exact((m, k, block, density, seed) in params()) {
        let w = matrix(m, k, density, seed);
        for order in [Order::Natural, Order::Grouped] {
            let p = Bcrc::pack(&w, m, k, block, order).unwrap();
            p.validate().unwrap();
            let back = p.unpack();
            // Bitwise, so subnormals cannot slip through; the one change
            // allowed is a pruned -0.0 (a structural zero) coming back +0.0.
            for (i, (a, b)) in w.iter().zip(&back).enumerate() {
                let pruned_negative_zero = a.to_bits() == (-0.0f32).to_bits() && b.to_bits() == 0;
                prop_assert!(a.to_bits() == b.to_bits() || pruned_negative_zero,
                    "element {}: packed {:e} ({:#x}), unpacked {:e} ({:#x})", i, a, a.to_bits(), b, b.to_bits());
            }
            let s = p.stats();
            let nnz = w.iter().filter(|&&v| v != 0.0).count();
            prop_assert_eq!(s.nonzeros, nnz);
            prop_assert!(s.stored_values >= nnz);
            // The count without packing (the driver's kernel choice) agrees.
            prop_assert_eq!(grim_model::bcrc::stored_values(&w, m, k, block).unwrap(), s.stored_values);
            prop_assert_eq!(s.index_bytes, 4 * p.strips.len() + 2 * p.block_col.len() + p.masks.len());
            prop_assert_eq!(p.masks.len(), s.blocks * block.mask_bytes());
            // +0.0 and -0.0 are both structurally empty.
            if w.iter().all(|v| *v == 0.0) {
                prop_assert_eq!(&p.strips, &vec![0, 0, 0]);
            }
        }
    }

    #[test]
    fn work_order_invariants((m, k, block, density, seed) in params()) {
        let w = matrix(m, k, density, seed);
        let nat = Bcrc::pack(&w, m, k, block, Order::Natural).unwrap();
        let grp = Bcrc::pack(&w, m, k, block, Order::Grouped).unwrap();
        prop_assert_eq!(nat.values.len(), grp.values.len());
        prop_assert_eq!(nat.num_blocks(), grp.num_blocks());
        prop_assert!(grp.stats().groups <= nat.stats().groups);
        let recs = |p: &Bcrc| p.strips.chunks(3).map(|r| (r[0], r[1], r[2])).collect::<Vec<_>>();
        let (rn, rg) = (recs(&nat), recs(&grp));
        // Natural: strips ascending, blocks ascending by column.
        for pair in rn.windows(2).take(rn.len().saturating_sub(2)) {
            prop_assert!(pair[0].0 < pair[1].0);
        }
        for pair in rn.windows(2) {
            let cols = &nat.block_col[pair[0].1 as usize..pair[1].1 as usize];
            prop_assert!(cols.windows(2).all(|c| c[0] < c[1]));
        }
        // Grouped: strips by descending work; in a strip each row mask is one run,
        // columns ascending inside a run.
        let work: Vec<u32> = rg.windows(2).map(|p| p[1].2 - p[0].2).collect();
        prop_assert!(work.windows(2).all(|w| w[0] >= w[1]));
        for pair in rg.windows(2) {
            let (b0, b1) = (pair[0].1 as usize, pair[1].1 as usize);
            let mut seen = BTreeSet::new();
            let mut prev: Option<(u64, u16)> = None;
            for b in b0..b1 {
                let rm = grp.block_masks(b).0;
                match prev {
                    Some((pm, pc)) if pm == rm => prop_assert!(pc < grp.block_col[b]),
                    _ => prop_assert!(seen.insert(rm), "row mask {:#x} split into two runs", rm),
                }
                prev = Some((rm, grp.block_col[b]));
            }
        }
    }

    #[test]
    fn packed_matmul_matches_dense((m, k, block, density, seed) in params(), n in 1usize..5) {
        let w = matrix(m, k, density, seed);
        let x: Vec<f32> = (0..k * n).map(|i| ((i * 31 % 17) as f32) - 8.0).collect();
        let p = Bcrc::pack(&w, m, k, block, Order::Grouped).unwrap();
        let y = p.matmul(&x, n).unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|kk| w[i * k + kk] as f64 * x[kk * n + j] as f64).sum();
                let got = y[i * n + j] as f64;
                prop_assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{} vs {}", got, want);
            }
        }
    }

    #[test]
    fn projection_respects_keeps(
        (m, k, block, _density, seed) in params(),
        row_keep in 0.01f64..=1.0,
        col_keep in 0.01f64..=1.0,
    ) {
        let orig = matrix(m, k, 100, seed);
        let mut w = orig.clone();
        bcr_project(&mut w, m, k, block, row_keep, col_keep).unwrap();
        // Projection only zeroes; it never changes a kept value.
        for (a, b) in w.iter().zip(&orig) {
            prop_assert!(*a == 0.0 || a == b);
        }
        let p = Bcrc::pack(&w, m, k, block, Order::Natural).unwrap();
        for b in p.blocks() {
            let br = block.rows.min(m - b.strip * block.rows);
            let bc = block.cols.min(k - b.block_col * block.cols);
            prop_assert!(b.kept_rows.len() <= (row_keep * br as f64).ceil() as usize);
            prop_assert!(b.kept_cols.len() <= (col_keep * bc as f64).ceil() as usize);
        }
    }

    #[test]
    fn random_weights_keep_exact_counts(
        (m, k, block, _d, seed) in params(),
        row_keep in 0.01f64..=1.0,
        col_keep in 0.01f64..=1.0,
    ) {
        let w = random_bcr_weight(m, k, block, row_keep, col_keep, seed);
        let p = Bcrc::pack(&w, m, k, block, Order::Natural).unwrap();
        prop_assert_eq!(p.stats().fill, 1.0);
        prop_assert_eq!(p.num_blocks(), m.div_ceil(block.rows) * k.div_ceil(block.cols));
        for b in p.blocks() {
            let br = block.rows.min(m - b.strip * block.rows);
            let bc = block.cols.min(k - b.block_col * block.cols);
            let want_r = ((row_keep * br as f64 - 1e-9).ceil() as usize).clamp(1, br);
            let want_c = ((col_keep * bc as f64 - 1e-9).ceil() as usize).clamp(1, bc);
            prop_assert_eq!(b.kept_rows.len(), want_r);
            prop_assert_eq!(b.kept_cols.len(), want_c);
        }
    }
}
