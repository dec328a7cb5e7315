// RUN: grim-opt %s --pass-pipeline='builtin.module(graph-plan-memory,lower-grim-to-bcr,bcr-reorder,bcr-vectorize{vector-width=4},lower-bcr-to-loops,canonicalize,convert-vector-to-scf,convert-scf-to-cf,convert-vector-to-llvm,expand-strided-metadata,finalize-memref-to-llvm,convert-math-to-llvm,convert-arith-to-llvm,convert-index-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,reconcile-unrealized-casts)' | %FileCheck %s

// Checks that a two-layer grim MLP goes all the way to the LLVM dialect: the
// kernel function keeps the grim ABI attributes, gets a C interface wrapper,
// the spmm inner loop is a vector fused multiply-add, and neither a grim nor
// a bcr op (nor any other non-LLVM op) is left.

// CHECK-LABEL: llvm.func @mlp(
// CHECK-SAME: grim.num_inputs = 1 : i64, grim.num_outputs = 1 : i64, grim.num_slots = 9 : i64
// CHECK-SAME: llvm.emit_c_interface
// CHECK-NOT: grim.
// CHECK-NOT: bcr.
// CHECK-NOT: func.func
// CHECK-NOT: scf.
// CHECK-NOT: memref.
// CHECK: llvm.intr.fmuladd({{.*}}) : (vector<4xf32>, vector<4xf32>, vector<4xf32>) -> vector<4xf32>
// CHECK: llvm.intr.maximum
// CHECK: llvm.intr.fmuladd({{.*}}) : (vector<4xf32>, vector<4xf32>, vector<4xf32>) -> vector<4xf32>
// CHECK-NOT: grim.
// CHECK-NOT: bcr.
// CHECK-LABEL: llvm.func @_mlir_ciface_mlp(
// CHECK: llvm.call @mlp(
func.func @mlp(%x: tensor<4x32xf32>) -> tensor<4x8xf32> {
  %w1 = "grim.constant"() {name = "fc1.weight", value = dense<5.000000e-01> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %b1 = "grim.constant"() {name = "fc1.bias", value = dense<5.000000e-01> : tensor<16xf32>} : () -> tensor<16xf32>
  %h = "grim.gemm"(%x, %w1, %b1) {trans_b, operandSegmentSizes = array<i32: 1, 1, 1, 0>} : (tensor<4x32xf32>, tensor<16x32xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  %r = "grim.relu"(%h) : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %w2 = "grim.constant"() {name = "fc2.weight", value = dense<5.000000e-01> : tensor<8x16xf32>} : () -> tensor<8x16xf32>
  %y = "grim.gemm"(%r, %w2) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<4x16xf32>, tensor<8x16xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
