// RUN: grim-opt %s --split-input-file | grim-opt - --split-input-file | %FileCheck %s

// Checks that every grim op parses, verifies and prints back in generic form
// with its attributes, and that the printed form parses again.

// CHECK-LABEL: func.func @mlp
// CHECK-SAME: (%[[X:.*]]: tensor<2x32xf32>) -> tensor<2x8xf32>
// CHECK: %[[W:.*]] = "grim.weight"() {name = "fc1.weight"} : () -> tensor<16x32xf32>
// CHECK: %[[B:.*]] = "grim.weight"() {name = "fc1.bias"} : () -> tensor<16xf32>
// CHECK: %[[H:.*]] = "grim.gemm"(%[[X]], %[[W]], %[[B]]) {block_cols = 8 : i64, block_rows = 4 : i64} : (tensor<2x32xf32>, tensor<16x32xf32>, tensor<16xf32>) -> tensor<2x16xf32>
// CHECK: %[[R:.*]] = "grim.relu"(%[[H]]) : (tensor<2x16xf32>) -> tensor<2x16xf32>
// CHECK: %[[W2:.*]] = "grim.weight"() {name = "fc2.weight"} : () -> tensor<8x16xf32>
// CHECK: %[[Y:.*]] = "grim.gemm"(%[[R]], %[[W2]]) : (tensor<2x16xf32>, tensor<8x16xf32>) -> tensor<2x8xf32>
// CHECK: return %[[Y]]
func.func @mlp(%x: tensor<2x32xf32>) -> tensor<2x8xf32> {
  %w1 = "grim.weight"() {name = "fc1.weight"} : () -> tensor<16x32xf32>
  %b1 = "grim.weight"() {name = "fc1.bias"} : () -> tensor<16xf32>
  %h = "grim.gemm"(%x, %w1, %b1) {block_rows = 4 : i64, block_cols = 8 : i64} : (tensor<2x32xf32>, tensor<16x32xf32>, tensor<16xf32>) -> tensor<2x16xf32>
  %r = "grim.relu"(%h) : (tensor<2x16xf32>) -> tensor<2x16xf32>
  %w2 = "grim.weight"() {name = "fc2.weight"} : () -> tensor<8x16xf32>
  %y = "grim.gemm"(%r, %w2) : (tensor<2x16xf32>, tensor<8x16xf32>) -> tensor<2x8xf32>
  return %y : tensor<2x8xf32>
}

// -----

// Checks the shape ops: broadcast add with a constant, reshape, transpose.

// CHECK-LABEL: func.func @shapes
// CHECK: %[[C:.*]] = "grim.constant"() {value = dense<1.000000e+00> : tensor<4xf32>} : () -> tensor<4xf32>
// CHECK: %[[S:.*]] = "grim.add"(%{{.*}}, %[[C]]) : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
// CHECK: %[[R:.*]] = "grim.reshape"(%[[S]]) : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
// CHECK: "grim.transpose"(%[[R]]) : (tensor<6x4xf32>) -> tensor<4x6xf32>
func.func @shapes(%x: tensor<2x3x4xf32>) -> tensor<4x6xf32> {
  %c = "grim.constant"() {value = dense<1.0> : tensor<4xf32>} : () -> tensor<4xf32>
  %s = "grim.add"(%x, %c) : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  %r = "grim.reshape"(%s) : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
  %t = "grim.transpose"(%r) : (tensor<6x4xf32>) -> tensor<4x6xf32>
  return %t : tensor<4x6xf32>
}

// -----

// CHECK-LABEL: func.func @conv
// CHECK: "grim.conv2d"(%{{.*}}, %{{.*}}, %{{.*}}) {dilations = array<i64: 1, 1>, pads = array<i64: 1, 0, 1, 0>, strides = array<i64: 2, 1>} : (tensor<1x3x9x8xf32>, tensor<4x3x3x1xf32>, tensor<4xf32>) -> tensor<1x4x5x8xf32>
func.func @conv(%x: tensor<1x3x9x8xf32>) -> tensor<1x4x5x8xf32> {
  %w = "grim.weight"() {name = "w"} : () -> tensor<4x3x3x1xf32>
  %b = "grim.weight"() {name = "b"} : () -> tensor<4xf32>
  %y = "grim.conv2d"(%x, %w, %b) {strides = array<i64: 2, 1>, pads = array<i64: 1, 0, 1, 0>, dilations = array<i64: 1, 1>} : (tensor<1x3x9x8xf32>, tensor<4x3x3x1xf32>, tensor<4xf32>) -> tensor<1x4x5x8xf32>
  return %y : tensor<1x4x5x8xf32>
}
