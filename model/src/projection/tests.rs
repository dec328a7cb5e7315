use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn b(r: usize, c: usize) -> BlockSize {
    BlockSize::new(r, c).unwrap()
}

/// Every (row subset, column subset) pair: the optimum the rule claims.
fn brute_force(sq: &[f64], br: usize, bc: usize, kr: usize, kc: usize) -> f64 {
    let mut best = f64::MIN;
    for rows in 0u64..1 << br {
        if rows.count_ones() as usize != kr {
            continue;
        }
        for cols in 0u64..1 << bc {
            if cols.count_ones() as usize != kc {
                continue;
            }
            let mut v = 0.0;
            for i in 0..br {
                for j in 0..bc {
                    if rows >> i & 1 == 1 && cols >> j & 1 == 1 {
                        v += sq[i * bc + j];
                    }
                }
            }
            best = best.max(v);
        }
    }
    best
}

#[test]
fn subsets_enumerate_every_k_subset_once() {
    let all: Vec<u64> = Subsets::new(8, 4).collect();
    assert_eq!(all.len(), 70);
    assert!(all.iter().all(|s| s.count_ones() == 4 && *s < 256));
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(Subsets::new(5, 0).collect::<Vec<_>>(), vec![0]);
    assert_eq!(Subsets::new(5, 5).collect::<Vec<_>>(), vec![31]);
}

#[test]
fn split_rate_follows_the_documented_rule() {
    let k = |r: f64| split_rate(b(8, 16), r).unwrap();
    assert_eq!(k(1.0), Keep { rows: 8, cols: 16 });
    assert_eq!(k(4.0), Keep { rows: 4, cols: 8 });
    assert_eq!(k(8.0), Keep { rows: 4, cols: 4 });
    assert_eq!(k(10.0), Keep { rows: 3, cols: 4 });
    assert_eq!(k(16.0), Keep { rows: 2, cols: 4 });
    assert_eq!(
        split_rate(b(4, 16), 8.0).unwrap(),
        Keep { rows: 2, cols: 4 }
    );
    assert!(split_rate(b(8, 16), 0.5).is_err());
    assert!(split_rate(b(8, 16), f64::NAN).is_err());
}

#[test]
fn the_column_norm_first_choice_is_not_always_optimal_but_ours_is() {
    // Rows [3 0], [0 2.9], [0 2.9], keeping one row and one column: column 1
    // has the larger norm (2 * 8.41 > 9), so choosing columns by norm first
    // keeps 8.41; row 0 with column 0 keeps 9.
    let sq = [9.0, 0.0, 0.0, 8.41, 0.0, 8.41];
    let s = select(&sq, 3, 2, 1, 1);
    assert!(s.exact);
    assert_eq!(s.value, 9.0);
    assert_eq!((s.rows, s.cols), (0b001, 0b01));
}

#[test]
fn pruned_values_are_positive_zero_and_kept_ones_unchanged() {
    let mut rng = StdRng::seed_from_u64(3);
    let (m, k) = (19, 37);
    let orig: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let mut w = orig.clone();
    let p = project(&mut w, m, k, b(8, 16), Keep { rows: 4, cols: 4 }).unwrap();
    for (a, o) in w.iter().zip(&orig) {
        assert!(a.to_bits() == 0 || a == o, "{a} from {o}");
    }
    assert_eq!(p.blocks, 3 * 3);
    assert_eq!(p.exact_blocks, p.blocks);
    assert!(p.magnitude_kept > 0.25 && p.magnitude_kept < 1.0);
}

#[test]
fn bad_shapes_and_keeps_are_errors() {
    let mut w = vec![1.0; 6];
    assert!(project(&mut w, 2, 4, b(2, 2), Keep { rows: 1, cols: 1 }).is_err());
    assert!(project(&mut w, 2, 3, b(2, 2), Keep { rows: 3, cols: 1 }).is_err());
    assert!(project(&mut w, 2, 3, b(2, 2), Keep { rows: 1, cols: 0 }).is_err());
}

/// Kept rows/columns per block counted from the result alone.
fn structure(w: &[f32], m: usize, k: usize, block: BlockSize) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for r0 in (0..m).step_by(block.rows) {
        for c0 in (0..k).step_by(block.cols) {
            let (br, bc) = (block.rows.min(m - r0), block.cols.min(k - c0));
            let nz = |i: usize, j: usize| w[(r0 + i) * k + c0 + j] != 0.0;
            let rows = (0..br).filter(|&i| (0..bc).any(|j| nz(i, j))).count();
            let cols = (0..bc).filter(|&j| (0..br).any(|i| nz(i, j))).count();
            let values = (0..br).flat_map(|i| (0..bc).map(move |j| (i, j)));
            let count = values.filter(|&(i, j)| nz(i, j)).count();
            out.push((rows, cols, count));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn selection_is_optimal_where_claimed(
        br in 1usize..=5, bc in 1usize..=6, seed in 0u64..1000,
        kr_seed in 0usize..100, kc_seed in 0usize..100,
    ) {
        let (kr, kc) = (1 + kr_seed % br, 1 + kc_seed % bc);
        let mut rng = StdRng::seed_from_u64(seed);
        let sq: Vec<f64> = (0..br * bc).map(|_| rng.gen_range(0.0..1.0f64).powi(3)).collect();
        let s = select(&sq, br, bc, kr, kc);
        let best = brute_force(&sq, br, bc, kr, kc);
        prop_assert_eq!(s.rows.count_ones() as usize, kr);
        prop_assert_eq!(s.cols.count_ones() as usize, kc);
        prop_assert!(s.exact);
        prop_assert!((s.value - best).abs() <= 1e-12 * best.max(1.0), "{} vs {}", s.value, best);
    }

    #[test]
    fn alternating_selection_keeps_at_least_the_greedy_start(
        seed in 0u64..1000,
    ) {
        // 16 x 32 keeping 8 x 8: 12870 row and ~10^7 column subsets.
        let mut rng = StdRng::seed_from_u64(seed);
        let sq: Vec<f64> = (0..16 * 32).map(|_| rng.gen_range(0.0..1.0f64)).collect();
        let s = select(&sq, 16, 32, 8, 8);
        prop_assert!(!s.exact);
        let cols = top_k(&(0..32).map(|j| (0..16).map(|i| sq[i * 32 + j]).sum()).collect::<Vec<f64>>(), 8);
        let rows = top_k(&(0..16).map(|i| (0..32).filter(|j| cols >> j & 1 == 1).map(|j| sq[i * 32 + j]).sum()).collect::<Vec<f64>>(), 8);
        let greedy: f64 = (0..16).filter(|i| rows >> i & 1 == 1)
            .flat_map(|i| (0..32).filter(move |j| cols >> j & 1 == 1).map(move |j| (i, j)))
            .map(|(i, j)| sq[i * 32 + j]).sum();
        prop_assert!(s.value >= greedy - 1e-12);
    }

    #[test]
    fn projection_is_bcr_with_the_requested_keeps(
        m in 1usize..40, k in 1usize..70, br in 1usize..9, bc in 1usize..17,
        rate in 1.0f64..20.0, seed in 0u64..1000,
    ) {
        let block = b(br, bc);
        let keep = split_rate(block, rate).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut w: Vec<f32> = (0..m * k)
            .map(|_| { let v = rng.gen_range(0.01f32..1.0); if rng.gen() { -v } else { v } })
            .collect();
        let p = project(&mut w, m, k, block, keep).unwrap();
        let s = structure(&w, m, k, block);
        let mut counted = 0;
        let mut blocks = s.iter();
        for r0 in (0..m).step_by(br) {
            for c0 in (0..k).step_by(bc) {
                let (rows, cols, count) = *blocks.next().unwrap();
                let (ebr, ebc) = (br.min(m - r0), bc.min(k - c0));
                prop_assert_eq!(rows, keep_count(keep.row_keep(block), ebr));
                prop_assert_eq!(cols, keep_count(keep.col_keep(block), ebc));
                prop_assert_eq!(count, rows * cols);
                counted += count;
            }
        }
        prop_assert_eq!(counted, p.kept);
        prop_assert_eq!(kept_count(m, k, block, keep), p.kept);
        prop_assert!(w.iter().all(|v| *v != 0.0 || v.to_bits() == 0));
    }
}
