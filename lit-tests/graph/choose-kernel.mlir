// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-choose-kernel)' | %FileCheck %s
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-choose-kernel{block=8x16})' | %FileCheck %s --check-prefix=FIXED
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-choose-kernel{block=8x16 kernel=bcr})' | %FileCheck %s --check-prefix=FORCED
// RUN: not grim-opt %s --pass-pipeline='builtin.module(graph-choose-kernel{block=8x99})' 2>&1 | %FileCheck %s --check-prefix=BAD
// RUN: not grim-opt %s --pass-pipeline='builtin.module(graph-choose-kernel{kernel=csr})' 2>&1 | %FileCheck %s --check-prefix=BADKERNEL

// Checks that the cost model chooses per product and records why: a weight
// with no zeros runs the dense kernel, an all-zero one (BCR stores nothing)
// the BCR kernel; every candidate's estimate is on the product; with a
// fixed block there is one BCR candidate.

// CHECK-LABEL: func.func @choices
// CHECK: "grim.gemm"(%arg0, %{{.*}}) {estimates = {"bcr 16x16" = {{.*}}, "bcr 16x32" = {{.*}}, "bcr 32x32" = {{.*}}, "bcr 4x16" = {{.*}}, "bcr 8x16" = {{.*}}, dense = {{.*}}}, kernel = "dense", operandSegmentSizes = array<i32: 1, 1, 0, 0>, trans_b}
// CHECK: "grim.gemm"(%arg0, %{{.*}}) {block_cols = {{[0-9]+}} : i64, block_rows = {{[0-9]+}} : i64, estimates = {{.*}}, kernel = "bcr", operandSegmentSizes = array<i32: 1, 1, 0, 0>, trans_b}
// FIXED-LABEL: func.func @choices
// FIXED: "grim.gemm"(%arg0, %{{.*}}) {estimates = {"bcr 8x16" = {{.*}}, dense = {{[^,]*}}}, kernel = "dense", operandSegmentSizes = array<i32: 1, 1, 0, 0>, trans_b}
// FIXED: "grim.gemm"(%arg0, %{{.*}}) {block_cols = 16 : i64, block_rows = 8 : i64, estimates = {"bcr 8x16" = {{.*}}, dense = {{[^,]*}}}, kernel = "bcr", operandSegmentSizes = array<i32: 1, 1, 0, 0>, trans_b}
// BAD: error: pass 'graph-choose-kernel': block must be RxC with 1..=64 each, got '8x99'
// BADKERNEL: error: pass 'graph-choose-kernel': kernel must be dense or bcr, got 'csr'
module attributes {grim.target = "avx2"} {
  func.func @choices(%x: tensor<16x256xf32>) -> (tensor<16x128xf32>, tensor<16x128xf32>) {
    %dense = "grim.constant"() {name = "dense", value = dense<0.5> : tensor<128x256xf32>} : () -> tensor<128x256xf32>
    %a = "grim.gemm"(%x, %dense) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<16x256xf32>, tensor<128x256xf32>) -> tensor<16x128xf32>
    %zero = "grim.constant"() {name = "zero", value = dense<0.0> : tensor<128x256xf32>} : () -> tensor<128x256xf32>
    %b = "grim.gemm"(%x, %zero) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<16x256xf32>, tensor<128x256xf32>) -> tensor<16x128xf32>
    return %a, %b : tensor<16x128xf32>, tensor<16x128xf32>
  }
}

// -----

// Checks that a weight that is not a constant runs the dense kernel, and
// the product says why; a conv on the BCR kernels records its im2col
// route: in place for output rows of 48 or more, an explicit patch matrix
// for narrower ones.

// CHECK-LABEL: func.func @runtime_weight
// CHECK: "grim.gemm"(%arg0, %arg1) {kernel = "dense", kernel_reason = "the weight is not a constant: BCR packs a weight's values at compile time", operandSegmentSizes = array<i32: 1, 1, 0, 0>, trans_b}
// CHECK: "grim.conv2d"{{.*}}im2col = "explicit", kernel = "bcr"{{.*}} -> tensor<1x4x8x8xf32>
// CHECK: "grim.conv2d"{{.*}}im2col = "implicit", kernel = "bcr"{{.*}} -> tensor<1x4x2x48xf32>
module attributes {grim.target = "avx2"} {
  func.func @runtime_weight(%x: tensor<4x8xf32>, %w: tensor<16x8xf32>, %image: tensor<1x2x8x8xf32>, %wide: tensor<1x2x4x50xf32>) -> (tensor<4x16xf32>, tensor<1x4x8x8xf32>, tensor<1x4x2x48xf32>) {
    %y = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
    %k = "grim.constant"() {value = dense<0.0> : tensor<4x2x3x3xf32>} : () -> tensor<4x2x3x3xf32>
    %c = "grim.conv2d"(%image, %k) {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x2x8x8xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x8x8xf32>
    %d = "grim.conv2d"(%wide, %k) {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x2x4x50xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x2x48xf32>
    return %y, %c, %d : tensor<4x16xf32>, tensor<1x4x8x8xf32>, tensor<1x4x2x48xf32>
  }
}

// -----

// Checks that kernel=bcr fixes the kernel of a product the LR file leaves
// open, whatever its estimates, and records them all the same.

// FORCED-LABEL: func.func @forced
// FORCED: "grim.gemm"(%arg0, %{{.*}}) {block_cols = 16 : i64, block_rows = 8 : i64, estimates = {"bcr 8x16" = {{.*}}, dense = {{[^,]*}}}, kernel = "bcr"
module attributes {grim.target = "avx2"} {
  func.func @forced(%x: tensor<16x256xf32>) -> tensor<16x128xf32> {
    %dense = "grim.constant"() {name = "dense", value = dense<0.5> : tensor<128x256xf32>} : () -> tensor<128x256xf32>
    %a = "grim.gemm"(%x, %dense) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<16x256xf32>, tensor<128x256xf32>) -> tensor<16x128xf32>
    return %a : tensor<16x128xf32>
  }
}

// -----

// A recurrent op gets one kernel for its W and R by the sum of the
// estimates of the products its lowering runs (W over all T x B columns
// once, R per step), recorded in `estimates`; fully dense weights stay
// dense (nothing pruned), the kernel option forces BCR with the block
// given, and W or R given at run time is dense with the reason.

// CHECK-LABEL: func.func @rnn
// CHECK: "grim.recurrent"{{.*}}estimates = {"bcr 16x16" = {{.*}}, dense = {{.*}}}{{.*}}kernel = "dense"
// CHECK-LABEL: func.func @rnn_runtime
// CHECK: "grim.recurrent"{{.*}}kernel = "dense", kernel_reason = "W or R is not a constant: BCR packs a weight's values at compile time"
// FIXED-LABEL: func.func @rnn
// FIXED: "grim.recurrent"{{.*}}estimates = {"bcr 8x16" = {{.*}}, dense = {{.*}}}{{.*}}kernel = "dense"
// FORCED-LABEL: func.func @rnn
// FORCED: "grim.recurrent"{{.*}}block_cols = 16 : i64, block_rows = 8 : i64{{.*}}kernel = "bcr", kernel_reason = "as the kernel option (--kernel) says"

module attributes {grim.target = "avx2"} {
func.func @rnn(%x: tensor<2x1x3xf32>) -> tensor<2x1x1x16xf32> {
  %w = "grim.constant"() {name = "w", value = dense<0.5> : tensor<1x16x3xf32>} : () -> tensor<1x16x3xf32>
  %r = "grim.constant"() {name = "r", value = dense<0.25> : tensor<1x16x16xf32>} : () -> tensor<1x16x16xf32>
  %y, %yh = "grim.recurrent"(%x, %w, %r) {cell = "rnn", direction = "forward", hidden_size = 16 : i64, activations = ["tanh"], operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0>} : (tensor<2x1x3xf32>, tensor<1x16x3xf32>, tensor<1x16x16xf32>) -> (tensor<2x1x1x16xf32>, tensor<1x1x16xf32>)
  return %y : tensor<2x1x1x16xf32>
}
func.func @rnn_runtime(%x: tensor<2x1x3xf32>, %w: tensor<1x4x3xf32>, %r: tensor<1x4x4xf32>) -> tensor<2x1x1x4xf32> {
  %y, %yh = "grim.recurrent"(%x, %w, %r) {cell = "rnn", direction = "forward", hidden_size = 4 : i64, activations = ["tanh"], operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0>} : (tensor<2x1x3xf32>, tensor<1x4x3xf32>, tensor<1x4x4xf32>) -> (tensor<2x1x1x4xf32>, tensor<1x1x4xf32>)
  return %y : tensor<2x1x1x4xf32>
}
}
