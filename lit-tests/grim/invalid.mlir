// RUN: not grim-opt %s --split-input-file 2>&1 | %FileCheck %s
// Every chunk fails on its own; grim-opt reports each one and exits 1.

// Checks that gemm's semantic verifier rejects a K mismatch between the
// input's columns and the weight (out x in).
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.gemm' op input has 32 columns but the weight (out x in) has 30 columns
func.func @gemm_k(%x: tensor<1x32xf32>) -> tensor<1x16xf32> {
  %w = "grim.constant"() {name = "w", value = dense<5.000000e-01> : tensor<16x30xf32>} : () -> tensor<16x30xf32>
  %y = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x30xf32>) -> tensor<1x16xf32>
  return %y : tensor<1x16xf32>
}

// -----

// Checks that gemm's bias must have one entry per output feature.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.gemm' op bias must broadcast to [1, 16] (e.g. [16]), got [8]
func.func @gemm_bias(%x: tensor<1x32xf32>, %w: tensor<16x32xf32>, %b: tensor<8xf32>) -> tensor<1x16xf32> {
  %y = "grim.gemm"(%x, %w, %b) {trans_b, operandSegmentSizes = array<i32: 1, 1, 1, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>, tensor<8xf32>) -> tensor<1x16xf32>
  return %y : tensor<1x16xf32>
}

// -----

// Checks that gemm's result shape must be [N, M].
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.gemm' op result must be [1, 16], got [1, 8]
func.func @gemm_result(%x: tensor<1x32xf32>, %w: tensor<16x32xf32>) -> tensor<1x8xf32> {
  %y = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>) -> tensor<1x8xf32>
  return %y : tensor<1x8xf32>
}

// -----

// Checks that a gemm's block size attribute is limited to 1..=64.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.gemm' op block size 8x65 out of range (1..=64 each)
func.func @gemm_block(%x: tensor<1x32xf32>, %w: tensor<16x32xf32>) -> tensor<1x16xf32> {
  %y = "grim.gemm"(%x, %w) {trans_b, block_rows = 8 : i64, block_cols = 65 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>) -> tensor<1x16xf32>
  return %y : tensor<1x16xf32>
}

// -----

// Checks that a block is both sides or none (one side alone used to pass
// as a block of 8x0, or go unchecked).
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.gemm' op needs both 'block_rows' and 'block_cols' or neither
func.func @gemm_half_block(%x: tensor<1x32xf32>, %w: tensor<16x32xf32>) -> tensor<1x16xf32> {
  %y = "grim.gemm"(%x, %w) {trans_b, block_cols = 16 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>) -> tensor<1x16xf32>
  return %y : tensor<1x16xf32>
}

// -----

// Checks that grim.reshape must keep the element count.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.reshape' op cannot reshape [2, 8] (16 elements) to [15] (15 elements)
func.func @reshape_count(%x: tensor<2x8xf32>) -> tensor<15xf32> {
  %y = "grim.reshape"(%x) : (tensor<2x8xf32>) -> tensor<15xf32>
  return %y : tensor<15xf32>
}

// -----

// Checks that grim.add rejects shapes that do not broadcast.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.add' op shapes [4, 3] and [4] do not broadcast
func.func @add_broadcast(%a: tensor<4x3xf32>, %b: tensor<4xf32>) -> tensor<4x3xf32> {
  %y = "grim.add"(%a, %b) : (tensor<4x3xf32>, tensor<4xf32>) -> tensor<4x3xf32>
  return %y : tensor<4x3xf32>
}

// -----

// Checks that grim.permute's perm must be a permutation of the input's dims.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.permute' op perm [0, 0, 1] is not a permutation of the 3 dims of [2, 3, 4]
func.func @permute_not_a_permutation(%a: tensor<2x3x4xf32>) -> tensor<2x2x3xf32> {
  %y = "grim.permute"(%a) {perm = array<i64: 0, 0, 1>} : (tensor<2x3x4xf32>) -> tensor<2x2x3xf32>
  return %y : tensor<2x2x3xf32>
}

// -----

// Checks that grim.permute's result has the permuted dims.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.permute' op result must be [4, 2, 3], got [2, 4, 3]
func.func @permute_result(%a: tensor<2x3x4xf32>) -> tensor<2x4x3xf32> {
  %y = "grim.permute"(%a) {perm = array<i64: 2, 0, 1>} : (tensor<2x3x4xf32>) -> tensor<2x4x3xf32>
  return %y : tensor<2x4x3xf32>
}

// -----

// Checks that grim.pad's result is the padded shape.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.pad' op result must be [1, 5], got [1, 6]
func.func @pad_result(%a: tensor<1x3xf32>) -> tensor<1x6xf32> {
  %y = "grim.pad"(%a) {mode = "constant", pads = array<i64: 0, 1, 0, 1>, value = 0.0 : f32} : (tensor<1x3xf32>) -> tensor<1x6xf32>
  return %y : tensor<1x6xf32>
}

// -----

// Checks that reflect padding must stay below the dim it mirrors.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.pad' op reflect padding of dim 1 (size 3) by 3 and 0 is not defined: reflect needs pads below the dim
func.func @pad_reflect_too_far(%a: tensor<1x3xf32>) -> tensor<1x6xf32> {
  %y = "grim.pad"(%a) {mode = "reflect", pads = array<i64: 0, 3, 0, 0>, value = 0.0 : f32} : (tensor<1x3xf32>) -> tensor<1x6xf32>
  return %y : tensor<1x6xf32>
}

// -----

// Checks that grim.pad's mode is one of ONNX's.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.pad' op needs 'mode'
func.func @pad_mode(%a: tensor<1x3xf32>) -> tensor<1x5xf32> {
  %y = "grim.pad"(%a) {mode = "symmetric", pads = array<i64: 0, 1, 0, 1>, value = 0.0 : f32} : (tensor<1x3xf32>) -> tensor<1x5xf32>
  return %y : tensor<1x5xf32>
}

// -----

// Checks that grim.matmul's batch dims must broadcast.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.matmul' op MatMul batch dims of [2, 3, 4] and [5, 4, 2] do not broadcast
func.func @matmul_batch(%a: tensor<2x3x4xf32>, %b: tensor<5x4x2xf32>) -> tensor<2x3x2xf32> {
  %y = "grim.matmul"(%a, %b) : (tensor<2x3x4xf32>, tensor<5x4x2xf32>) -> tensor<2x3x2xf32>
  return %y : tensor<2x3x2xf32>
}

// -----

// Checks that grim.matmul's result drops the dim a 1-D operand added.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.matmul' op result must be [5, 2], got [5, 1, 2]
func.func @matmul_vector(%v: tensor<4xf32>, %b: tensor<5x4x2xf32>) -> tensor<5x1x2xf32> {
  %y = "grim.matmul"(%v, %b) : (tensor<4xf32>, tensor<5x4x2xf32>) -> tensor<5x1x2xf32>
  return %y : tensor<5x1x2xf32>
}

// -----

// Checks that a grouped conv's weight has C / group input channels.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.conv2d' op input has 8 channels but the weight expects 16 (4 per group of 4)
func.func @grouped_conv_channels(%x: tensor<1x8x5x5xf32>, %w: tensor<8x4x3x3xf32>) -> tensor<1x8x3x3xf32> {
  %y = "grim.conv2d"(%x, %w) {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x8x5x5xf32>, tensor<8x4x3x3xf32>) -> tensor<1x8x3x3xf32>
  return %y : tensor<1x8x3x3xf32>
}

// -----

// Checks that grim.softmax reduces a span of its input's dims.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.softmax' op reduces dims 2..4, which must be a non-empty span of the 3 dims of [2, 3, 4]
func.func @softmax_span(%a: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
  %y = "grim.softmax"(%a) {axis = 2 : i64, axis_end = 4 : i64} : (tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  return %y : tensor<2x3x4xf32>
}

// -----

// Checks that grim.concat's operands agree off the axis.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.concat' op cannot join [2, 3] and [3, 3] along axis 1
func.func @concat_shapes(%a: tensor<2x3xf32>, %b: tensor<3x3xf32>) -> tensor<2x6xf32> {
  %y = "grim.concat"(%a, %b) {axis = 1 : i64} : (tensor<2x3xf32>, tensor<3x3xf32>) -> tensor<2x6xf32>
  return %y : tensor<2x6xf32>
}

// -----

// Checks that grim.transpose must swap the two dimensions.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.transpose' op transpose of [4, 3] must be 2-D and give [3, 4], got [4, 3]
func.func @transpose_shape(%a: tensor<4x3xf32>) -> tensor<4x3xf32> {
  %y = "grim.transpose"(%a) : (tensor<4x3xf32>) -> tensor<4x3xf32>
  return %y : tensor<4x3xf32>
}

// -----

// Checks that a constant's value must have the result's type.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.constant' op 'value' has shape [3], the result is [4]
func.func @constant_type() -> tensor<4xf32> {
  %y = "grim.constant"() {value = dense<1.0> : tensor<3xf32>} : () -> tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

// Checks that grim ops need f32 element types and static shapes.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.relu' op input must be a ranked f32 tensor, got tensor<4xi32>
func.func @relu_i32(%a: tensor<4xi32>) -> tensor<4xi32> {
  %y = "grim.relu"(%a) : (tensor<4xi32>) -> tensor<4xi32>
  return %y : tensor<4xi32>
}

// -----

// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.relu' op input must have a static shape, got tensor<?x3xf32>
func.func @relu_dynamic(%a: tensor<?x3xf32>) -> tensor<?x3xf32> {
  %y = "grim.relu"(%a) : (tensor<?x3xf32>) -> tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}

// -----

// Checks the IRDL structure: grim is on tensors, a memref operand is refused.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: expected base type 'builtin.tensor' but got 'builtin.memref'
// CHECK-NEXT: note: see current operation: %0 = "grim.relu"(%arg0) : (memref<4xf32>) -> tensor<4xf32>
func.func @relu_memref(%x: memref<4xf32>) -> tensor<4xf32> {
  %y = "grim.relu"(%x) : (memref<4xf32>) -> tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

// Checks the IRDL structure: relu takes exactly one operand.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: op expects exactly 1 operands, but got 2
func.func @relu_two_operands(%a: tensor<4xf32>) -> tensor<4xf32> {
  %y = "grim.relu"(%a, %a) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

// Checks the IRDL structure: grim.constant needs its value attribute.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.constant' op attribute "value" is expected but not provided
func.func @constant_without_value() -> tensor<4xf32> {
  %y = "grim.constant"() {name = "w"} : () -> tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

// Checks that a constant's value must be f32 weights (a dense_resource or
// dense elements of f32).
// CHECK: invalid.mlir:[[@LINE+2]]:8: error: 'grim.constant' op 'value' must be f32 dense elements or a dense_resource of f32
func.func @constant_int_value() -> tensor<4xf32> {
  %y = "grim.constant"() {name = "w", value = dense<1> : tensor<4xi32>} : () -> tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

// Checks that an empty constant name is rejected by the verifier (it once
// crashed lower-grim-to-bcr, which names weights after it).
// CHECK: invalid.mlir:[[@LINE+2]]:8: error: 'grim.constant' op 'name', when given, must be a non-empty string
func.func @constant_empty_name() -> tensor<4xf32> {
  %c = "grim.constant"() {name = "", value = dense<1.0> : tensor<4xf32>} : () -> tensor<4xf32>
  return %c : tensor<4xf32>
}

// -----

// Checks that a conv's result shape follows from its geometry ((9 + 2 - 3) / 2 + 1 = 5 rows).
// CHECK: invalid.mlir:[[@LINE+3]]:8: error: 'grim.conv2d' op result must be [1, 4, 5, 8], got [1, 4, 9, 8]
func.func @conv_shape(%x: tensor<1x3x9x8xf32>) -> tensor<1x4x9x8xf32> {
  %w = "grim.constant"() {name = "w", value = dense<5.000000e-01> : tensor<4x3x3x1xf32>} : () -> tensor<4x3x3x1xf32>
  %y = "grim.conv2d"(%x, %w) {strides = array<i64: 2, 1>, pads = array<i64: 1, 0, 1, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x3x9x8xf32>, tensor<4x3x3x1xf32>) -> tensor<1x4x9x8xf32>
  return %y : tensor<1x4x9x8xf32>
}

// -----

// Checks that a conv's channels must match its weight's.
// CHECK: invalid.mlir:[[@LINE+3]]:8: error: 'grim.conv2d' op input has 3 channels but the weight expects 2
func.func @conv_channels(%x: tensor<1x3x8x8xf32>) -> tensor<1x4x8x8xf32> {
  %w = "grim.constant"() {name = "w", value = dense<5.000000e-01> : tensor<4x2x1x1xf32>} : () -> tensor<4x2x1x1xf32>
  %y = "grim.conv2d"(%x, %w) {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x3x8x8xf32>, tensor<4x2x1x1xf32>) -> tensor<1x4x8x8xf32>
  return %y : tensor<1x4x8x8xf32>
}

// -----

// Checks that a zero stride is rejected (it would divide by zero).
// CHECK: invalid.mlir:[[@LINE+3]]:8: error: 'grim.conv2d' op strides and dilations must be >= 1 and pads >= 0, got strides [0, 1], pads [0, 0, 0, 0], dilations [1, 1]
func.func @conv_stride(%x: tensor<1x3x8x8xf32>) -> tensor<1x4x8x8xf32> {
  %w = "grim.constant"() {name = "w", value = dense<5.000000e-01> : tensor<4x3x1x1xf32>} : () -> tensor<4x3x1x1xf32>
  %y = "grim.conv2d"(%x, %w) {strides = array<i64: 0, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x3x8x8xf32>, tensor<4x3x1x1xf32>) -> tensor<1x4x8x8xf32>
  return %y : tensor<1x4x8x8xf32>
}

// -----

// Checks that grim.pool's result must be what its window gives (2x2,
// stride 2 over 5x5: 2x2 floored, 3x3 ceiled; never 4x4).
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.pool' op result must be [1, 2, 2, 2] (or [1, 2, 3, 3] with ceil_mode), got [1, 2, 4, 4]
func.func @pool_wrong_result(%x: tensor<1x2x5x5xf32>) -> tensor<1x2x4x4xf32> {
  %p = "grim.pool"(%x) {kind = "max", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x2x5x5xf32>) -> tensor<1x2x4x4xf32>
  return %p : tensor<1x2x4x4xf32>
}

// -----

// Checks that grim.pool knows only the max and average reductions.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'grim.pool' op needs 'kind'
func.func @pool_kind(%x: tensor<1x2x5x5xf32>) -> tensor<1x2x2x2xf32> {
  %p = "grim.pool"(%x) {kind = "median", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x2x5x5xf32>) -> tensor<1x2x2x2xf32>
  return %p : tensor<1x2x2x2xf32>
}
