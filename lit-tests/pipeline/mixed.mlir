// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-plan-memory,lower-grim-to-bcr,canonicalize,cse)' | %FileCheck %s

// Checks that a grim pass and upstream passes run in one pipeline:
// canonicalize hoists and folds the lowering's constants, cse merges the
// duplicate scratch views, so the relu reads the very view the spmv wrote.

// CHECK-LABEL: func.func @mlp
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK-NOT: arith.constant 0 : index
// CHECK: %[[Y:.*]] = memref.view %[[SCRATCH:.*]][%[[OFFSET:.*]]][] : memref<?xi8> to memref<16xf32>
// CHECK: "bcr.spmv"({{.*}}, %[[Y]])
// CHECK-NOT: memref.view %[[SCRATCH]][%[[OFFSET]]][] : memref<?xi8> to memref<16xf32>
// CHECK: scf.for %[[I:.*]] = %[[C0]] to
// CHECK: memref.load %[[Y]][%[[I]]]
// CHECK: arith.maximumf
func.func @mlp(%x: tensor<1x32xf32>) -> tensor<1x16xf32> {
  %w = "grim.constant"() {name = "fc1.weight", value = dense<5.000000e-01> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %b = "grim.constant"() {name = "fc1.bias", value = dense<5.000000e-01> : tensor<16xf32>} : () -> tensor<16xf32>
  %y = "grim.gemm"(%x, %w, %b) {trans_b, operandSegmentSizes = array<i32: 1, 1, 1, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>, tensor<16xf32>) -> tensor<1x16xf32>
  %r = "grim.relu"(%y) : (tensor<1x16xf32>) -> tensor<1x16xf32>
  return %r : tensor<1x16xf32>
}
