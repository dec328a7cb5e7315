// RUN: echo '{"version": 2, "layers": [{"name": "fc1", "sparsity": {"kind": "bcr", "block_rows": 4, "block_cols": 8}, "order": "natural", "schedule": {"register_tile": 2, "threads": 1}}, {"name": "fc2.weight", "sparsity": {"kind": "dense"}}]}' > %t.json
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-apply-lr{file=%t.json})' | %FileCheck %s
// RUN: echo '{"version": 2, "layers": [{"name": "fc9", "sparsity": {"kind": "dense"}}]}' > %t.unknown.json
// RUN: not grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-apply-lr{file=%t.unknown.json})' 2>&1 | %FileCheck %s --check-prefix=UNKNOWN
// RUN: echo '{"version": 2, "layers": [{"name": "fc1", "sparsity": {"kind": "csr"}}]}' > %t.csr.json
// RUN: not grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-apply-lr{file=%t.csr.json})' 2>&1 | %FileCheck %s --check-prefix=CSR
// RUN: echo '{"version": 2, "layers": [{"name": "fc1", "sparsity": {"kind": "dense"}, "schedule": {"vector_width": 3}}]}' > %t.lanes.json
// RUN: not grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-apply-lr{file=%t.lanes.json})' 2>&1 | %FileCheck %s --check-prefix=LANES
// RUN: not grim-opt %s --pass-pipeline='builtin.module(graph-apply-lr{file=%t.missing.json})' 2>&1 | %FileCheck %s --check-prefix=MISSING

// Checks that the LR file's choices land on the products they name: fc1 by
// its ONNX node name (the gemm's name location), fc2 by its weight's name.

// CHECK-LABEL: func.func @mlp
// CHECK: "grim.gemm"{{.*}}{block_cols = 8 : i64, block_rows = 4 : i64, kernel = "bcr", operandSegmentSizes = array<i32: 1, 1, 0, 0>, order = "natural", register_tile = 2 : i64, threads = 1 : i64, trans_b}
// CHECK: "grim.gemm"{{.*}}{kernel = "dense", operandSegmentSizes = array<i32: 1, 1, 0, 0>, trans_b}
// UNKNOWN: unknown.json: error: layer 'fc9': matches no gemm, conv or recurrent op of the model (by ONNX node name or weight name)
// CSR: layer 'fc1': csr is not a format grim generates code for; use bcr or dense
// LANES: layer 'fc1': vector_width must be 1, 2, 4, 8 or 16, got 3
// MISSING: missing.json: No such file or directory
func.func @mlp(%x: tensor<1x32xf32>) -> tensor<1x8xf32> {
  %w1 = "grim.constant"() {name = "fc1.weight", value = dense<0.5> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %h = "grim.gemm"(%x, %w1) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>) -> tensor<1x16xf32> loc("fc1")
  %w2 = "grim.constant"() {name = "fc2.weight", value = dense<0.5> : tensor<8x16xf32>} : () -> tensor<8x16xf32>
  %y = "grim.gemm"(%h, %w2) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x16xf32>, tensor<8x16xf32>) -> tensor<1x8xf32> loc("other")
  return %y : tensor<1x8xf32>
}
