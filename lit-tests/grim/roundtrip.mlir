// RUN: grim-opt %s --split-input-file | grim-opt - --split-input-file | %FileCheck %s

// Checks that every grim op parses, verifies and prints back in generic form
// with its attributes, and that the printed form parses again.

// CHECK-LABEL: func.func @mlp
// CHECK-SAME: (%[[X:.*]]: tensor<2x32xf32>) -> tensor<2x8xf32>
// CHECK: %[[W:.*]] = "grim.constant"() {name = "fc1.weight", value = dense<5.000000e-01> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
// CHECK: %[[B:.*]] = "grim.constant"() {name = "fc1.bias", value = dense<5.000000e-01> : tensor<16xf32>} : () -> tensor<16xf32>
// CHECK: %[[H:.*]] = "grim.gemm"(%[[X]], %[[W]], %[[B]]) {block_cols = 8 : i64, block_rows = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0>, trans_b} : (tensor<2x32xf32>, tensor<16x32xf32>, tensor<16xf32>) -> tensor<2x16xf32>
// CHECK: %[[R:.*]] = "grim.relu"(%[[H]]) : (tensor<2x16xf32>) -> tensor<2x16xf32>
// CHECK: %[[W2:.*]] = "grim.constant"() {name = "fc2.weight", value = dense<5.000000e-01> : tensor<8x16xf32>} : () -> tensor<8x16xf32>
// CHECK: %[[Y:.*]] = "grim.gemm"(%[[R]], %[[W2]]) {operandSegmentSizes = array<i32: 1, 1, 0, 0>, trans_b} : (tensor<2x16xf32>, tensor<8x16xf32>) -> tensor<2x8xf32>
// CHECK: return %[[Y]]
func.func @mlp(%x: tensor<2x32xf32>) -> tensor<2x8xf32> {
  %w1 = "grim.constant"() {name = "fc1.weight", value = dense<5.000000e-01> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %b1 = "grim.constant"() {name = "fc1.bias", value = dense<5.000000e-01> : tensor<16xf32>} : () -> tensor<16xf32>
  %h = "grim.gemm"(%x, %w1, %b1) {trans_b, block_rows = 4 : i64, block_cols = 8 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0>} : (tensor<2x32xf32>, tensor<16x32xf32>, tensor<16xf32>) -> tensor<2x16xf32>
  %r = "grim.relu"(%h) : (tensor<2x16xf32>) -> tensor<2x16xf32>
  %w2 = "grim.constant"() {name = "fc2.weight", value = dense<5.000000e-01> : tensor<8x16xf32>} : () -> tensor<8x16xf32>
  %y = "grim.gemm"(%r, %w2) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<2x16xf32>, tensor<8x16xf32>) -> tensor<2x8xf32>
  return %y : tensor<2x8xf32>
}

// -----

// Checks that a gemm keeps ONNX's attributes (here MatMul-shaped: W is
// in x out without trans_b) and a fused epilogue: a residual and an
// activation with its parameters.

// CHECK-LABEL: func.func @gemm_forms
// CHECK: "grim.gemm"(%{{.*}}, %{{.*}}) {alpha = 2.000000e+00 : f32, beta = 5.000000e-01 : f32, operandSegmentSizes = array<i32: 1, 1, 0, 0>, trans_a} : (tensor<32x2xf32>, tensor<32x16xf32>) -> tensor<2x16xf32>
// CHECK: "grim.gemm"(%{{.*}}, %{{.*}}, %{{.*}}) {activation = "clip", activation_params = array<f32: 0.000000e+00, 6.000000e+00>, operandSegmentSizes = array<i32: 1, 1, 0, 1>, trans_b} : (tensor<2x32xf32>, tensor<16x32xf32>, tensor<2x16xf32>) -> tensor<2x16xf32>
func.func @gemm_forms(%x: tensor<2x32xf32>, %xt: tensor<32x2xf32>, %skip: tensor<2x16xf32>) -> (tensor<2x16xf32>, tensor<2x16xf32>) {
  %w = "grim.constant"() {value = dense<5.000000e-01> : tensor<32x16xf32>} : () -> tensor<32x16xf32>
  %a = "grim.gemm"(%xt, %w) {alpha = 2.0 : f32, beta = 0.5 : f32, trans_a, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<32x2xf32>, tensor<32x16xf32>) -> tensor<2x16xf32>
  %wt = "grim.constant"() {value = dense<5.000000e-01> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %b = "grim.gemm"(%x, %wt, %skip) {trans_b, activation = "clip", activation_params = array<f32: 0.0, 6.0>, operandSegmentSizes = array<i32: 1, 1, 0, 1>} : (tensor<2x32xf32>, tensor<16x32xf32>, tensor<2x16xf32>) -> tensor<2x16xf32>
  return %a, %b : tensor<2x16xf32>, tensor<2x16xf32>
}

// -----

// Checks the shape ops: broadcast add with a constant, reshape, transpose, identity.

// CHECK-LABEL: func.func @shapes
// CHECK: %[[C:.*]] = "grim.constant"() {value = dense<1.000000e+00> : tensor<4xf32>} : () -> tensor<4xf32>
// CHECK: %[[S:.*]] = "grim.add"(%{{.*}}, %[[C]]) : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
// CHECK: %[[R:.*]] = "grim.reshape"(%[[S]]) : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
// CHECK: %[[I:.*]] = "grim.identity"(%[[R]]) : (tensor<6x4xf32>) -> tensor<6x4xf32>
// CHECK: "grim.transpose"(%[[I]]) : (tensor<6x4xf32>) -> tensor<4x6xf32>
func.func @shapes(%x: tensor<2x3x4xf32>) -> tensor<4x6xf32> {
  %c = "grim.constant"() {value = dense<1.0> : tensor<4xf32>} : () -> tensor<4xf32>
  %s = "grim.add"(%x, %c) : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  %r = "grim.reshape"(%s) : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
  %i = "grim.identity"(%r) : (tensor<6x4xf32>) -> tensor<6x4xf32>
  %t = "grim.transpose"(%i) : (tensor<6x4xf32>) -> tensor<4x6xf32>
  return %t : tensor<4x6xf32>
}

// -----

// Checks a conv with bias, then a conv with a residual and a fused relu.

// CHECK-LABEL: func.func @conv
// CHECK: %[[Y:.*]] = "grim.conv2d"(%{{.*}}, %{{.*}}, %{{.*}}) {dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 1, 0>, pads = array<i64: 1, 0, 1, 0>, strides = array<i64: 2, 1>} : (tensor<1x3x9x8xf32>, tensor<4x3x3x1xf32>, tensor<4xf32>) -> tensor<1x4x5x8xf32>
// CHECK: "grim.conv2d"(%[[Y]], %{{.*}}, %[[Y]]) {activation = "relu", dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 1>, pads = array<i64: 0, 0, 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x5x8xf32>, tensor<4x4x1x1xf32>, tensor<1x4x5x8xf32>) -> tensor<1x4x5x8xf32>
func.func @conv(%x: tensor<1x3x9x8xf32>) -> tensor<1x4x5x8xf32> {
  %w = "grim.constant"() {name = "w", value = dense<5.000000e-01> : tensor<4x3x3x1xf32>} : () -> tensor<4x3x3x1xf32>
  %b = "grim.constant"() {name = "b", value = dense<5.000000e-01> : tensor<4xf32>} : () -> tensor<4xf32>
  %y = "grim.conv2d"(%x, %w, %b) {strides = array<i64: 2, 1>, pads = array<i64: 1, 0, 1, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 1, 0>} : (tensor<1x3x9x8xf32>, tensor<4x3x3x1xf32>, tensor<4xf32>) -> tensor<1x4x5x8xf32>
  %w2 = "grim.constant"() {value = dense<5.000000e-01> : tensor<4x4x1x1xf32>} : () -> tensor<4x4x1x1xf32>
  %z = "grim.conv2d"(%y, %w2, %y) {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, activation = "relu", operandSegmentSizes = array<i32: 1, 1, 0, 1>} : (tensor<1x4x5x8xf32>, tensor<4x4x1x1xf32>, tensor<1x4x5x8xf32>) -> tensor<1x4x5x8xf32>
  return %z : tensor<1x4x5x8xf32>
}

// -----

// Checks batch normalisation and every activation op with its attributes.

// CHECK-LABEL: func.func @activations
// CHECK: "grim.batch_norm"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) {epsilon = 9.99999974E-6 : f32}
// CHECK: "grim.clip"(%{{.*}}) {max = 6.000000e+00 : f32, min = 0.000000e+00 : f32}
// CHECK: "grim.clip"(%{{.*}}) {max = 1.000000e+00 : f32}
// CHECK: "grim.leaky_relu"(%{{.*}}) {alpha = 1.000000e-01 : f32}
// CHECK: "grim.sigmoid"
// CHECK: "grim.tanh"
// CHECK: "grim.hard_sigmoid"(%{{.*}}) {alpha = 2.000000e-01 : f32, beta = 5.000000e-01 : f32}
// CHECK: "grim.hard_swish"
func.func @activations(%x: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> {
  %p = "grim.constant"() {value = dense<1.0> : tensor<2xf32>} : () -> tensor<2xf32>
  %0 = "grim.batch_norm"(%x, %p, %p, %p, %p) {epsilon = 1.0e-5 : f32} : (tensor<1x2x3x3xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x3x3xf32>
  %1 = "grim.clip"(%0) {min = 0.0 : f32, max = 6.0 : f32} : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %2 = "grim.clip"(%1) {max = 1.0 : f32} : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %3 = "grim.leaky_relu"(%2) {alpha = 0.1 : f32} : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %4 = "grim.sigmoid"(%3) : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %5 = "grim.tanh"(%4) : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %6 = "grim.hard_sigmoid"(%5) {alpha = 0.2 : f32, beta = 0.5 : f32} : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %7 = "grim.hard_swish"(%6) : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  return %7 : tensor<1x2x3x3xf32>
}

// -----

// Checks that the binary elementwise ops and grim.pool (a ceiled max pool
// and an average pool counting its padding) round-trip with their attributes.

// CHECK-LABEL: func.func @binary_and_pool
// CHECK: %[[D:.*]] = "grim.sub"(%{{.*}}, %{{.*}}) : (tensor<1x2x5x5xf32>, tensor<2x1x1xf32>) -> tensor<1x2x5x5xf32>
// CHECK: %[[M:.*]] = "grim.mul"(%[[D]], %{{.*}})
// CHECK: %[[Q0:.*]] = "grim.div"(%[[M]], %{{.*}})
// CHECK: %[[Q1:.*]] = "grim.max"(%[[Q0]], %{{.*}})
// CHECK: %[[Q:.*]] = "grim.min"(%[[Q1]], %{{.*}})
// CHECK: "grim.pool"(%[[Q]]) {dilations = array<i64: 1, 1>, kernel = array<i64: 2, 2>, kind = "max", pads = array<i64: 0, 0, 0, 0>, strides = array<i64: 2, 2>} : (tensor<1x2x5x5xf32>) -> tensor<1x2x3x3xf32>
// CHECK: "grim.pool"(%[[Q]]) {count_include_pad, dilations = array<i64: 1, 1>, kernel = array<i64: 3, 3>, kind = "average", pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 2, 2>} : (tensor<1x2x5x5xf32>) -> tensor<1x2x3x3xf32>
func.func @binary_and_pool(%x: tensor<1x2x5x5xf32>, %c: tensor<2x1x1xf32>) -> (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) {
  %d = "grim.sub"(%x, %c) : (tensor<1x2x5x5xf32>, tensor<2x1x1xf32>) -> tensor<1x2x5x5xf32>
  %m = "grim.mul"(%d, %c) : (tensor<1x2x5x5xf32>, tensor<2x1x1xf32>) -> tensor<1x2x5x5xf32>
  %q0 = "grim.div"(%m, %c) : (tensor<1x2x5x5xf32>, tensor<2x1x1xf32>) -> tensor<1x2x5x5xf32>
  %q1 = "grim.max"(%q0, %c) : (tensor<1x2x5x5xf32>, tensor<2x1x1xf32>) -> tensor<1x2x5x5xf32>
  %q = "grim.min"(%q1, %c) : (tensor<1x2x5x5xf32>, tensor<2x1x1xf32>) -> tensor<1x2x5x5xf32>
  %p = "grim.pool"(%q) {kind = "max", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x2x5x5xf32>) -> tensor<1x2x3x3xf32>
  %a = "grim.pool"(%q) {kind = "average", kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, count_include_pad} : (tensor<1x2x5x5xf32>) -> tensor<1x2x3x3xf32>
  return %p, %a : tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>
}

// -----

// Checks that grim.permute keeps its perm and grim.matmul its broadcast
// operands through a print-parse round trip.

// CHECK-LABEL: func.func @permute_and_matmul
// CHECK: %[[P:.*]] = "grim.permute"(%{{.*}}) {perm = array<i64: 0, 2, 1>} : (tensor<2x3x4xf32>) -> tensor<2x4x3xf32>
// CHECK: "grim.matmul"(%[[P]], %{{.*}}) : (tensor<2x4x3xf32>, tensor<3x5xf32>) -> tensor<2x4x5xf32>
func.func @permute_and_matmul(%x: tensor<2x3x4xf32>, %w: tensor<3x5xf32>) -> tensor<2x4x5xf32> {
  %p = "grim.permute"(%x) {perm = array<i64: 0, 2, 1>} : (tensor<2x3x4xf32>) -> tensor<2x4x3xf32>
  %y = "grim.matmul"(%p, %w) : (tensor<2x4x3xf32>, tensor<3x5xf32>) -> tensor<2x4x5xf32>
  return %y : tensor<2x4x5xf32>
}

// -----

// Checks that grim.pad keeps its mode, pads and value.

// CHECK-LABEL: func.func @pad
// CHECK: "grim.pad"(%{{.*}}) {mode = "reflect", pads = array<i64: 0, 0, 1, 2, 0, 0, 2, 1>, value = 0.000000e+00 : f32} : (tensor<1x2x4x5xf32>) -> tensor<1x2x7x8xf32>
func.func @pad(%x: tensor<1x2x4x5xf32>) -> tensor<1x2x7x8xf32> {
  %y = "grim.pad"(%x) {mode = "reflect", pads = array<i64: 0, 0, 1, 2, 0, 0, 2, 1>, value = 0.0 : f32} : (tensor<1x2x4x5xf32>) -> tensor<1x2x7x8xf32>
  return %y : tensor<1x2x7x8xf32>
}
