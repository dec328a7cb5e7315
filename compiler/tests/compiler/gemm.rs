//! Gemms on the BCR and the dense kernels against the reference (host and
//! qemu-aarch64): random shapes and blocks, edge cases, MLPs, transposes
//! that cancel, products tiled over N.

use crate::common::*;
use grim_compiler::driver::{self, Options};
use grim_model::{bcrc::random_bcr_weight, mlp, run_reference, save_onnx, BlockSize};
use proptest::prelude::*;

/// Compiles one [`gemm_graph`] (bias on even seeds, GRIM's reorder unless
/// the seed is a multiple of 3) at `block` and checks it against the
/// reference on `threads` threads.
#[allow(clippy::too_many_arguments)]
fn check_gemm(
    target: &str,
    m: usize,
    k: usize,
    n: usize,
    block: (usize, usize),
    row_keep: f64,
    col_keep: f64,
    seed: u64,
    threads: usize,
) {
    let graph = gemm_graph(
        m,
        k,
        n,
        BlockSize::new(block.0, block.1).unwrap(),
        row_keep,
        col_keep,
        seed,
        seed.is_multiple_of(2),
    );
    let x = lcg_input(vec![n, k], seed);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let actual = compile_and_run(
        &graph,
        target,
        (block.0 as i64, block.1 as i64),
        !seed.is_multiple_of(3),
        threads,
        &[x],
    );
    assert_close(&actual, &expected);
}

/// [`check_gemm`] of one [`GemmCase`].
fn check_case(target: &str, case: &GemmCase, threads: usize) {
    check_gemm(
        target,
        case.m,
        case.k,
        case.n,
        case.block,
        case.keep.0,
        case.keep.1,
        case.seed,
        threads,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, .. ProptestConfig::default() })]

    /// Compiled BCR gemms equal the dense reference on the host, over shapes
    /// (N = 1 for spmv; N not a multiple of the vector width), block sizes
    /// (edge blocks where they do not divide M or K) and keep ratios.
    #[test]
    fn host_gemm_matches_reference(case in gemm_cases(70, 21, (17, 33))) {
        check_case("host", &case, 1 + (case.seed % 3) as usize);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, .. ProptestConfig::default() })]

    /// The same property for aarch64 code run under qemu-aarch64.
    #[test]
    fn aarch64_gemm_matches_reference_under_qemu(case in gemm_cases(50, 11, (17, 17))) {
        check_case("aarch64-linux-gnu", &case, 2);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, .. ProptestConfig::default() })]

    /// Narrow BCR products (2 to 16 columns, as a recurrent step over a
    /// batch) with 8- or 16-row blocks and rows pruned equal the reference;
    /// on an AVX-512 host they read compact panels (one sum per output
    /// column in registers, lower/bcr_to_loops/compact.rs), elsewhere the
    /// row-major walk. M and K include edge strips and blocks.
    #[test]
    fn narrow_bcr_gemm_on_compact_panels_matches_reference(
        m in 1usize..70,
        k in 1usize..70,
        n in 2usize..=16,
        rows in prop_oneof![Just(8usize), Just(16)],
        cols in 1usize..33,
        row_keep in 0.2f64..0.6,
        col_keep in 0.1f64..1.0,
        seed in 0u64..1000,
    ) {
        let block = BlockSize::new(rows, cols).unwrap();
        let graph = gemm_graph(m, k, n, block, row_keep, col_keep, seed, seed.is_multiple_of(2));
        let x = lcg_input(vec![n, k], seed);
        let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
        let (actual, bcr) = compile_and_run_forced(
            &graph,
            "host",
            (rows as i64, cols as i64),
            !seed.is_multiple_of(3),
            1 + (seed % 2) as usize,
            &[x],
            &[("w", "bcr")],
        );
        if host_has_avx512() && m >= rows {
            prop_assert!(bcr.contains("compact_panels"), "{m}x{k}x{n}: {bcr}");
        }
        assert_close(&actual, &expected);
    }
}

/// Whether the host (the target of "host" compiles) has AVX-512F.
fn host_has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A layer that stays dense (no zero weight): the driver gives it the dense
/// kernel (`bcr.gemm` on row panels), whose result must equal the reference.
fn check_dense(target: &str, m: usize, k: usize, n: usize, seed: u64, threads: usize) {
    let mut graph = gemm_graph(
        m,
        k,
        n,
        BlockSize::new(1, 1).unwrap(),
        1.0,
        1.0,
        seed,
        seed.is_multiple_of(2),
    );
    graph
        .initializers
        .insert("w".into(), lcg_input(vec![m, k], seed + 11));
    let x = lcg_input(vec![n, k], seed);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let (actual, bcr) = compile_and_run_forced(
        &graph,
        target,
        (8, 16),
        true,
        threads,
        &[x],
        &[("w", "dense")],
    );
    assert!(
        bcr.contains("\"bcr.gemm\"") && !bcr.contains("bcr.packed"),
        "{m}x{k}x{n} did not take the dense kernel: {bcr}"
    );
    assert_close(&actual, &expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, .. ProptestConfig::default() })]

    /// Dense kernels equal the reference: matrix-vector (N = 1) and matrix
    /// products, M not a multiple of the panel height (a short bottom panel),
    /// K past one 256-deep block (a short last block), N not a multiple of
    /// the register chunk, 1-3 threads.
    #[test]
    fn dense_gemm_matches_reference_on_host(m in 1usize..70, k in prop_oneof![1usize..64, 250usize..600], n in prop_oneof![Just(1usize), 2usize..90], seed in 0u64..1000) {
        check_dense("host", m, k, n, seed, 1 + (seed % 3) as usize);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5, failure_persistence: None, .. ProptestConfig::default() })]

    /// The same under qemu-aarch64 (4 lanes, 8-row panels).
    #[test]
    fn dense_gemm_matches_reference_on_aarch64(m in 1usize..40, k in prop_oneof![1usize..40, 250usize..300], n in prop_oneof![Just(1usize), 2usize..30], seed in 0u64..1000) {
        check_dense("aarch64-linux-gnu", m, k, n, seed, 2);
    }
}

#[test]
fn edge_cases_match_reference_on_host_and_aarch64() {
    for target in ["host", "aarch64-linux-gnu"] {
        // A 1x1 matrix, an all-zero weight (nothing stored), a block larger than the matrix, 64x64 blocks.
        check_gemm(target, 1, 1, 1, (1, 1), 1.0, 1.0, 3, 1);
        check_gemm(target, 5, 7, 3, (8, 16), 1.0, 1.0, 5, 1);
        check_gemm(target, 70, 130, 9, (64, 64), 0.5, 0.5, 11, 1);
        let graph = gemm_graph(12, 20, 4, BlockSize::new(4, 8).unwrap(), 0.5, 0.5, 0, false);
        let mut zero = graph.clone();
        zero.initializers
            .get_mut("w")
            .unwrap()
            .data
            .iter_mut()
            .for_each(|v| *v = 0.0);
        let x = lcg_input(vec![4, 20], 9);
        let expected = run_reference(&zero, std::slice::from_ref(&x)).unwrap();
        assert!(expected[0].data.iter().all(|v| *v == 0.0));
        assert_close(
            &compile_and_run(&zero, target, (4, 8), true, 1, &[x]),
            &expected,
        );
    }
}

#[test]
fn demo_mlp_matches_reference_on_host_and_qemu_and_both_agree() {
    let graph = grim_model::demo_mlp(7);
    let x = lcg_input(vec![1, 256], 1);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let host = compile_and_run(&graph, "host", (8, 16), true, 2, std::slice::from_ref(&x));
    let arm = compile_and_run(&graph, "aarch64-linux-gnu", (8, 16), true, 2, &[x]);
    assert_close(&host, &expected);
    assert_close(&arm, &expected);
    assert_close(&host, &arm);
}

#[test]
fn batched_mlp_with_reorder_and_natural_order_agree() {
    let graph = mlp(
        5,
        &[40, 64, 33, 6],
        BlockSize::new(4, 8).unwrap(),
        0.5,
        0.5,
        21,
    )
    .unwrap();
    let x = lcg_input(vec![5, 40], 2);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    assert_close(
        &compile_and_run(&graph, "host", (4, 8), true, 1, std::slice::from_ref(&x)),
        &expected,
    );
    assert_close(
        &compile_and_run(&graph, "host", (4, 8), false, 1, &[x]),
        &expected,
    );
}

/// `y[M, N] = (x[K, N]^T W^T)^T`: activations in the kernels' own layout.
/// Both transposes cancel against the ones a gemm needs, so the compiled
/// function reads x and writes y in place with no scratch at all.
#[test]
fn transpose_pairs_around_a_gemm_cancel() {
    let (m, k, n) = (24, 40, 12);
    let w = random_bcr_weight(m, k, BlockSize::new(4, 8).unwrap(), 0.5, 0.5, 5);
    let graph = grim_model::kn_gemm("kn", m, k, n, w).unwrap();
    let x = lcg_input(vec![k, n], 4);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    for target in ["host", "aarch64-linux-gnu"] {
        assert_close(
            &compile_and_run(&graph, target, (4, 8), true, 2, std::slice::from_ref(&x)),
            &expected,
        );
    }
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("kn.onnx");
    save_onnx(&graph, &model).unwrap();
    let compiled = driver::compile(&Options::new(&model, "host"), true, false).unwrap();
    let bcr = bcr_stage(&compiled);
    assert!(bcr.contains("grim.scratch_bytes = 64 : i64"), "{bcr}");
    assert!(!bcr.contains("memref.view %arg2"), "scratch is used: {bcr}");
}

/// Long rows are tiled over N (bcr-tile): full tiles plus a remainder tile,
/// on the host (auto tile) and on aarch64 (tile from the LR file, not a
/// multiple of the vector chunk).
#[test]
fn n_tiled_products_match_reference() {
    let graph = gemm_graph(
        40,
        72,
        300,
        BlockSize::new(8, 16).unwrap(),
        0.5,
        0.5,
        8,
        true,
    );
    let x = lcg_input(vec![300, 72], 6);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    assert_close(
        &compile_and_run(&graph, "host", (8, 16), true, 2, std::slice::from_ref(&x)),
        &expected,
    );
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("long.onnx");
    save_onnx(&graph, &model).unwrap();
    let lr = work.path().join("long.lr.json");
    write(&lr, br#"{"version": 1, "layers": [ {"name": "fc", "sparsity": {"kind": "bcr", "block_rows": 8, "block_cols": 16}, "schedule": {"tile_n": 36, "threads": 1}} ]}"#);
    for target in ["host", "aarch64-linux-gnu"] {
        let mut options = Options::new(&model, target);
        options.lr = Some(lr.clone());
        let compiled = driver::compile(&options, true, true).unwrap();
        let bcr = bcr_stage(&compiled);
        assert!(bcr.contains("tile_n = 36 : i64"), "{bcr}");
        // The layer's thread cap reaches the product (and the run below uses 2 threads).
        assert!(bcr.contains("threads = 1 : i64"), "{bcr}");
        assert_close(
            &run_native(&compiled, work.path(), std::slice::from_ref(&x), 2),
            &expected,
        );
    }
    // A 2100-column product is tiled by bcr-tile's default (1024 with 32x32 blocks): two full tiles and a remainder.
    let long = gemm_graph(
        24,
        64,
        2100,
        BlockSize::new(32, 32).unwrap(),
        0.5,
        0.5,
        9,
        false,
    );
    let x = lcg_input(vec![2100, 64], 7);
    let expected = run_reference(&long, std::slice::from_ref(&x)).unwrap();
    assert_close(
        &compile_and_run(&long, "host", (32, 32), true, 2, &[x]),
        &expected,
    );
    let model = work.path().join("longer.onnx");
    save_onnx(&long, &model).unwrap();
    let mut options = Options::new(&model, "host");
    options.block = Some((32, 32));
    let compiled = driver::compile(&options, true, false).unwrap();
    let bcr = bcr_stage(&compiled);
    assert!(
        bcr.contains("tile_n = 1024 : i64"),
        "bcr-tile left a 2100-column product untiled: {bcr}"
    );
}
