//! What an LR file forces on a layer: the kernel, the block, the order and
//! every schedule field, each kept equal to the reference.

use crate::common::*;
use grim_compiler::driver::{self, Options};
use grim_model::{run_reference, save_onnx, BlockSize};
use proptest::prelude::*;

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

/// Random [`ScheduleCase`]s: a [`gemm_cases`] gemm and any subset of the
/// schedule fields an LR file may set.
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
fn lr_block_size_is_applied_per_layer() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("m.onnx");
    save_onnx(&grim_model::demo_mlp(2), &model).unwrap();
    let lr = work.path().join("m.lr.json");
    write(&lr, br#"{"version": 1, "layers": [ {"name": "fc2", "sparsity": {"kind": "bcr", "block_rows": 4, "block_cols": 8}, "order": "natural", "schedule": {"register_tile": 3}} ]}"#);
    let mut options = Options::new(&model, "host");
    // The cost model's choices depend on the vector width: pin an AVX2 CPU,
    // so an AVX-512 host chooses as the assertions say.
    options.cpu = Some("haswell".into());
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
    // The cost model's choices depend on the vector width: pin an AVX2 CPU,
    // so an AVX-512 host chooses as the assertions say.
    options.cpu = Some("haswell".into());
    options.lr = Some(lr);
    let compiled = driver::compile(&options, true, false).unwrap();
    let layout = |name: &str| packed_layer(&compiled, name).layout.clone();
    assert_eq!(layout("fc1.weight"), "row_panels");
    assert_eq!(layout("fc2.weight"), "col_panels");
    assert_eq!(layout("fc3.weight"), "col_panels");
}
