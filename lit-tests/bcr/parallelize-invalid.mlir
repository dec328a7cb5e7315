// RUN: not grim-opt %s --pass-pipeline='builtin.module(bcr-parallelize)' 2>&1 | %FileCheck %s

// Checks that a parallel loop in a function without the runtime context
// (first argument !llvm.ptr) is an error at the loop's location.

// CHECK: parallelize-invalid.mlir:[[@LINE+5]]:3: error: 'scf.for' op needs its function's first argument to be the runtime context
func.func @no_context(%y: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  scf.for %i = %c0 to %c16 step %c1 {
    %f = arith.constant 0.0 : f32
    memref.store %f, %y[%i] : memref<16xf32>
  } {grim.parallel}
  return
}
