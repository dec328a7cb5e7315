//! Weights as users have them and dumps as grimc writes them: a
//! mask-multiplied BCR gemm stores only its kept values; a graph-level dump
//! with its weights replays to the same LLVM IR, one without is refused.

use super::save;

use crate::common::*;
use grim_compiler::driver::Options;
use grim_model::{
    linear_layer, mask_multiplied_bcr_weight, random_bcr_weight, residual_stack, run_reference,
    BlockSize, Graph, ResidualStack,
};
use std::path::Path;
/// `y = x W^T + b` with `W` `[out, in]` (transB = 1) and a batch of `n`:
/// `nn.Linear` as PyTorch exports it.
fn fc_graph(out: usize, features: usize, n: usize, weight: Vec<f32>) -> Graph {
    let mut graph = linear_layer("fc", out, features, n, weight).unwrap();
    graph
        .initializers
        .insert("fc.bias".to_string(), lcg_input(vec![out], 3));
    graph.nodes[0].inputs.push("fc.bias".into());
    graph
}

/// A 256x256 Gemm pruned 8x at 8x16 blocks by mask multiplication (half
/// the rows and a quarter of the columns of each block kept; the pruned
/// negatives are `-0.0`) runs the BCR kernel storing exactly the kept
/// eighth, as the same pattern with `+0.0` zeros does; and it computes the
/// reference's result.
#[test]
fn mask_multiplied_bcr_gemm_stores_the_kept_eighth() {
    let (m, k, n) = (256, 256, 64);
    let block = BlockSize::new(8, 16).unwrap();
    let masked = mask_multiplied_bcr_weight(m, k, block, 0.5, 0.25, 9);
    let positive = random_bcr_weight(m, k, block, 0.5, 0.25, 9);
    assert!(
        masked.iter().any(|v| v.to_bits() == (-0.0f32).to_bits()),
        "the mask-multiplied weight has -0.0 zeros"
    );
    let work = tempfile::tempdir().unwrap();
    for (name, weight) in [("masked", masked.clone()), ("positive", positive)] {
        let model = save(&fc_graph(m, k, n, weight), work.path(), name);
        let report = grimc_json(&["inspect", model.to_str().unwrap(), "--json"]);
        let row = &report["layers"][0];
        assert_eq!(row["layer"], "fc", "{report}");
        assert_eq!(row["kernel"], "bcr", "{name}: {row}");
        assert_eq!(row["stored_values"], m * k / 8, "{name}: {row}");
        // Every stored value is a kept one: -0.0 counts as a zero.
        assert_eq!(row["nonzeros"], m * k / 8, "{name}: {row}");
    }
    let graph = fc_graph(m, k, n, masked);
    let x = lcg_input(vec![n, k], 5);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let model = work.path().join("masked.onnx");
    let (compiled, actual) =
        compile_file_and_run(&Options::new(&model, "host"), work.path(), &[x], 2);
    assert!(packed_layer(&compiled, "fc.weight").block.is_some());
    assert_close(&actual, &expected);
}

// ---------------------------------------------------------------------------
// Replaying a graph-level dump
// ---------------------------------------------------------------------------

/// A graph-level dump printed with `--print-weights` is a whole model:
/// compiling it gives byte for byte the LLVM IR of compiling the ONNX file.
/// One printed without weights is refused (exit 1, the weight named, the
/// fix said) and leaves no output.
#[test]
fn graph_dump_with_weights_replays_to_identical_llvm_ir() {
    let spec = ResidualStack {
        channels: 16,
        size: 16,
        ..ResidualStack::resnet_stage(2)
    };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let model = save(&residual_stack(&spec), dir, "m");
    let model = model.to_str().unwrap();
    let (a, b) = (dir.join("A"), dir.join("B"));
    let compile = |input: &str, out: &Path| {
        let args = [
            "compile",
            input,
            "--emit",
            "llvm-ir",
            "--name",
            "m",
            "-o",
            out.to_str().unwrap(),
        ];
        grimc(&args)
    };
    let (code, err) = compile(model, &a);
    assert_eq!(code, 0, "{err}");
    let dump = dir.join("m.graph.mlir");
    let text = grimc_stdout(&["lower", model, "--compile-to", "graph", "--print-weights"]);
    write(&dump, &text);
    let (code, err) = compile(dump.to_str().unwrap(), &b);
    assert_eq!(code, 0, "{err}");
    let (from_onnx, from_dump) = (
        std::fs::read(a.join("m.ll")).unwrap(),
        std::fs::read(b.join("m.ll")).unwrap(),
    );
    assert!(!from_onnx.is_empty());
    if from_onnx != from_dump {
        let (x, y) = (
            String::from_utf8_lossy(&from_onnx),
            String::from_utf8_lossy(&from_dump),
        );
        let (line, (p, q)) = x
            .lines()
            .zip(y.lines())
            .enumerate()
            .find(|(_, (p, q))| p != q)
            .unwrap_or((x.lines().count().min(y.lines().count()), ("<end>", "<end>")));
        panic!(
            "m.ll differs between the ONNX file and its graph dump, first at line {}:\n{p}\n{q}",
            line + 1
        );
    }

    // Without --print-weights the weights are elided: not a whole model.
    let elided = dir.join("elided.graph.mlir");
    let text = grimc_stdout(&["lower", model, "--compile-to", "graph"]);
    write(&elided, &text);
    let c = dir.join("C");
    let (code, err) = compile(elided.to_str().unwrap(), &c);
    assert_eq!(code, 1, "{err}");
    assert!(
        // The first weight of the dump is the stem conv's (folded with its
        // batch norm, hence a fresh resource key such as `..._1`).
        err.contains("elided.graph.mlir:")
            && err.contains("'dense_resource<stem.conv.weight")
            && err.contains("--print-weights"),
        "{err}"
    );
    assert!(
        !c.join("m.ll").exists()
            && (!c.exists() || std::fs::read_dir(&c).unwrap().next().is_none()),
        "a failed compile left output behind"
    );
}
