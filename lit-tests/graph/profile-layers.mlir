// RUN: grim-opt %s --pass-pipeline='builtin.module(graph-profile-layers)' | %FileCheck %s
// RUN: grim-opt %s --pass-pipeline='builtin.module(graph-profile-layers,graph-plan-memory,lower-grim-to-bcr)' | %FileCheck %s --check-prefix=LOWERED

// Checks that every computing op becomes a profiled layer named by its ONNX
// node (else op#id), constants and reshapes not; after lowering, each
// layer's code is bracketed by the runtime's profile calls.

// CHECK-LABEL: func.func @mlp
// CHECK-SAME: grim.layers = ["fc1", "relu#1"]
// CHECK-NOT: grim.profile_id = {{.*}} : () -> tensor
// CHECK: "grim.gemm"{{.*}}grim.profile_id = 0 : i64
// CHECK: "grim.relu"{{.*}}grim.profile_id = 1 : i64
// CHECK-NOT: "grim.reshape"{{.*}}profile_id
// LOWERED: func.func private @grim_profile_begin(!llvm.ptr, i64)
// LOWERED-LABEL: func.func @mlp(
// LOWERED-SAME: grim.layers = ["fc1", "relu#1"]
// LOWERED: call @grim_profile_begin
// LOWERED: "bcr.spmv"
// LOWERED: call @grim_profile_end
func.func @mlp(%x: tensor<1x32xf32>) -> tensor<16xf32> {
  %w = "grim.constant"() {name = "fc1.weight", value = dense<0.5> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %y = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>) -> tensor<1x16xf32> loc("fc1")
  %r = "grim.relu"(%y) : (tensor<1x16xf32>) -> tensor<1x16xf32>
  %f = "grim.reshape"(%r) : (tensor<1x16xf32>) -> tensor<16xf32>
  return %f : tensor<16xf32>
}
