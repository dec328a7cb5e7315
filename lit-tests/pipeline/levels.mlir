// RUN: grim-opt %s --pass-pipeline='builtin.module(graph-pipeline)' | %FileCheck %s
// RUN: grim-opt %s --pass-pipeline='graph-pipeline,bcr-pipeline,loops-pipeline,llvm-pipeline' | %FileCheck %s --check-prefix=LLVM
// RUN: not grim-opt %s --pass-pipeline='builtin.module(bcr-pipeline)' 2>&1 | %FileCheck %s --check-prefix=LEVEL
// RUN: not grim-opt %s --pass-pipeline='builtin.module(graph-pipeline{blok=8x16})' 2>&1 | %FileCheck %s --check-prefix=OPTION

// Checks the named pipelines: each takes a module from its level to the
// next and stamps it (grim.level), runs only on a module at its input
// level, and checks its options.

// CHECK: module attributes {grim.level = "graph", grim.target = "avx2"}
// CHECK: "grim.gemm"{{.*}}activation = "relu"{{.*}}kernel = {{.*}}
// LLVM: module attributes {grim.level = "llvm", grim.target = "avx2"}
// LLVM: llvm.func @mlp
// LEVEL: levels.mlir: error: 'bcr-pipeline' runs on a module at the 'graph' level, but this one is at 'input'
// OPTION: error: pass 'graph-pipeline': unknown option 'blok' (known: lr, block, kernel, reuse, profile)
module attributes {grim.target = "avx2"} {
  func.func @mlp(%x: tensor<1x32xf32>) -> tensor<1x16xf32> {
    %w = "grim.constant"() {name = "fc1.weight", value = dense<0.5> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
    %y = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>) -> tensor<1x16xf32>
    %r = "grim.relu"(%y) : (tensor<1x16xf32>) -> tensor<1x16xf32>
    return %r : tensor<1x16xf32>
  }
}
