//! Weights whose blocks all keep the same counts (bcr-uniform-blocks): the
//! walk with constant trip counts and the activation prefetch computes
//! exactly what the counted walk computes, on the host and on aarch64; a
//! weight whose counts differ gets none; a packed weight that claims counts
//! its blocks do not have is refused when the blob is packed.

use crate::common::*;
use grim_compiler::driver::{self, Options};
use grim_model::{
    linear_layer, mask_multiplied_bcr_weight, random_bcr_weight, run_reference, save_onnx,
    BlockSize,
};

/// The gemm `y = x W^T` of a `[m, k]` weight on a batch of `n`, compiled
/// for `target` with or without bcr-uniform-blocks: the bcr stage and the outputs.
fn run(
    weight: &[f32],
    (m, k, n): (usize, usize, usize),
    target: &str,
    uniform: bool,
) -> (String, Vec<grim_model::Tensor>, Vec<grim_model::Tensor>) {
    let graph = linear_layer("fc", m, k, n, weight.to_vec()).unwrap();
    let x = lcg_input(vec![n, k], 11);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("fc.onnx");
    save_onnx(&graph, &model).unwrap();
    let mut options = Options::new(&model, target);
    options.block = Some((8, 16));
    options.kernel = Some("bcr".into());
    options.uniform_blocks = uniform;
    let compiled = driver::compile(&options, true, true).unwrap_or_else(|e| panic!("{e}"));
    let outputs = run_native(&compiled, work.path(), &[x], 2);
    (bcr_stage(&compiled).to_string(), outputs, expected)
}

/// Mask-multiplied 8x16 weights keeping 4 of 8 rows and 4 of 16 columns in
/// every block, as matrices (N = 24: three 8-lane vectors, and N = 5: a
/// masked tail) and as a vector (N = 1): with the counts, the bcr stage
/// says `kept_rows = 4`/`kept_cols = 4` and the output equals the counted
/// walk's bit for bit (the same products in the same order) and the
/// reference's.
#[test]
fn uniform_walk_equals_the_counted_walk_on_host_and_aarch64() {
    let block = BlockSize::new(8, 16).unwrap();
    for target in ["host", "aarch64-linux-gnu"] {
        for (m, k, n) in [(64, 128, 24), (32, 64, 5), (64, 96, 1)] {
            let weight = mask_multiplied_bcr_weight(m, k, block, 0.5, 0.25, 3);
            let (stage, uniform, expected) = run(&weight, (m, k, n), target, true);
            assert!(
                stage.contains("kept_cols = 4 : i64, kept_rows = 4 : i64"),
                "{target} {m}x{k}x{n}: {stage}"
            );
            let (stage, counted, _) = run(&weight, (m, k, n), target, false);
            assert!(!stage.contains("kept_rows"), "{stage}");
            assert_close(&uniform, &expected);
            for (a, b) in uniform.iter().zip(&counted) {
                let bits = |t: &grim_model::Tensor| -> Vec<u32> {
                    t.data.iter().map(|v| v.to_bits()).collect()
                };
                assert_eq!(bits(a), bits(b), "{target} {m}x{k}x{n}");
            }
        }
    }
}

/// A weight whose blocks keep differing counts (one more column pruned in
/// one block) and one the block size does not divide (60 rows: the last
/// strip is 4 rows high) get no counts, and still compute the reference's
/// result.
#[test]
fn differing_counts_get_the_counted_walk() {
    let block = BlockSize::new(8, 16).unwrap();
    let mut weight = random_bcr_weight(64, 128, block, 0.5, 0.25, 4);
    let column = (0..16).find(|&j| weight[j] != 0.0).unwrap();
    for row in 0..8 {
        weight[row * 128 + column] = 0.0;
    }
    let edge = random_bcr_weight(60, 128, block, 0.5, 0.25, 4);
    for (weight, m) in [(weight, 64), (edge, 60)] {
        let (stage, actual, expected) = run(&weight, (m, 128, 16), "host", true);
        assert!(stage.contains("\"bcr.packed\""), "{stage}");
        assert!(!stage.contains("kept_rows"), "{m}: {stage}");
        assert_close(&actual, &expected);
    }
}

/// A `bcr.packed` whose `kept_rows`/`kept_cols` its weight does not have
/// is refused by the blob packer with its location and the counts, instead
/// of running a kernel that would skip kept values.
#[test]
fn false_counts_are_refused_when_the_blob_is_packed() {
    let context = grim_dialects::create_context().unwrap();
    let packed = |kept: &str| {
        format!(
            r#"func.func @f(%blob: memref<?xi8>) {{
  %p:4 = "bcr.packed"(%blob) {{value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "natural"{kept}}} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  return
}}"#
        )
    };
    let true_counts = packed(", kept_rows = 8 : i64, kept_cols = 16 : i64");
    let module = grim_dialects::diag::parse_source(&context, &true_counts).unwrap();
    assert!(grim_compiler::blob::build(&module).is_ok());
    let false_counts = packed(", kept_rows = 4 : i64, kept_cols = 16 : i64");
    let module = grim_dialects::diag::parse_source(&context, &false_counts).unwrap();
    let error = grim_compiler::blob::build(&module)
        .err()
        .expect("false counts refused")
        .to_string();
    assert!(
        error.contains(":2:")
            && error.contains("weight 'w' says every block keeps 4 rows and 16 columns")
            && error.contains("its blocks keep 8 rows and 16 columns"),
        "{error}"
    );
}

/// The object compiled for one weight runs with the blob of another of the
/// same shapes and blocks (`--emit weights`, `run_with_weights`): with
/// other counts per block (4 of 16 columns compiled, 8 of 16 given) the
/// walk falls back to counting, per block, and computes the given weight's
/// result instead of reading past its blocks.
#[test]
fn a_blob_with_other_counts_runs_the_counted_walk() {
    let (m, k, n) = (64, 128, 16);
    let block = BlockSize::new(8, 16).unwrap();
    let compiled_for = mask_multiplied_bcr_weight(m, k, block, 0.5, 0.25, 5);
    let given = random_bcr_weight(m, k, block, 0.5, 0.5, 6);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let x = lcg_input(vec![n, k], 12);
    let mut expected = Vec::new();
    for (name, weight) in [("a", &compiled_for), ("b", &given)] {
        let graph = linear_layer("fc", m, k, n, weight.clone()).unwrap();
        expected.push(run_reference(&graph, std::slice::from_ref(&x)).unwrap());
        let model = dir.join(format!("{name}.onnx"));
        save_onnx(&graph, &model).unwrap();
        let out = dir.join(name);
        let args = [
            "compile",
            model.to_str().unwrap(),
            "--block",
            "8x16",
            "--kernel",
            "bcr",
            "--emit",
            "obj,header,weights,bcr",
            "--name",
            "fc",
            "-o",
            out.to_str().unwrap(),
        ];
        let (code, err) = grimc(&args);
        assert_eq!(code, 0, "{err}");
    }
    let stage = std::fs::read_to_string(dir.join("a").join("fc.bcr.mlir")).unwrap();
    assert!(
        stage.contains("kept_cols = 4 : i64, kept_rows = 4 : i64"),
        "{stage}"
    );
    let stage = std::fs::read_to_string(dir.join("b").join("fc.bcr.mlir")).unwrap();
    assert!(
        stage.contains("kept_cols = 8 : i64, kept_rows = 4 : i64"),
        "{stage}"
    );
    let harness = dir.join("harness.c");
    write(
        &harness,
        r#"#include <stdio.h>
#include <stdlib.h>
#include "grim_runtime.h"
#include "fc.h"
static void* slurp(const char* path, long* bytes) {
  FILE* f = fopen(path, "rb");
  if (!f) exit(4);
  fseek(f, 0, SEEK_END);
  *bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  void* data = aligned_alloc(64, (*bytes + 63) / 64 * 64);
  if (fread(data, 1, *bytes, f) != (size_t)*bytes) exit(4);
  fclose(f);
  return data;
}
int main(int argc, char** argv) {
  long wbytes, xbytes;
  void* weights = slurp(argv[1], &wbytes);
  const float* x = slurp(argv[2], &xbytes);
  long outputs = atol(argv[4]);
  float* y = malloc(outputs * sizeof(float));
  grim_context* ctx = grim_context_create(1);
  const float* ins[1] = {x};
  float* outs[1] = {y};
  if (grim_fc_run_with_weights(ctx, weights, ins, outs) != 0) return 3;
  FILE* f = fopen(argv[3], "wb");
  fwrite(y, sizeof(float), outputs, f);
  fclose(f);
  grim_context_destroy(ctx);
  return 0;
}
"#
        .as_bytes(),
    );
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let runtime = grim_compiler::link::runtime_dir(&triple).unwrap_or_else(|e| panic!("{e}"));
    let exe = dir.join("harness");
    let a = dir.join("a");
    let status = std::process::Command::new("cc")
        .arg("-O2")
        .arg("-I")
        .arg(&a)
        .arg(&harness)
        .arg(a.join("fc.o"))
        .arg(runtime.join("libgrim_runtime.a"))
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .status()
        .unwrap();
    assert!(status.success());
    let input = dir.join("x.raw");
    let bytes: Vec<u8> = x.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input, bytes).unwrap();
    for (name, expected) in ["a", "b"].iter().zip(&expected) {
        let output = dir.join(format!("{name}.raw"));
        let status = std::process::Command::new(&exe)
            .arg(dir.join(name).join("fc.weights"))
            .arg(&input)
            .arg(&output)
            .arg((m * n).to_string())
            .status()
            .unwrap();
        assert!(status.success(), "{name}: {status}");
        let data: Vec<f32> = std::fs::read(&output)
            .unwrap()
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let actual = grim_model::Tensor::new(vec![n, m], data).unwrap();
        assert_close(std::slice::from_ref(&actual), expected);
    }
}
