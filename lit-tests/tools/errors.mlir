// RUN: not grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-plan-memory,lower-grim-to-bcr)' 2>&1 | %FileCheck %s
// RUN: echo 'module {}' | not grim-opt - --pass-pipeline='builtin.module(no-such-pass)' 2>&1 | %FileCheck %s --check-prefix=UNKNOWN
// RUN: echo 'module {}' | not grim-opt - --pass-pipeline='builtin.module(lower-grim-to-bcr{blok=4x4})' 2>&1 | %FileCheck %s --check-prefix=OPTION
// RUN: echo 'module {}' | not grim-opt - --pass-pipeline='builtin.module(bcr-vectorize{vector-width=3})' 2>&1 | %FileCheck %s --check-prefix=VALUE
// RUN: echo 'module {}' | not grim-opt - --pass-pipeline='builtin.module(bcr-reorder{order=random})' 2>&1 | %FileCheck %s --check-prefix=ORDER
// RUN: echo 'module {}' | not grim-opt - --pass-pipeline='builtin.module(lower-grim-to-bcr' 2>&1 | %FileCheck %s --check-prefix=SYNTAX
// RUN: not grim-opt %s.does-not-exist 2>&1 | %FileCheck %s --check-prefix=MISSING

// Checks that a parse error points at the file, line and column, and that
// nothing is printed for the failed chunk.

// CHECK: errors.mlir:[[@LINE+3]]:12: error: expected ':'
func.func @malformed() {
  %0 = arith.constant 1 : i32
  return %0
}

// -----

// Checks that a pass failure points at the op it could not lower.

// CHECK: errors.mlir:[[@LINE+3]]:8: error: 'grim.gemm' op is not in canonical form: run graph-simplify first
func.func @scaled_constant_weight(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %w = "grim.constant"() {value = dense<1.000000e+00> : tensor<3x4xf32>} : () -> tensor<3x4xf32>
  %y = "grim.gemm"(%x, %w) {alpha = 2.000000e+00 : f32, trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}
// CHECK-NOT: func.func

// Checks that an unknown pass name is refused, naming the pass.
// UNKNOWN: error: invalid pass pipeline
// UNKNOWN: 'no-such-pass' does not refer to a registered pass or pass pipeline

// Checks that an unknown option is refused, naming the option and the known ones.
// OPTION: error: pass 'lower-grim-to-bcr': unknown option 'blok' (known: block, order)

// Checks that a bad option value is refused, naming the option.
// VALUE: error: pass 'bcr-vectorize': vector-width must be 1, 2, 4, 8 or 16, got 3
// ORDER: error: pass 'bcr-reorder': order must be grouped or natural, got 'random'

// Checks that a malformed pipeline is refused before any input is read.
// SYNTAX: error: invalid pass pipeline: unbalanced parentheses in 'builtin.module(lower-grim-to-bcr'

// MISSING: errors.mlir.does-not-exist: error: cannot read file
