// RUN: grim-opt %s --split-input-file --print-debuginfo --pass-pipeline='builtin.module(graph-simplify)' | %FileCheck %s
// RUN: grim-opt %s --split-input-file --print-weights --pass-pipeline='builtin.module(graph-simplify)' | %FileCheck %s --check-prefix=VALUES
// RUN: echo 'func.func @f(%%x: tensor<2xf32>) -> tensor<2xf32> { %%y = "grim.relu"(%%x) : (tensor<2xf32>) -> tensor<2xf32> return %%y : tensor<2xf32> }' | not grim-opt - --pass-pipeline='builtin.module(graph-simplify)' 2>&1 | %FileCheck %s --check-prefix=TARGET

// Checks that a conv, its batch norm and its relu become one conv: the batch
// norm folds into new constants for the weight and bias (scale 4 / sqrt(3 +
// 1) = 2 per channel: weights 1.0 -> 2.0, bias (0 - 0.25) * 2 + 1 = 0.5),
// the relu becomes the epilogue, and the conv keeps its ONNX node name.

// CHECK-LABEL: func.func @conv_bn_relu
// CHECK-NOT: grim.batch_norm
// CHECK-NOT: grim.relu
// CHECK-DAG: %[[W:.*]] = "grim.constant"() {name = "conv.weight", value = dense_resource<conv.weight{{.*}}>
// CHECK-DAG: %[[B:.*]] = "grim.constant"() {name = "bn.bias", value = dense_resource<bn.bias{{.*}}>
// CHECK: %[[Y:.*]] = "grim.conv2d"(%arg0, %[[W]], %[[B]]) {activation = "relu", dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 1, 0>, pads = array<i64: 0, 0, 0, 0>, strides = array<i64: 1, 1>} {{.*}} loc(#[[CONV:loc[0-9]+]])
// CHECK: return %[[Y]]
// CHECK: #[[CONV]] = loc("conv")
// VALUES-LABEL: func.func @conv_bn_relu
// VALUES: dialect_resources
// VALUES-DAG: conv.weight{{[_0-9]*}}: "0x040000000000004000000040"
// VALUES-DAG: bn.bias{{[_0-9]*}}: "0x040000000000003F0000003F"
module attributes {grim.target = "avx2"} {
  func.func @conv_bn_relu(%x: tensor<1x1x4x4xf32>) -> tensor<1x2x4x4xf32> {
    %w = "grim.constant"() {name = "conv.weight", value = dense<1.0> : tensor<2x1x1x1xf32>} : () -> tensor<2x1x1x1xf32>
    %c = "grim.conv2d"(%x, %w) {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x1x4x4xf32>, tensor<2x1x1x1xf32>) -> tensor<1x2x4x4xf32> loc("conv")
    %s = "grim.constant"() {name = "bn.weight", value = dense<4.0> : tensor<2xf32>} : () -> tensor<2xf32>
    %t = "grim.constant"() {name = "bn.bias", value = dense<1.0> : tensor<2xf32>} : () -> tensor<2xf32>
    %m = "grim.constant"() {name = "bn.running_mean", value = dense<0.25> : tensor<2xf32>} : () -> tensor<2xf32>
    %v = "grim.constant"() {name = "bn.running_var", value = dense<3.0> : tensor<2xf32>} : () -> tensor<2xf32>
    %b = "grim.batch_norm"(%c, %s, %t, %m, %v) {epsilon = 1.0 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32> loc("bn")
    %r = "grim.relu"(%b) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> loc("relu")
    return %r : tensor<1x2x4x4xf32>
  }
}

// -----

// Checks a residual block's tail: relu(conv(x) + skip) is the conv with the
// skip as its residual and a relu epilogue, whichever side of the add the
// conv is on.

// CHECK-LABEL: func.func @residual
// CHECK: "grim.conv2d"(%arg0, %{{.*}}, %arg1) {activation = "relu", {{.*}}operandSegmentSizes = array<i32: 1, 1, 0, 1>{{.*}}} {{.*}} loc(#[[CONV2:loc[0-9]+]])
// CHECK-NOT: grim.add
// CHECK-NOT: grim.relu
// CHECK: #[[CONV2]] = loc("conv2")
module attributes {grim.target = "avx2"} {
  func.func @residual(%x: tensor<1x2x4x4xf32>, %skip: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    %w = "grim.constant"() {name = "w", value = dense<1.0> : tensor<2x2x1x1xf32>} : () -> tensor<2x2x1x1xf32>
    %c = "grim.conv2d"(%x, %w) {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x4x4xf32> loc("conv2")
    %a = "grim.add"(%skip, %c) : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> loc("add")
    %r = "grim.relu"(%a) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> loc("relu")
    return %r : tensor<1x2x4x4xf32>
  }
}

// -----

// Checks that relu-then-add is not add-then-relu: the relu fuses into the
// conv, the add of the skip after it stays an add.

// CHECK-LABEL: func.func @relu_then_add
// CHECK: %[[C:.*]] = "grim.conv2d"(%arg0, %{{[^,]*}}) {activation = "relu"
// CHECK-NOT: array<i32: 1, 1, 0, 1>
// CHECK: "grim.add"(%[[C]], %arg1)
module attributes {grim.target = "avx2"} {
  func.func @relu_then_add(%x: tensor<1x2x4x4xf32>, %skip: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    %w = "grim.constant"() {name = "w", value = dense<1.0> : tensor<2x2x1x1xf32>} : () -> tensor<2x2x1x1xf32>
    %c = "grim.conv2d"(%x, %w) {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x4x4xf32>
    %r = "grim.relu"(%c) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    %a = "grim.add"(%r, %skip) : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    return %a : tensor<1x2x4x4xf32>
  }
}

// -----

// Checks that a product whose value has another user keeps it: the relu is
// not fused (the conv would run twice), both results come from one conv.

// CHECK-LABEL: func.func @shared
// CHECK: %[[C:.*]] = "grim.conv2d"
// CHECK-NOT: activation
// CHECK: %[[R:.*]] = "grim.relu"(%[[C]])
// CHECK: return %[[C]], %[[R]]
module attributes {grim.target = "avx2"} {
  func.func @shared(%x: tensor<1x2x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
    %w = "grim.constant"() {name = "w", value = dense<1.0> : tensor<2x2x1x1xf32>} : () -> tensor<2x2x1x1xf32>
    %c = "grim.conv2d"(%x, %w) {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x4x4xf32>
    %r = "grim.relu"(%c) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    return %c, %r : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
  }
}

// -----

// Checks ONNX MatMul + Add: the [K, M] weight is transposed into a new
// constant of the same name, the add becomes the bias, the gemm canonical.

// CHECK-LABEL: func.func @matmul_add
// CHECK-DAG: %[[B:.*]] = "grim.constant"() {name = "b", value = dense<5.000000e-01> : tensor<3xf32>}
// CHECK-DAG: %[[W:.*]] = "grim.constant"() {name = "w", value = dense_resource<w{{.*}}> : tensor<3x4xf32>}
// CHECK: "grim.gemm"(%arg0, %[[W]], %[[B]]) {operandSegmentSizes = array<i32: 1, 1, 1, 0>, trans_b} : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32> loc(#[[MM:loc[0-9]+]])
// CHECK-NOT: grim.add
// CHECK: #[[MM]] = loc("mm")
// VALUES-LABEL: func.func @matmul_add
// VALUES: w{{[_0-9]*}}: "0x040000000000803F000040400000A0400000E04000000040000080400000C04000000041000040400000A0400000E04000001041"
module attributes {grim.target = "avx2"} {
  func.func @matmul_add(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
    %w = "grim.constant"() {name = "w", value = dense<[[1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [5.0, 6.0, 7.0], [7.0, 8.0, 9.0]]> : tensor<4x3xf32>} : () -> tensor<4x3xf32>
    %b = "grim.constant"() {name = "b", value = dense<0.5> : tensor<3xf32>} : () -> tensor<3xf32>
    %y = "grim.gemm"(%x, %w) {operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32> loc("mm")
    %z = "grim.add"(%y, %b) : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32> loc("add")
    return %z : tensor<2x3xf32>
  }
}

// -----

// Checks the layout and cleanup rules: identities go, two transposes cancel.

// CHECK-LABEL: func.func @layout
// CHECK-NOT: grim.identity
// CHECK-NOT: grim.transpose
// CHECK: return %arg0
module attributes {grim.target = "avx2"} {
  func.func @layout(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
    %i = "grim.identity"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
    %t = "grim.transpose"(%i) : (tensor<2x3xf32>) -> tensor<3x2xf32>
    %u = "grim.transpose"(%t) : (tensor<3x2xf32>) -> tensor<2x3xf32>
    return %u : tensor<2x3xf32>
  }
}

// TARGET: error: the module has no 'grim.target' attribute naming its target
