//! The cost model against the measurements it was fitted to
//! (tests/data/calibration-kernels.json, the `cargo xtask bench kernels`
//! run the calibration was fitted to), and its qualitative properties.
//!
//! `cargo test -p grim-model --test cost_model -- --ignored --nocapture table`
//! prints the per-row comparison docs/cost-model.md shows; `... refit`
//! fits the calibration again after `cargo xtask bench kernels`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use grim_model::bcrc::bcr_shape;
use grim_model::cost::{
    choose_kernel, elementwise_ns, epilogue_ns, estimate_product, product_ns, transpose_ns,
    BcrShape, Calibration, ConvGeometry, Isa, Kernel, Product, Target, BLOCK_CANDIDATES,
};
use grim_model::{mask_multiplied_bcr_weight, random_bcr_weight, BlockSize};
use serde_json::Value;

fn avx2() -> Target {
    Target::for_isa(Isa::Avx2)
}

fn block(rows: usize, cols: usize) -> BlockSize {
    BlockSize::new(rows, cols).expect("valid block")
}

/// One single-thread grim measurement and what the model needs for it.
#[derive(Debug, Clone)]
struct Case {
    layer: String,
    implementation: String,
    sparsity: Option<String>,
    block: String,
    measured_ms: f64,
    product: Product,
    kernel: Kernel,
}

/// The BCR kernels at fill 1 (every block full, 8x16), single-thread median
/// ms, measured by `cargo xtask bench kernels` at commit 36570c7 (its
/// kernels.json rows `grim-dense`, then "BCR packing at fill 1.0; no dense
/// kernel yet"). The spmm timings of that run and of the current one agree
/// (median ratio 1.005 over the 84 shared rows), so these stand for the
/// current kernels where kernels.json has no full blocks.
const FILL_ONE_8X16_MS: [(&str, f64); 7] = [
    ("vgg16.conv3_1", 25.960255),
    ("vgg16.conv4_2", 50.496488),
    ("resnet18.layer3.conv", 3.773568),
    ("mobilenetv2.expand_1x1", 0.306287),
    ("gru1024.input_proj", 1.646435),
    ("gru1024.recurrent_step", 0.526709),
    ("transformer.fc1", 7.650784),
];

/// The implementation name of the [`FILL_ONE_8X16_MS`] cases.
const FILL_ONE: &str = "grim-bcr-fill1";

fn usize_of(value: &Value, key: &str) -> usize {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("kernels.json: '{key}' is not an integer in {value}"))
        as usize
}

/// Every single-thread row of the four grim implementations, with the BCR
/// shapes of the exact weights the benchmark compiled (same generator,
/// same seeds: xtask/src/bench.rs), then the fill-1 rows. Built once: the
/// weights take seconds to generate in a debug build.
fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(load_cases)
}

fn load_cases() -> Vec<Case> {
    // The run the calibration was fitted to, pinned: a later benchmark run
    // (on a noisier machine, or with new layers) must not move what these
    // tests hold the model to until the model is refitted to it.
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/calibration-kernels.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).expect("kernels.json is JSON");
    let layers: BTreeMap<String, Value> = json["layers"]["layers"]
        .as_array()
        .expect("layers.layers")
        .iter()
        .map(|l| {
            (
                l["name"].as_str().expect("layer name").to_string(),
                l.clone(),
            )
        })
        .collect();
    let sparsities: BTreeMap<String, (f64, f64)> = json["layers"]["sparsity"]
        .as_array()
        .expect("layers.sparsity")
        .iter()
        .map(|s| {
            let keep = |k: &str| s[k].as_f64().expect("keep fraction");
            (
                s["name"].as_str().expect("name").to_string(),
                (keep("row_keep"), keep("col_keep")),
            )
        })
        .collect();
    let mut shapes: BTreeMap<u64, BcrShape> = BTreeMap::new();
    let mut out = Vec::new();
    for row in json["results"].as_array().expect("results") {
        let implementation = row["implementation"].as_str().unwrap_or_default();
        let conv = match implementation {
            "grim-bcr" | "grim-dense" => false,
            "grim-conv-bcr" | "grim-conv-dense" => true,
            _ => continue,
        };
        if row["threads"].as_u64() != Some(1) {
            continue;
        }
        let name = row["layer"].as_str().expect("layer").to_string();
        // Rows of user-layers.json's layers (not in layers.json's list) are
        // user-style models of other shapes; the fit uses the shared shapes.
        let Some(layer) = layers.get(&name) else {
            continue;
        };
        let (m, k, n) = (
            usize_of(layer, "M"),
            usize_of(layer, "K"),
            usize_of(layer, "N"),
        );
        let product = if conv {
            let (h, w, kh, kw) = (
                usize_of(layer, "h"),
                usize_of(layer, "w"),
                usize_of(layer, "kh"),
                usize_of(layer, "kw"),
            );
            let (stride, pad) = (usize_of(layer, "stride"), usize_of(layer, "pad"));
            let geometry = ConvGeometry {
                channels: usize_of(layer, "cin"),
                input: [h, w],
                kernel: [kh, kw],
                stride: [stride; 2],
                pads: [pad; 4],
                output: [
                    (h + 2 * pad - kh) / stride + 1,
                    (w + 2 * pad - kw) / stride + 1,
                ],
            };
            let p = Product::conv(m, 1, geometry);
            assert_eq!((p.k, p.n), (k, n), "{name}: conv geometry vs GEMM view");
            p
        } else {
            Product::kn(m, k, n)
        };
        let sparsity = row["sparsity"].as_str().map(str::to_string);
        let block_text = row["block"].as_str().expect("block").to_string();
        let kernel = match &sparsity {
            None => Kernel::Dense,
            Some(s) => {
                let (row_keep, col_keep) = sparsities[s];
                let blk: BlockSize = block_text.parse().expect("block size");
                let seed = row["seed"].as_u64().expect("seed");
                let shape = *shapes.entry(seed).or_insert_with(|| {
                    let w = random_bcr_weight(m, k, blk, row_keep, col_keep, seed);
                    bcr_shape(&w, m, k, blk).expect("benchmark weight")
                });
                Kernel::Bcr(shape)
            }
        };
        out.push(Case {
            layer: name,
            implementation: implementation.to_string(),
            sparsity,
            block: block_text,
            measured_ms: row["median_ms"].as_f64().expect("median_ms"),
            product,
            kernel,
        });
    }
    assert!(
        out.len() >= 100,
        "only {} single-thread grim rows",
        out.len()
    );
    for (name, measured_ms) in FILL_ONE_8X16_MS {
        let layer = &layers[name];
        let (m, k, n) = (
            usize_of(layer, "M"),
            usize_of(layer, "K"),
            usize_of(layer, "N"),
        );
        let blk = block(8, 16);
        out.push(Case {
            layer: name.to_string(),
            implementation: FILL_ONE.to_string(),
            sparsity: Some("1x".to_string()),
            block: blk.to_string(),
            measured_ms,
            product: Product::kn(m, k, n),
            kernel: Kernel::Bcr(BcrShape::uniform(m, k, blk, 8, 16)),
        });
    }
    out
}

fn estimated_ms(target: &Target, case: &Case) -> f64 {
    product_ns(target, &case.product, &case.kernel) * 1e-6
}

/// `estimated / measured` of every case.
fn ratios(target: &Target, cases: &[Case]) -> Vec<f64> {
    cases
        .iter()
        .map(|c| estimated_ms(target, c) / c.measured_ms)
        .collect()
}

#[test]
fn every_benchmark_row_is_within_a_factor_of_two() {
    let target = avx2();
    let cases = cases();
    let mut worst = (1.0f64, String::new());
    for (case, ratio) in cases.iter().zip(ratios(&target, cases)) {
        let what = format!(
            "{} {} {:?} {}: measured {:.4} ms, estimated {:.4} ms",
            case.layer,
            case.implementation,
            case.sparsity,
            case.block,
            case.measured_ms,
            ratio * case.measured_ms
        );
        assert!((0.5..=2.0).contains(&ratio), "{what}");
        if ratio.ln().abs() > worst.0.ln().abs() {
            worst = (ratio, what);
        }
    }
    // Tighter than the contract, so a regression of the fit shows: the
    // worst row (docs/cost-model.md: 1.62x, the outlier below) within 1.7x.
    assert!(worst.0.ln().abs() < 1.7f64.ln(), "worst: {}", worst.1);
}

#[test]
fn typical_error_stays_small() {
    let target = avx2();
    let cases = cases();
    let logs: Vec<f64> = ratios(&target, cases).iter().map(|r| r.ln()).collect();
    let rms = (logs.iter().map(|l| l * l).sum::<f64>() / logs.len() as f64).sqrt();
    // docs/cost-model.md states the fitted figure; this bounds it.
    assert!(rms < 0.2, "rms log error {rms:.3}");
}

/// The measurement this check leaves out, and why (docs/cost-model.md,
/// "Blind spots"): none of the model's terms grows faster than linearly in
/// the kept columns, and this row does.
fn known_outlier(case: &Case) -> bool {
    // gru1024.input_proj, 4x, 4x16: 2.83x its 8x time for 2x the kept
    // columns (every other 4x/8x pair of this layer: 1.4x-1.6x), and
    // 16% slower than dense where 4x16 at 8x is 2.4x faster.
    case.layer == "gru1024.input_proj"
        && case.sparsity.as_deref() == Some("4x")
        && case.block == "4x16"
}

#[test]
fn dense_and_bcr_are_ranked_as_measured() {
    let target = avx2();
    let cases = cases();
    let dense: BTreeMap<&str, &Case> = cases
        .iter()
        .filter(|c| c.implementation == "grim-dense")
        .map(|c| (c.layer.as_str(), c))
        .collect();
    let mut checked = 0;
    for case in cases
        .iter()
        .filter(|c| c.implementation == "grim-bcr" || c.implementation == FILL_ONE)
    {
        let reference = dense[case.layer.as_str()];
        let measured = case.measured_ms / reference.measured_ms;
        if (1.0 / 1.15..=1.15).contains(&measured) || known_outlier(case) {
            continue;
        }
        let estimated = estimated_ms(&target, case) / estimated_ms(&target, reference);
        assert_eq!(
            estimated < 1.0,
            measured < 1.0,
            "{} {:?} {}: BCR / dense measured {measured:.3}, estimated {estimated:.3}",
            case.layer,
            case.sparsity,
            case.block
        );
        checked += 1;
    }
    assert!(checked >= 75, "only {checked} pairs compared");
}

#[test]
fn the_best_measured_block_is_estimated_close_to_the_best() {
    // The choice among blocks (each measured on its own weight): the block
    // the model would pick runs within 1.4x of the measured best. Not
    // tighter: single rows move by up to 1.47x between two runs of the same
    // kernel (36570c7 vs this kernels.json), and the worst pick, resnet18 at
    // 16x in 32x32 blocks (1.37x here), measured 0.264 ms in the earlier
    // run, which would make it the best.
    let target = avx2();
    let cases = cases();
    for ((layer, sparsity), group) in bcr_groups(cases) {
        let best_measured = group
            .iter()
            .map(|c| c.measured_ms)
            .fold(f64::INFINITY, f64::min);
        let picked = group
            .iter()
            .min_by(|a, b| estimated_ms(&target, a).total_cmp(&estimated_ms(&target, b)))
            .expect("non-empty group");
        assert!(
            picked.measured_ms <= 1.4 * best_measured,
            "{layer} {sparsity}: model picks {} ({:.4} ms), best measured {best_measured:.4} ms",
            picked.block,
            picked.measured_ms
        );
    }
}

#[test]
fn benchmark_weights_have_the_uniform_shape() {
    // random_bcr_weight keeps the same rows and columns per block as
    // BcrShape::uniform assumes, so the pruning tool's estimate before
    // pruning equals the compiler's after.
    let (m, k, blk) = (256, 1152, block(16, 32));
    let w = random_bcr_weight(m, k, blk, 0.25, 0.25, 9);
    assert_eq!(
        bcr_shape(&w, m, k, blk).unwrap(),
        BcrShape::uniform(m, k, blk, 4, 8)
    );
}

#[test]
fn bcr_shape_counts_what_packing_stores() {
    use grim_model::bcrc::stored_values;
    use grim_model::{Bcrc, Order};
    // 37 x 45 (edge blocks both ways); strips 1 and 3 all zero; -0.0 and a
    // tiny denormal sprinkled in: -0.0 is a zero, the denormal is not.
    let (m, k, blk) = (37, 45, block(8, 16));
    let mut w = random_bcr_weight(m, k, blk, 0.5, 0.3, 5);
    for (i, v) in w.iter_mut().enumerate() {
        let row = i / k;
        if (8..16).contains(&row) || (24..32).contains(&row) {
            *v = if i % 3 == 0 { -0.0 } else { 0.0 };
        } else if *v == 0.0 && i % 97 == 0 {
            *v = if i % 2 == 0 {
                -0.0
            } else {
                f32::MIN_POSITIVE / 4.0
            };
        }
    }
    let shape = bcr_shape(&w, m, k, blk).unwrap();
    let packed = Bcrc::pack(&w, m, k, blk, Order::Grouped).unwrap();
    let stats = packed.stats();
    assert_eq!(shape.stored_values, stats.stored_values);
    assert_eq!(shape.stored_values, stored_values(&w, m, k, blk).unwrap());
    assert_eq!(
        (shape.blocks, shape.strips),
        (stats.blocks, packed.num_strips())
    );
    assert_eq!(shape.strips, 3);
    assert_eq!(shape.index_bytes(), stats.index_bytes);
    let (mut rows, mut cols, mut leftover, mut leftover_values) = (0, 0, 0, 0);
    for b in packed.blocks() {
        rows += b.kept_rows.len();
        cols += b.kept_cols.len();
        leftover += b.kept_rows.len() % 4;
        leftover_values += b.kept_rows.len() % 4 * b.kept_cols.len();
    }
    assert_eq!((shape.row_visits, shape.col_visits), (rows, cols));
    assert_eq!(
        (shape.leftover_rows, shape.leftover_row_cols),
        (leftover, leftover_values)
    );
    assert!(bcr_shape(&w[1..], m, k, blk).is_err());
}

#[test]
fn a_dense_matrix_stays_dense() {
    // Fill 1: BCR stores every value plus indices and decodes every block.
    // Not at every N, though: where N is not a multiple of 24 (N = 32,
    // 64-196) the estimate of BCR 32x32 at fill 1 is below dense
    // (docs/cost-model.md, "Blind spots"), because the dense 4x3 tile
    // leaves 8 or 16 columns to latency-bound one-vector tails where BCR's
    // 4x2 tile has none; extrapolating the measured 32x32 rows of
    // transformer.fc1 (N = 128) from 8 and 16 kept rows and columns to 32
    // says the same. These N are where the evidence says dense.
    let target = avx2();
    let (m, k) = (512, 768);
    let w: Vec<f32> = (0..m * k)
        .map(|i| ((i % 7) as f32 - 3.0) * 0.25 + 0.1)
        .collect();
    for n in [1, 16, 784, 3136] {
        let choice = choose_kernel(&target, &Product::kn(m, k, n), &w, &BLOCK_CANDIDATES).unwrap();
        assert_eq!(
            choice.kernel,
            Kernel::Dense,
            "N = {n}: {:?}",
            choice.candidates
        );
        assert_eq!(choice.candidates.len(), 1 + BLOCK_CANDIDATES.len());
        assert_eq!(choice.candidates[0].label, "dense");
        assert!(choice.candidates.iter().all(|c| c.ns > 0.0));
    }
}

#[test]
fn an_8x_pruned_matrix_goes_bcr_at_least_4x_cheaper() {
    let target = avx2();
    let (m, k, n) = (1536, 1536, 64);
    let blk = block(8, 16);
    let product = Product::kn(m, k, n);
    for w in [
        random_bcr_weight(m, k, blk, 0.5, 0.25, 11),
        mask_multiplied_bcr_weight(m, k, blk, 0.5, 0.25, 11),
    ] {
        let choice = choose_kernel(&target, &product, &w, &BLOCK_CANDIDATES).unwrap();
        let Kernel::Bcr(shape) = choice.kernel else {
            panic!("chose dense: {:?}", choice.candidates);
        };
        let dense = choice.candidates[0].ns;
        let chosen = product_ns(&target, &product, &choice.kernel);
        assert!(
            dense >= 4.0 * chosen,
            "dense {dense} ns vs {} {chosen} ns",
            shape.block
        );
        // The pruning's own block stores an eighth; it is one of the candidates.
        let own = choice
            .candidates
            .iter()
            .find(|c| c.label == "bcr 8x16")
            .unwrap();
        assert!(own.ns < dense / 4.0, "{own:?} vs dense {dense}");
    }
}

#[test]
fn estimates_grow_with_n_and_with_stored_values() {
    let target = avx2();
    let (m, k, blk) = (1024, 1024, block(8, 16));
    let sparse = Kernel::Bcr(BcrShape::uniform(m, k, blk, 4, 4));
    let denser = Kernel::Bcr(BcrShape::uniform(m, k, blk, 4, 8));
    let full = Kernel::Bcr(BcrShape::uniform(m, k, blk, 8, 16));
    for kernel in [Kernel::Dense, sparse] {
        let mut last = 0.0;
        for n in [1, 2, 8, 16, 64, 196, 1024, 3136] {
            let ns = product_ns(&target, &Product::kn(m, k, n), &kernel);
            assert!(ns > last, "{} at N = {n}: {ns} <= {last}", kernel.label());
            last = ns;
        }
    }
    for n in [1, 16, 128, 784] {
        let p = Product::kn(m, k, n);
        let costs: Vec<f64> = [sparse, denser, full]
            .iter()
            .map(|kn| product_ns(&target, &p, kn))
            .collect();
        assert!(
            costs[0] < costs[1] && costs[1] < costs[2],
            "N = {n}: {costs:?}"
        );
    }
}

#[test]
fn matrix_vector_products_are_bandwidth_bound() {
    let target = avx2();
    // gru1024.recurrent_step: the dense GEMV streams 12.6 MB of W.
    let e = estimate_product(&target, &Product::kn(3072, 1024, 1), &Kernel::Dense);
    assert!(e.memory_ns > e.compute_ns, "{e:?}");
    assert!((e.ns - 12.6e6 / target.l3_gbs).abs() < 0.1 * e.ns, "{e:?}");
    assert_eq!(e.flops, 2.0 * 3072.0 * 1024.0);
    // A lane-width N wastes most of an 8-lane vector on N = 2, not on N = 8.
    let per_column =
        |n: usize| product_ns(&target, &Product::kn(1024, 1024, n), &Kernel::Dense) / n as f64;
    assert!(
        per_column(2) > 2.0 * per_column(8),
        "{} vs {}",
        per_column(2),
        per_column(8)
    );
}

#[test]
fn transposes_are_charged_unless_cancelled() {
    let target = avx2();
    let (m, k, n) = (512, 512, 64);
    let kernel = Kernel::Bcr(BcrShape::uniform(m, k, block(8, 16), 4, 4));
    let with = product_ns(&target, &Product::gemm(m, k, n), &kernel);
    let without = product_ns(&target, &Product::kn(m, k, n), &kernel);
    let expected = transpose_ns(&target, n, k) + transpose_ns(&target, m, n);
    assert!(
        (with - without - expected).abs() < 1e-6 * with,
        "{with} {without} {expected}"
    );
}

#[test]
fn convs_pay_for_their_im2col() {
    let target = avx2();
    let geometry = |pads: usize, kernel: usize, hw: usize| ConvGeometry {
        channels: 256,
        input: [hw, hw],
        kernel: [kernel; 2],
        stride: [1, 1],
        pads: [pads; 4],
        output: [hw + 2 * pads + 1 - kernel; 2],
    };
    let shape = |k: usize| Kernel::Bcr(BcrShape::uniform(256, k, block(16, 32), 8, 8));
    // A narrow 3x3 conv multiplies an explicit patch matrix: more than its GEMM view.
    let conv = Product::conv(256, 1, geometry(1, 3, 14));
    let view = Product::kn(256, conv.k, conv.n);
    assert!(
        product_ns(&target, &conv, &shape(conv.k)) > product_ns(&target, &view, &shape(conv.k))
    );
    // A pointwise conv costs its GEMM view.
    let pointwise = Product::conv(256, 1, geometry(0, 1, 14));
    let view = Product::kn(256, 256, 196);
    let (a, b) = (
        product_ns(&target, &pointwise, &shape(256)),
        product_ns(&target, &view, &shape(256)),
    );
    assert!((a - b).abs() < 1e-9 * a, "{a} vs {b}");
    // Images multiply the work.
    let two = Product::conv(256, 2, geometry(1, 3, 14));
    let ratio =
        product_ns(&target, &two, &Kernel::Dense) / product_ns(&target, &conv, &Kernel::Dense);
    assert!((ratio - 2.0).abs() < 1e-9, "{ratio}");
}

#[test]
fn elementwise_passes_scale_with_bytes() {
    let target = avx2();
    // Large tensors stream from DRAM: time is proportional to bytes.
    let big = 64 << 20;
    let one = elementwise_ns(&target, big, 1, 1, 1.0);
    assert!((elementwise_ns(&target, 2 * big, 1, 1, 1.0) / one - 2.0).abs() < 1e-9);
    assert!((elementwise_ns(&target, big, 2, 1, 1.0) / one - 1.5).abs() < 1e-9);
    assert!((one - (big * 8) as f64 / target.dram_gbs).abs() < 1e-6 * one);
    // Smaller working sets are served by faster levels.
    let per_byte =
        |elements: usize| elementwise_ns(&target, elements, 1, 1, 1.0) / (elements * 8) as f64;
    assert!(per_byte(1 << 10) < per_byte(1 << 15));
    assert!(per_byte(1 << 15) < per_byte(1 << 20));
    assert!(per_byte(1 << 20) < per_byte(big));
    // A fused epilogue costs a small part of the pass it replaces.
    let elements = 256 * 3136;
    assert!(
        epilogue_ns(&target, elements, 0, 1.0) < 0.2 * elementwise_ns(&target, elements, 1, 1, 1.0)
    );
    assert!(epilogue_ns(&target, elements, 1, 1.0) > epilogue_ns(&target, elements, 0, 1.0));
    assert_eq!(elementwise_ns(&target, 0, 1, 1, 1.0), 0.0);
}

#[test]
fn every_target_gives_finite_positive_estimates() {
    for isa in Isa::ALL {
        let target = Target::for_isa(isa);
        for n in [1, 3, 16, 100, 3136] {
            for kernel in [
                Kernel::Dense,
                Kernel::Bcr(BcrShape::uniform(300, 200, block(16, 16), 3, 5)),
            ] {
                let ns = product_ns(&target, &Product::gemm(300, 200, n), &kernel);
                assert!(
                    ns.is_finite() && ns > 0.0,
                    "{isa} N = {n} {}: {ns}",
                    kernel.label()
                );
            }
        }
        // An all-zero weight still fills its output.
        let empty = Kernel::Bcr(BcrShape::uniform(64, 64, block(8, 16), 0, 0));
        assert!(product_ns(&target, &Product::kn(64, 64, 8), &empty) > 0.0);
        assert_eq!(
            product_ns(&target, &Product::kn(0, 64, 8), &Kernel::Dense),
            0.0
        );
    }
    // Hand-built nonsense degrades to a number, not a panic.
    let odd = Target {
        lanes: 0,
        vector_registers: 0,
        ..avx2()
    };
    let shape = BcrShape {
        leftover_row_cols: usize::MAX,
        ..BcrShape::uniform(64, 64, block(8, 16), 3, 3)
    };
    for n in [1, 5, 64] {
        for kernel in [Kernel::Dense, Kernel::Bcr(shape)] {
            assert!(!product_ns(&odd, &Product::gemm(64, 64, n), &kernel).is_nan());
        }
    }
}

// ---------------------------------------------------------------------------
// Reports and refitting (ignored: run by hand after `cargo xtask bench kernels`).
// ---------------------------------------------------------------------------

#[test]
#[ignore = "prints the accuracy table of docs/cost-model.md"]
fn table() {
    let target = avx2();
    let cases = cases();
    println!("| layer | kernel | sparsity | block | measured ms | estimated ms | est / meas |");
    println!("| --- | --- | --- | --- | --: | --: | --: |");
    for (case, ratio) in cases.iter().zip(ratios(&target, cases)) {
        println!(
            "| {} | {} | {} | {} | {:.4} | {:.4} | {:.2} |",
            case.layer,
            case.implementation.trim_start_matches("grim-"),
            case.sparsity.as_deref().unwrap_or("-"),
            if case.sparsity.is_some() {
                case.block.as_str()
            } else {
                "-"
            },
            case.measured_ms,
            ratio * case.measured_ms,
            ratio
        );
    }
    summary(&target, cases);
    println!();
    println!("| layer | sparsity | best measured | model's pick | pick's measured ms / best |");
    println!("| --- | --- | --- | --- | --: |");
    for ((layer, sparsity), group) in bcr_groups(cases) {
        let best = group
            .iter()
            .min_by(|a, b| a.measured_ms.total_cmp(&b.measured_ms))
            .expect("group");
        let picked = group
            .iter()
            .min_by(|a, b| estimated_ms(&target, a).total_cmp(&estimated_ms(&target, b)))
            .expect("group");
        println!(
            "| {layer} | {sparsity} | {} ({:.4} ms) | {} | {:.2} |",
            best.block,
            best.measured_ms,
            picked.block,
            picked.measured_ms / best.measured_ms
        );
    }
}

/// The `grim-bcr` cases of each (layer, sparsity): one per block size.
fn bcr_groups(cases: &[Case]) -> BTreeMap<(String, String), Vec<&Case>> {
    let mut groups: BTreeMap<(String, String), Vec<&Case>> = BTreeMap::new();
    for case in cases.iter().filter(|c| c.implementation == "grim-bcr") {
        let key = (
            case.layer.clone(),
            case.sparsity.clone().unwrap_or_default(),
        );
        groups.entry(key).or_default().push(case);
    }
    groups
}

fn summary(target: &Target, cases: &[Case]) {
    for kind in [
        "grim-bcr",
        "grim-dense",
        "grim-conv-bcr",
        "grim-conv-dense",
        FILL_ONE,
    ] {
        let rs: Vec<f64> = cases
            .iter()
            .filter(|c| c.implementation == kind)
            .map(|c| estimated_ms(target, c) / c.measured_ms)
            .collect();
        let logs: Vec<f64> = rs.iter().map(|r| r.ln().abs()).collect();
        let rms = (logs.iter().map(|l| l * l).sum::<f64>() / logs.len() as f64).sqrt();
        let within = |f: f64| rs.iter().filter(|r| r.ln().abs() <= f.ln()).count();
        println!(
            "{kind}: {} rows, rms log error {rms:.3} (~{:.0}%), worst {:.2}x, within 1.25x: {}, within 1.5x: {}",
            rs.len(),
            (rms.exp() - 1.0) * 100.0,
            logs.iter().cloned().fold(0.0, f64::max).exp(),
            within(1.25),
            within(1.5)
        );
    }
}

/// Squared log error of `calibration` over `cases`.
fn loss(cases: &[Case], calibration: Calibration) -> f64 {
    let target = Target {
        calibration,
        ..avx2()
    };
    ratios(&target, cases).iter().map(|r| r.ln().powi(2)).sum()
}

/// Nelder-Mead over the logs of the coefficients (keeps them positive).
fn nelder_mead(f: &dyn Fn(&[f64]) -> f64, start: &[f64], iterations: usize) -> Vec<f64> {
    let n = start.len();
    let mut simplex: Vec<Vec<f64>> = vec![start.to_vec()];
    for i in 0..n {
        let mut p = start.to_vec();
        p[i] += 0.3;
        simplex.push(p);
    }
    let mut values: Vec<f64> = simplex.iter().map(|p| f(p)).collect();
    for _ in 0..iterations {
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        simplex = order.iter().map(|&i| simplex[i].clone()).collect();
        values = order.iter().map(|&i| values[i]).collect();
        if values[n] - values[0] < 1e-12 {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|p| p[j]).sum::<f64>() / n as f64)
            .collect();
        let toward = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|j| centroid[j] + t * (simplex[n][j] - centroid[j]))
                .collect()
        };
        let reflected = toward(-1.0);
        let fr = f(&reflected);
        if fr < values[0] {
            let expanded = toward(-2.0);
            let fe = f(&expanded);
            (simplex[n], values[n]) = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
        } else if fr < values[n - 1] {
            (simplex[n], values[n]) = (reflected, fr);
        } else {
            let contracted = toward(0.5);
            let fc = f(&contracted);
            if fc < values[n] {
                (simplex[n], values[n]) = (contracted, fc);
            } else {
                for i in 1..=n {
                    simplex[i] = (0..n)
                        .map(|j| simplex[0][j] + 0.5 * (simplex[i][j] - simplex[0][j]))
                        .collect();
                    values[i] = f(&simplex[i]);
                }
            }
        }
    }
    simplex.swap_remove(0)
}

#[test]
#[ignore = "refits the calibration to kernels.json; paste the result into Calibration::FITTED"]
fn refit() {
    let cases = cases();
    let start: Vec<f64> = Calibration::FITTED
        .to_vec()
        .iter()
        .map(|v| v.ln())
        .collect();
    let objective = |logs: &[f64]| {
        let values: Vec<f64> = logs.iter().map(|l| l.exp()).collect();
        let calibration = Calibration::from_slice(&values).expect("one value per coefficient");
        // A fraction: more than all of the shorter time cannot be exposed.
        if calibration.exposed_overlap > 1.0 {
            return f64::INFINITY;
        }
        loss(cases, calibration)
    };
    let mut best = start;
    for _ in 0..4 {
        best = nelder_mead(&objective, &best, 600);
    }
    let values: Vec<f64> = best.iter().map(|l| l.exp()).collect();
    let fitted = Calibration::from_slice(&values).expect("one value per coefficient");
    println!("before: loss {:.4}", loss(cases, Calibration::FITTED));
    println!("after:  loss {:.4}", loss(cases, fitted));
    for (name, value) in Calibration::NAMES.iter().zip(&values) {
        println!("        {name}: {value:.3},");
    }
    summary(
        &Target {
            calibration: fitted,
            ..avx2()
        },
        cases,
    );
}
