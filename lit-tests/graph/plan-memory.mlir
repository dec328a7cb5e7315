// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-plan-memory)' | %FileCheck %s
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-plan-memory{reuse=0})' | %FileCheck %s --check-prefix=BUMP
// RUN: not grim-opt %s --pass-pipeline='builtin.module(graph-plan-memory{reuse=2})' 2>&1 | %FileCheck %s --check-prefix=BAD

// Checks liveness and in-place reuse on a chain: relu's result stays alive
// for the add, the tanh writes over the dead sigmoid result in place, and
// the returned add is computed into the caller's output (no offset): two
// 1 KiB buffers for three tensors. Without reuse every tensor has its own.

// CHECK-LABEL: func.func @chain
// CHECK-SAME: grim.activations_bytes = 3072 : i64, grim.arena_bytes = 2048 : i64, grim.largest_activation_bytes = 1024 : i64
// CHECK: "grim.relu"(%arg0) {grim.offset = [[A:[0-9]+]] : i64}
// CHECK: "grim.sigmoid"(%{{.*}}) {grim.offset = [[S:[0-9]+]] : i64}
// CHECK: "grim.tanh"(%{{.*}}) {grim.offset = [[S]] : i64}
// CHECK: "grim.add"(%{{.*}}) :
// BUMP-LABEL: func.func @chain
// BUMP-SAME: grim.arena_bytes = 3072 : i64
// BUMP: grim.offset = 0 : i64
// BUMP: grim.offset = 1024 : i64
// BUMP: grim.offset = 2048 : i64
// BAD: error: pass 'graph-plan-memory': reuse must be 0 or 1, got 2
func.func @chain(%x: tensor<1x256xf32>) -> tensor<1x256xf32> {
  %a = "grim.relu"(%x) : (tensor<1x256xf32>) -> tensor<1x256xf32>
  %b = "grim.sigmoid"(%a) : (tensor<1x256xf32>) -> tensor<1x256xf32>
  %c = "grim.tanh"(%b) : (tensor<1x256xf32>) -> tensor<1x256xf32>
  %d = "grim.add"(%c, %a) : (tensor<1x256xf32>, tensor<1x256xf32>) -> tensor<1x256xf32>
  return %d : tensor<1x256xf32>
}

// -----

// Checks a gemm's temporaries: with two rows it transposes its input to
// [K, N] and accumulates [M, N] before transposing back, so it asks for
// two temporaries beside its result; a conv with a residual may write over
// the dead residual (in place: the result gets the skip's offset).

// CHECK-LABEL: func.func @temporaries
// CHECK: %[[H:.*]] = "grim.gemm"{{.*}}{grim.offset = {{[0-9]+}} : i64, grim.temporaries = array<i64: {{[0-9]+}}, {{[0-9]+}}>, operandSegmentSizes = array<i32: 1, 1, 0, 0>, trans_b}
// CHECK: "grim.relu"{{.*}}{grim.offset = [[SKIP:[0-9]+]] : i64}
// CHECK: "grim.conv2d"{{.*}}grim.offset = [[SKIP]] : i64{{.*}}operandSegmentSizes = array<i32: 1, 1, 0, 1>
module attributes {grim.target = "avx2"} {
  func.func @temporaries(%x: tensor<2x32xf32>, %image: tensor<1x4x4x4xf32>) -> (tensor<2x16xf32>, tensor<1x4x4x4xf32>) {
    %w = "grim.constant"() {value = dense<0.5> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
    %h = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<2x32xf32>, tensor<16x32xf32>) -> tensor<2x16xf32>
    %r = "grim.relu"(%h) : (tensor<2x16xf32>) -> tensor<2x16xf32>
    %skip = "grim.relu"(%image) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
    %k = "grim.constant"() {value = dense<0.5> : tensor<4x4x1x1xf32>} : () -> tensor<4x4x1x1xf32>
    %c = "grim.conv2d"(%image, %k, %skip) {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 1>} : (tensor<1x4x4x4xf32>, tensor<4x4x1x1xf32>, tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
    %y = "grim.sigmoid"(%c) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
    return %r, %y : tensor<2x16xf32>, tensor<1x4x4x4xf32>
  }
}

// -----

// Checks a concat of computed operands along the channels of one image:
// each relu writes straight into its slice of the concat's result (the
// second 1 KiB in), so the concat has nothing to copy; the sigmoid, live
// while the first slice is, gets bytes of its own. Without reuse the
// slices are still placed (they are a placement, not a reuse).

// CHECK-LABEL: func.func @concat_slices
// CHECK-SAME: grim.arena_bytes = 3072 : i64
// CHECK: "grim.relu"(%arg0) {grim.offset = [[#BASE:]] : i64}
// CHECK: "grim.sigmoid"(%arg0) {grim.offset = [[#BASE+2048]] : i64}
// CHECK: "grim.relu"(%{{.*}}) {grim.offset = [[#BASE+1024]] : i64}
// CHECK: "grim.concat"(%{{.*}}, %{{.*}}) {axis = 1 : i64, grim.offset = [[#BASE]] : i64}
// CHECK: "grim.tanh"
// BUMP-LABEL: func.func @concat_slices
// BUMP: "grim.relu"(%arg0) {grim.offset = [[#BASE:]] : i64}
// BUMP: "grim.relu"(%{{.*}}) {grim.offset = [[#BASE+1024]] : i64}
// BUMP: "grim.concat"(%{{.*}}, %{{.*}}) {axis = 1 : i64, grim.offset = [[#BASE]] : i64}
func.func @concat_slices(%x: tensor<1x4x8x8xf32>) -> tensor<1x8x8x8xf32> {
  %a = "grim.relu"(%x) : (tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  %s = "grim.sigmoid"(%x) : (tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  %b = "grim.relu"(%s) : (tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  %c = "grim.concat"(%a, %b) {axis = 1 : i64} : (tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>) -> tensor<1x8x8x8xf32>
  %y = "grim.tanh"(%c) : (tensor<1x8x8x8xf32>) -> tensor<1x8x8x8xf32>
  return %y : tensor<1x8x8x8xf32>
}

// -----

// Checks what stays a copy: along a dim after a non-unit one (two runs per
// operand) nothing is placed (the relu is beside the concat's result, not
// in it), and an operand that is the function's argument is copied while
// the computed one beside it is still placed in its slice (256 bytes in).

// CHECK-LABEL: func.func @concat_copies
// CHECK: "grim.relu"(%arg0) {grim.offset = 1024 : i64}
// CHECK: "grim.concat"(%{{.*}}, %arg0) {axis = 1 : i64, grim.offset = 0 : i64}
// CHECK: "grim.relu"(%arg1) {grim.offset = [[#B:]] : i64}
// CHECK: "grim.concat"(%arg1, %{{.*}}) {axis = 1 : i64, grim.offset = [[#B-256]] : i64}
func.func @concat_copies(%x: tensor<2x4x16xf32>, %z: tensor<1x4x16xf32>) -> (tensor<2x8x16xf32>, tensor<1x8x16xf32>) {
  %a = "grim.relu"(%x) : (tensor<2x4x16xf32>) -> tensor<2x4x16xf32>
  %c = "grim.concat"(%a, %x) {axis = 1 : i64} : (tensor<2x4x16xf32>, tensor<2x4x16xf32>) -> tensor<2x8x16xf32>
  %e = "grim.relu"(%c) : (tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  %b = "grim.relu"(%z) : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
  %d = "grim.concat"(%z, %b) {axis = 1 : i64} : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x8x16xf32>
  %f = "grim.relu"(%d) : (tensor<1x8x16xf32>) -> tensor<1x8x16xf32>
  return %e, %f : tensor<2x8x16xf32>, tensor<1x8x16xf32>
}
