//! End-to-end tests of the compiler: every lowering stage snapshotted, compiled
//! code against the reference interpreter on the host and on aarch64 under
//! qemu, and the CLI's error contract. One test binary on purpose: each one
//! links all of MLIR and LLVM.

use grim_compiler::{
    driver::{self, Options},
    link,
};
use grim_model::{
    bcrc::random_bcr_weight, mlp, run_reference, save_onnx, BlockSize, Graph, Node, Op, Tensor,
    ValueInfo,
};
use proptest::prelude::*;
use std::{collections::BTreeMap, path::Path, process::Command};

/// Compiles `graph` for `target`, links the runner, runs it on `inputs`.
fn compile_and_run(
    graph: &Graph,
    target: &str,
    block: (i64, i64),
    reorder: bool,
    threads: usize,
    inputs: &[Tensor],
) -> Vec<Tensor> {
    compile_and_run_staged(graph, target, block, reorder, threads, inputs).0
}

/// The module at the bcr level, as the driver printed it.
fn bcr_stage(compiled: &driver::Compiled) -> &str {
    compiled
        .stages
        .iter()
        .find(|(level, _)| *level == driver::Level::Bcr)
        .map(|(_, text)| text.as_str())
        .expect("a bcr stage")
}

/// A weight matrix of a compiled model, by weight name.
fn packed_layer<'a>(
    compiled: &'a driver::Compiled,
    name: &str,
) -> &'a grim_compiler::blob::PackedLayer {
    compiled
        .blob
        .layers
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no layer {name}"))
}

/// Links a compiled model with the runner in `work` and runs it on `inputs`.
fn run_native(
    compiled: &driver::Compiled,
    work: &Path,
    inputs: &[Tensor],
    threads: usize,
) -> Vec<Tensor> {
    let object = work.join("model.o");
    std::fs::write(&object, &compiled.artifacts.object).expect("write object");
    let exe = work.join("runner");
    link::link_runner(&compiled.target, &object, work, &exe).unwrap_or_else(|e| panic!("{e}"));
    let (outputs, _) = link::run_runner(
        &compiled.target,
        &exe,
        work,
        inputs,
        &compiled.interface.outputs,
        threads,
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    outputs
}

/// [`compile_and_run`], also returning the module at the bcr level.
fn compile_and_run_staged(
    graph: &Graph,
    target: &str,
    block: (i64, i64),
    reorder: bool,
    threads: usize,
    inputs: &[Tensor],
) -> (Vec<Tensor>, String) {
    compile_and_run_forced(graph, target, block, reorder, threads, inputs, &[])
}

/// [`compile_and_run_staged`] with the kernels of the named layers fixed
/// by an LR file (`dense` or `bcr`, at the block given): the kernel paths a
/// test exercises do not depend on the cost model's choice.
fn compile_and_run_forced(
    graph: &Graph,
    target: &str,
    block: (i64, i64),
    reorder: bool,
    threads: usize,
    inputs: &[Tensor],
    kernels: &[(&str, &str)],
) -> (Vec<Tensor>, String) {
    let work = tempfile::tempdir().expect("tempdir");
    let model = work.path().join("model.onnx");
    save_onnx(graph, &model).expect("save onnx");
    let mut options = Options::new(&model, target);
    options.block = Some(block);
    options.reorder = reorder;
    if !kernels.is_empty() {
        let mut lr = grim_model::LrFile::new(None);
        for (layer, kernel) in kernels {
            let sparsity = match *kernel {
                "dense" => grim_model::Sparsity::Dense,
                _ => grim_model::Sparsity::Bcr {
                    block_rows: block.0 as usize,
                    block_cols: block.1 as usize,
                    row_keep: None,
                    col_keep: None,
                },
            };
            lr.layers.push(grim_model::LrLayer {
                name: layer.to_string(),
                op: None,
                shape: None,
                sparsity,
                order: None,
                schedule: None,
                latency_ms: None,
                estimates_ns: None,
                rate: None,
            });
        }
        let path = work.path().join("forced.lr.json");
        lr.save(&path).expect("save lr");
        options.lr = Some(path);
    }
    let compiled =
        driver::compile(&options, true, true).unwrap_or_else(|e| panic!("compile failed: {e}"));
    let bcr = bcr_stage(&compiled).to_string();
    (run_native(&compiled, work.path(), inputs, threads), bcr)
}

fn assert_close(actual: &[Tensor], expected: &[Tensor]) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a.shape, e.shape);
        let scale = e.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.data.iter().zip(&e.data).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * scale,
                "element {i}: compiled {x} vs reference {y} (scale {scale})"
            );
        }
    }
}

fn lcg_input(shape: Vec<usize>, seed: u64) -> Tensor {
    Tensor::fixed_seed(shape, seed)
}

/// One Gemm layer `y = x W^T + b` with a BCR weight and extra fully pruned rows and columns.
#[allow(clippy::too_many_arguments)]
fn gemm_graph(
    m: usize,
    k: usize,
    n: usize,
    block: BlockSize,
    row_keep: f64,
    col_keep: f64,
    seed: u64,
    bias: bool,
) -> Graph {
    let mut w = random_bcr_weight(m, k, block, row_keep, col_keep, seed);
    // Fully pruned rows and columns across all blocks.
    for c in 0..k {
        w[(seed as usize % m) * k + c] = 0.0;
    }
    for r in 0..m {
        w[r * k + (seed as usize / 7) % k] = 0.0;
    }
    let mut initializers = BTreeMap::new();
    initializers.insert("w".to_string(), Tensor::new(vec![m, k], w).unwrap());
    let mut inputs = vec!["x".to_string(), "w".to_string()];
    if bias {
        initializers.insert("b".to_string(), lcg_input(vec![m], seed + 1));
        inputs.push("b".to_string());
    }
    Graph {
        name: "gemm".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![n, k],
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: vec![n, m],
        }],
        nodes: vec![Node {
            name: "fc".into(),
            op: Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: true,
            },
            inputs,
            outputs: vec!["y".into()],
        }],
        initializers,
    }
}

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

/// One gemm case: M and K below `max_side`, N = 1 or 2..`max_n`, block sides
/// below the given bounds, keep ratios in [0.1, 1), a seed.
#[derive(Debug, Clone)]
struct GemmCase {
    m: usize,
    k: usize,
    n: usize,
    block: (usize, usize),
    keep: (f64, f64),
    seed: u64,
}

fn gemm_cases(
    max_side: usize,
    max_n: usize,
    max_block: (usize, usize),
) -> impl Strategy<Value = GemmCase> {
    (
        1..max_side,
        1..max_side,
        prop_oneof![Just(1usize), 2..max_n],
        1..max_block.0,
        1..max_block.1,
        0.1f64..1.0,
        0.1f64..1.0,
        0u64..1000,
    )
        .prop_map(|(m, k, n, r, c, rk, ck, seed)| GemmCase {
            m,
            k,
            n,
            block: (r, c),
            keep: (rk, ck),
            seed,
        })
}

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

/// One conv case: geometry, kernel choice and the BCR block of its weight.
#[derive(Debug, Clone)]
struct ConvCase {
    n: usize,
    c: usize,
    hw: (usize, usize),
    m: usize,
    kernel: [usize; 2],
    strides: [usize; 2],
    pads: [usize; 4],
    dilations: [usize; 2],
    /// `true`: a weight with no zeros (the dense kernel, implicit im2col);
    /// `false`: BCR-pruned at `block` (explicit im2col, BCR kernels).
    dense: bool,
    block: (usize, usize),
    seed: u64,
}

fn conv_cases(max_c: usize, max_hw: usize) -> impl Strategy<Value = ConvCase> {
    let geometry = (
        1usize..3,
        1..max_c,
        // Some images wide enough (>= 48 output columns) for the BCR
        // kernels to read them in place.
        (3..max_hw, prop_oneof![3..max_hw, 50..60usize]),
        1usize..20,
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        (0usize..2, 0usize..2, 0usize..2, 0usize..2),
        (1usize..3, 1usize..3),
    );
    (geometry, any::<bool>(), (1usize..9, 1usize..17), 0u64..1000).prop_filter_map(
        "kernel must fit",
        |((n, c, hw, m, k, s, p, d), dense, block, seed)| {
            let fits =
                |size: usize, before: usize, after: usize, kernel: usize, dilation: usize| {
                    size + before + after > dilation * (kernel - 1)
                };
            (fits(hw.0, p.0, p.2, k.0, d.0) && fits(hw.1, p.1, p.3, k.1, d.1)).then_some(ConvCase {
                n,
                c,
                hw,
                m,
                kernel: [k.0, k.1],
                strides: [s.0, s.1],
                pads: [p.0, p.1, p.2, p.3],
                dilations: [d.0, d.1],
                dense,
                block,
                seed,
            })
        },
    )
}

fn check_conv(target: &str, case: &ConvCase, threads: usize) {
    let (rows, cols) = (case.m, case.c * case.kernel[0] * case.kernel[1]);
    let weight = if case.dense {
        lcg_input(vec![rows * cols], case.seed + 5).data
    } else {
        random_bcr_weight(
            rows,
            cols,
            BlockSize::new(case.block.0, case.block.1).unwrap(),
            0.5,
            0.5,
            case.seed,
        )
    };
    let graph = grim_model::conv_layer(
        case.n,
        case.c,
        case.hw.0,
        case.hw.1,
        case.m,
        case.kernel,
        case.strides,
        case.pads,
        case.dilations,
        case.seed.is_multiple_of(2),
        weight,
    )
    .unwrap();
    let x = lcg_input(vec![case.n, case.c, case.hw.0, case.hw.1], case.seed);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let (actual, bcr) = compile_and_run_forced(
        &graph,
        target,
        (case.block.0 as i64, case.block.1 as i64),
        true,
        threads,
        &[x],
        &[("w", if case.dense { "dense" } else { "bcr" })],
    );
    let pointwise = case.kernel == [1, 1] && case.strides == [1, 1] && case.pads == [0; 4];
    if case.dense {
        assert!(bcr.contains("\"bcr.gemm\""), "{case:?}: {bcr}");
        assert_eq!(
            bcr.contains("im2col = array"),
            !pointwise,
            "{case:?}: implicit im2col unless pointwise: {bcr}"
        );
    } else if bcr.contains("bcr.packed") && !pointwise {
        // BCR: the image read in place when its columns are contiguous and
        // an output row is at least 48 wide (padded by a bcr.im2col of a 1x1
        // kernel if the conv pads), else an explicit patch matrix.
        let wo = (case.hw.1 + case.pads[1] + case.pads[3]
            - case.dilations[1] * (case.kernel[1] - 1)
            - 1)
            / case.strides[1]
            + 1;
        let implicit = case.strides[1] == 1 && wo >= 48;
        let padded = case.pads != [0; 4];
        let spmm_reads_image = bcr
            .lines()
            .any(|l| l.contains("\"bcr.spmm\"") && l.contains("im2col = array"));
        assert_eq!(spmm_reads_image, implicit, "{case:?}: {bcr}");
        assert_eq!(
            bcr.contains("\"bcr.im2col\""),
            !implicit || padded,
            "{case:?}: {bcr}"
        );
        if implicit && padded {
            assert!(
                bcr.contains("im2col = array<i64: 1, 1, 1, 1,"),
                "{case:?}: the padding copy is a 1x1 im2col: {bcr}"
            );
        }
    }
    assert_close(&actual, &expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, .. ProptestConfig::default() })]

    /// Convolutions (batch 1-2, kernels 1-3, strides 1-2, pads 0-1 per side,
    /// dilations 1-2, with and without bias) equal the reference on the
    /// host, through the dense kernel (implicit im2col) and through the BCR
    /// kernels (explicit im2col), 1-3 threads.
    #[test]
    fn conv_matches_reference_on_host(case in conv_cases(9, 12)) {
        check_conv("host", &case, 1 + (case.seed % 3) as usize);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5, failure_persistence: None, .. ProptestConfig::default() })]

    /// The same under qemu-aarch64.
    #[test]
    fn conv_matches_reference_on_aarch64(case in conv_cases(5, 9)) {
        check_conv("aarch64-linux-gnu", &case, 2);
    }
}

/// The conv shapes of real layers at a reduced size: a 3x3 pad-1 conv
/// (vgg/resnet), a stride-2 conv and a pointwise conv (mobilenet), both
/// kernels each, with N long enough to be tiled and split across threads.
#[test]
fn layer_like_convs_match_reference() {
    for (c, hw, m, kernel, strides, pads) in [
        (16, (20, 20), 24, [3, 3], [1, 1], [1, 1, 1, 1]),
        (8, (17, 17), 16, [3, 3], [2, 2], [1, 1, 1, 1]),
        (24, (14, 14), 40, [1, 1], [1, 1], [0, 0, 0, 0]),
        // Output rows of 56 and 50: the BCR kernels read the image in place
        // (padded first, then unpadded), with N tiles of whole rows.
        (8, (12, 56), 32, [3, 3], [1, 1], [1, 1, 1, 1]),
        (4, (6, 52), 16, [3, 3], [1, 1], [0, 0, 0, 0]),
    ] {
        for dense in [true, false] {
            let case = ConvCase {
                n: 1,
                c,
                hw,
                m,
                kernel,
                strides,
                pads,
                dilations: [1, 1],
                dense,
                block: (8, 16),
                seed: 3,
            };
            check_conv("host", &case, 2);
        }
    }
}

/// A gemm and the schedule an LR file forces on it.
#[derive(Debug, Clone)]
struct ScheduleCase {
    gemm: GemmCase,
    dense: bool,
    vector_width: Option<usize>,
    register_tile: Option<usize>,
    tile_n: Option<usize>,
    threads: Option<usize>,
}

fn schedule_cases(max_side: usize, max_n: usize) -> impl Strategy<Value = ScheduleCase> {
    let schedule = (
        any::<bool>(),
        proptest::option::of(prop_oneof![Just(1usize), Just(2), Just(4), Just(8)]),
        proptest::option::of(1usize..7),
        proptest::option::of(1usize..40),
        proptest::option::of(1usize..3),
    );
    (gemm_cases(max_side, max_n, (9, 17)), schedule).prop_map(
        |(gemm, (dense, vector_width, register_tile, tile_n, threads))| ScheduleCase {
            gemm,
            dense,
            vector_width,
            register_tile,
            tile_n,
            threads,
        },
    )
}

/// Compiles one gemm with the case's schedule from an LR file and checks it
/// against the reference (run on 2 threads, whatever the layer's cap).
fn check_schedule(target: &str, case: &ScheduleCase) {
    let g = &case.gemm;
    let graph = gemm_graph(
        g.m,
        g.k,
        g.n,
        BlockSize::new(g.block.0, g.block.1).unwrap(),
        g.keep.0,
        g.keep.1,
        g.seed,
        true,
    );
    let x = lcg_input(vec![g.n, g.k], g.seed);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("gemm.onnx");
    save_onnx(&graph, &model).unwrap();
    let sparsity = if case.dense {
        serde_json::json!({"kind": "dense"})
    } else {
        serde_json::json!({"kind": "bcr", "block_rows": g.block.0, "block_cols": g.block.1})
    };
    let mut schedule = serde_json::Map::new();
    for (key, value) in [
        ("vector_width", case.vector_width),
        ("register_tile", case.register_tile),
        ("tile_n", case.tile_n),
        ("threads", case.threads),
    ] {
        if let Some(value) = value {
            schedule.insert(key.into(), value.into());
        }
    }
    let lr = work.path().join("gemm.lr.json");
    let text = serde_json::json!({"version": 1, "layers": [{"name": "fc", "sparsity": sparsity, "schedule": schedule}]});
    write(&lr, text.to_string().as_bytes());
    let mut options = Options::new(&model, target);
    options.lr = Some(lr);
    let compiled =
        driver::compile(&options, true, true).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    let bcr = bcr_stage(&compiled);
    assert_eq!(bcr.contains("\"bcr.gemm\""), case.dense, "{case:?}: {bcr}");
    if let Some(lanes) = case.vector_width {
        assert!(
            bcr.contains(&format!("vector_width = {lanes} : i64")),
            "{case:?}: {bcr}"
        );
    }
    assert_close(
        &run_native(&compiled, work.path(), std::slice::from_ref(&x), 2),
        &expected,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, .. ProptestConfig::default() })]

    /// Every schedule an LR file can force (lanes, register tile, N tile,
    /// thread cap) on the BCR and on the dense kernels keeps the result
    /// equal to the reference on the host.
    #[test]
    fn forced_schedules_match_reference_on_host(case in schedule_cases(50, 70)) {
        check_schedule("host", &case);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, failure_persistence: None, .. ProptestConfig::default() })]

    /// The same under qemu-aarch64.
    #[test]
    fn forced_schedules_match_reference_on_aarch64(case in schedule_cases(30, 20)) {
        check_schedule("aarch64-linux-gnu", &case);
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

/// The demo CNN (a dense 3x3 conv through implicit im2col, a BCR strided
/// 3x3 conv through bcr.im2col, a BCR pointwise conv, flatten, a dense FC)
/// equals the reference on the host and on aarch64 under qemu.
#[test]
fn demo_cnn_matches_reference_on_host_and_qemu() {
    let graph = grim_model::demo_cnn(5);
    let x = lcg_input(vec![1, 3, 16, 16], 4);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let kernels = [
        ("conv1", "dense"),
        ("conv2", "bcr"),
        ("conv3", "bcr"),
        ("fc", "dense"),
    ];
    let (host, bcr) = compile_and_run_forced(
        &graph,
        "host",
        (8, 16),
        true,
        2,
        std::slice::from_ref(&x),
        &kernels,
    );
    // Each conv takes the path the model was built to show.
    assert_eq!(bcr.matches("\"bcr.im2col\"").count(), 1, "{bcr}");
    assert_eq!(
        bcr.matches("im2col = array").count(),
        2,
        "one implicit (dense conv1) and one explicit: {bcr}"
    );
    assert_eq!(bcr.matches("\"bcr.spmm\"").count(), 2, "{bcr}");
    assert_eq!(
        bcr.matches("\"bcr.gemm\"").count(),
        2,
        "dense conv1 and fc: {bcr}"
    );
    let arm = compile_and_run(&graph, "aarch64-linux-gnu", (8, 16), true, 2, &[x]);
    assert_close(&host, &expected);
    assert_close(&arm, &expected);
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

/// A small MLP whose every lowering stage is snapshotted (aarch64, so the
/// LLVM IR does not depend on the machine running the test).
#[test]
fn snapshots_of_every_lowering_stage() {
    let graph = mlp(4, &[16, 24, 8], BlockSize::new(4, 8).unwrap(), 0.5, 0.5, 3).unwrap();
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("tiny_mlp.onnx");
    save_onnx(&graph, &model).unwrap();
    let mut options = Options::new(&model, "aarch64-linux-gnu");
    options.block = Some((4, 8));
    // fc1 on the BCR kernels whatever the cost model prefers at this size,
    // so the stages show both kernel families.
    let lr = work.path().join("tiny.lr.json");
    write(&lr, br#"{"version": 2, "layers": [{"name": "fc1", "sparsity": {"kind": "bcr", "block_rows": 4, "block_cols": 8}}]}"#);
    options.lr = Some(lr);
    let compiled = driver::compile(&options, true, false).unwrap();
    let scrub = |text: &str| text.replace(&work.path().display().to_string(), "<tmp>");
    for (level, text) in &compiled.stages {
        insta::assert_snapshot!(format!("tiny_mlp_{level:?}").to_lowercase(), scrub(text));
    }
    // The LLVM IR straight from the MLIR translation plus our entry points (before O3).
    insta::assert_snapshot!(
        "tiny_mlp_llvm_ir",
        scrub(&compiled.artifacts.llvm_ir_unoptimized)
    );
    // O3 for cortex-a76 must use NEON fused multiply-adds.
    assert!(
        compiled.artifacts.assembly.contains("fmla"),
        "no fmla in the aarch64 assembly"
    );
}

fn grimc(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_grimc"))
        .args(args)
        .output()
        .expect("run grimc");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// Runs grimc, which must succeed, and parses its stdout as one JSON value.
fn grimc_json(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_grimc"))
        .args(args)
        .output()
        .expect("run grimc");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bad_inputs_give_documented_errors_and_no_output() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let out = dir.join("out");
    let out_str = out.to_str().unwrap();
    let good = dir.join("good.onnx");
    save_onnx(&grim_model::demo_mlp(1), &good).unwrap();

    // Truncated ONNX.
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.onnx");
    write(&truncated, &bytes[..bytes.len() / 3]);
    let (code, err) = grimc(&["compile", truncated.to_str().unwrap(), "-o", out_str]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("truncated.onnx"), "{err}");

    // Unknown op: the loader names the node and op type.
    let mut graph = grim_model::demo_mlp(1);
    let mut proto = grim_model::onnx::to_proto(&graph);
    if let Some(g) = proto.graph.as_mut() {
        g.node[1].op_type = "Softsign".into();
    }
    let unknown = dir.join("unknown.onnx");
    write(&unknown, &prost::Message::encode_to_vec(&proto));
    let (code, err) = grimc(&["compile", unknown.to_str().unwrap(), "-o", out_str]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Softsign") && err.contains("relu1"), "{err}");

    // Shape mismatch: an fc2 weight whose K does not match fc1's output.
    let w = graph.initializers.get_mut("fc2.weight").unwrap();
    w.shape = vec![256, 1024];
    let mismatch = dir.join("mismatch.onnx");
    write(
        &mismatch,
        &prost::Message::encode_to_vec(&grim_model::onnx::to_proto(&graph)),
    );
    let (code, err) = grimc(&["compile", mismatch.to_str().unwrap(), "-o", out_str]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("fc2"), "{err}");

    // Malformed MLIR: file:line:col.
    let mlir = dir.join("bad.mlir");
    write(&mlir, b"func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {\n  %y = \"grim.relu\"(%x) : (tensor<2xf32>) -> tensor<3xf32>\n  return %y : tensor<3xf32>\n}\n");
    let (code, err) = grimc(&["compile", mlir.to_str().unwrap(), "-o", out_str]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.mlir:"), "{err}");
    write(&mlir, b"func.func @f( {\n");
    let (code, err) = grimc(&["compile", mlir.to_str().unwrap(), "-o", out_str]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.mlir:1:"), "{err}");

    // Malformed LR: file:line:col from the JSON parser; an unknown layer is named.
    let lr = dir.join("bad.lr.json");
    write(&lr, b"{\n  \"version\": 1,\n  \"layers\": [ { \"name\": \"fc1\", \"sparsity\": {\"kind\": \"bcr\", \"block_rows\": 8 } ]\n}\n");
    let (code, err) = grimc(&[
        "compile",
        good.to_str().unwrap(),
        "--lr",
        lr.to_str().unwrap(),
        "-o",
        out_str,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.lr.json:3:"), "{err}");
    write(&lr, b"{\"version\": 1, \"layers\": [ { \"name\": \"nope\", \"sparsity\": {\"kind\": \"bcr\", \"block_rows\": 8, \"block_cols\": 8 } } ]}");
    let (code, err) = grimc(&[
        "compile",
        good.to_str().unwrap(),
        "--lr",
        lr.to_str().unwrap(),
        "-o",
        out_str,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("'nope'"), "{err}");

    // Missing file.
    let (code, err) = grimc(&[
        "compile",
        dir.join("missing.onnx").to_str().unwrap(),
        "-o",
        out_str,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing.onnx"), "{err}");

    // None of the failures wrote anything.
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
        "a failed command left output behind"
    );

    // And the good model compiles with every artifact.
    let (code, err) = grimc(&[
        "compile",
        good.to_str().unwrap(),
        "--target",
        "aarch64-linux-gnu",
        "--emit",
        "obj,asm,llvm-ir,mlir,header,weights",
        "-o",
        out_str,
    ]);
    assert_eq!(code, 0, "{err}");
    for file in [
        "good.o",
        "good.s",
        "good.ll",
        "good.h",
        "good.weights",
        "good.input.mlir",
        "good.graph.mlir",
        "good.bcr.mlir",
        "good.loops.mlir",
        "good.llvm.mlir",
        "grim_runtime.h",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let header = std::fs::read_to_string(out.join("good.h")).unwrap();
    assert!(
        header.contains("grim_good_run_with_weights")
            && header.contains("GRIM_GOOD_INPUT0_SIZE 256"),
        "{header}"
    );
}

#[test]
fn lr_block_size_is_applied_per_layer() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("m.onnx");
    save_onnx(&grim_model::demo_mlp(2), &model).unwrap();
    let lr = work.path().join("m.lr.json");
    write(&lr, br#"{"version": 1, "layers": [ {"name": "fc2", "sparsity": {"kind": "bcr", "block_rows": 4, "block_cols": 8}, "order": "natural", "schedule": {"register_tile": 3}} ]}"#);
    let mut options = Options::new(&model, "host");
    options.lr = Some(lr);
    let compiled = driver::compile(&options, true, false).unwrap();
    let fc2 = packed_layer(&compiled, "fc2.weight");
    assert_eq!(fc2.block.map(|b| (b.rows, b.cols)), Some((4, 8)));
    assert_eq!(fc2.order, Some(grim_model::Order::Natural));
    let bcr = bcr_stage(&compiled);
    assert_eq!(bcr.matches("register_tile = 3 :").count(), 1, "{bcr}");
    // fc1 is left to the cost model: BCR at the block of its cheapest
    // estimate, every candidate's estimate recorded.
    let fc1 = packed_layer(&compiled, "fc1.weight");
    assert_eq!(fc1.order, Some(grim_model::Order::Grouped));
    let lowered = driver::lower(&options, driver::Level::Bcr).unwrap();
    let choice = lowered
        .products
        .iter()
        .find(|p| p.layer == "fc1")
        .expect("fc1");
    assert_eq!(
        choice.estimates.len(),
        6,
        "dense and five blocks: {:?}",
        choice.estimates
    );
    let (best, _) = choice
        .estimates
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let block = fc1.block.expect("fc1 (pruned 8x) runs BCR");
    assert_eq!(*best, format!("bcr {}x{}", block.rows, block.cols));
    // fc3 has no zeros: the driver gives it the dense kernel on its own.
    let fc3 = packed_layer(&compiled, "fc3.weight");
    assert_eq!((fc3.block, fc3.layout.as_str()), (None, "row_panels"));
    assert_eq!(bcr.matches("\"bcr.gemm\"").count(), 1, "{bcr}");
}

#[test]
fn lr_kernel_choice_overrides_the_weights() {
    // The LR file can force a pruned layer onto the dense kernel and a dense
    // one onto BCR; the results stay equal to the reference either way.
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("m.onnx");
    let graph = grim_model::demo_mlp(4);
    save_onnx(&graph, &model).unwrap();
    let lr = work.path().join("m.lr.json");
    write(&lr, br#"{"version": 1, "layers": [ {"name": "fc1", "sparsity": {"kind": "dense"}}, {"name": "fc3", "sparsity": {"kind": "bcr", "block_rows": 2, "block_cols": 4}} ]}"#);
    let mut options = Options::new(&model, "host");
    options.lr = Some(lr);
    let compiled = driver::compile(&options, true, false).unwrap();
    let layout = |name: &str| packed_layer(&compiled, name).layout.clone();
    assert_eq!(layout("fc1.weight"), "row_panels");
    assert_eq!(layout("fc2.weight"), "col_panels");
    assert_eq!(layout("fc3.weight"), "col_panels");
}

#[test]
fn bench_prints_json_with_latency_figures() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("bench.onnx");
    save_onnx(&grim_model::demo_mlp(3), &model).unwrap();
    let value = grimc_json(&[
        "bench",
        model.to_str().unwrap(),
        "--runs",
        "5",
        "--threads",
        "2",
        "--json",
    ]);
    let (median, min, max) = (
        value["median_ms"].as_f64().unwrap(),
        value["min_ms"].as_f64().unwrap(),
        value["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= median && median <= max, "{value}");
    assert_eq!(value["runs"], 5);
    assert_eq!(value["threads"], 2);
    assert!(
        value.get("layers").is_none(),
        "per-layer times only when asked: {value}"
    );

    // --per-layer: every layer of the MLP by its ONNX node name, each timed.
    let value = grimc_json(&[
        "bench",
        model.to_str().unwrap(),
        "--runs",
        "20",
        "--per-layer",
        "--json",
    ]);
    let layers = value["layers"].as_array().expect("a layers array");
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    // The relus are fused into their gemms' epilogues: three layers run.
    assert_eq!(names, ["fc1", "fc2", "fc3"], "{value}");
    let times: Vec<f64> = layers
        .iter()
        .map(|l| l["mean_ms"].as_f64().unwrap())
        .collect();
    assert!(times.iter().all(|t| *t > 0.0), "{value}");
    // The per-layer times are parts of each run: their means cannot add up
    // to more than the mean run (1e-6: the printed precision).
    assert!(
        times.iter().sum::<f64>() <= value["mean_ms"].as_f64().unwrap() + 1e-5,
        "{value}"
    );
    // fc3 (10x512, dense) does far less work than fc1 and fc2 (512-wide).
    assert!(times[2] < times[0] && times[2] < times[1], "{value}");
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
