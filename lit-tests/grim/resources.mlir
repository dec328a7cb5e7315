// RUN: grim-opt %s | %FileCheck %s
// RUN: grim-opt %s --print-weights | grim-opt - --print-weights | %FileCheck %s --check-prefix=WEIGHTS
// RUN: grim-opt %s | not grim-opt - 2>&1 | %FileCheck %s --check-prefix=ELIDED

// Checks that a weight held by a dense_resource blob prints elided by
// default (an empty resource section, dropped) and in full with
// --print-weights, and that the full form parses back to the same values
// (-0.0 included: 0x80000000).

// CHECK-LABEL: func.func @resource
// CHECK: "grim.constant"() {name = "w", value = dense_resource<w> : tensor<2xf32>}
// CHECK-NOT: dialect_resources
// ELIDED: -:3:10: error: the weight 'dense_resource<w>' has no data in this file (it was printed with elided weights; print it with --print-weights to get a whole model)
// WEIGHTS-LABEL: func.func @resource
// WEIGHTS: "grim.constant"() {name = "w", value = dense_resource<w> : tensor<2xf32>}
// WEIGHTS: dialect_resources
// WEIGHTS-NEXT: builtin
// WEIGHTS-NEXT: w: "0x040000000000803F00000080"
func.func @resource() -> tensor<2xf32> {
  %w = "grim.constant"() {name = "w", value = dense_resource<w> : tensor<2xf32>} : () -> tensor<2xf32>
  return %w : tensor<2xf32>
}
{-#
  dialect_resources: {
    builtin: {
      w: "0x040000000000803F00000080"
    }
  }
#-}
