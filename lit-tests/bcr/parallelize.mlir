// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-parallelize)' | %FileCheck %s
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-parallelize{grain=4},convert-scf-to-cf,expand-strided-metadata,finalize-memref-to-llvm,convert-arith-to-llvm,convert-index-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,reconcile-unrealized-casts)' | %FileCheck %s --check-prefix=LLVM
// RUN: not grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-parallelize{grain=0})' 2>&1 | %FileCheck %s --check-prefix=GRAIN

// GRAIN: error: pass 'bcr-parallelize': grain must be >= 1, got 0

// Checks that a loop marked grim.parallel is moved into an outlined function
// and replaced by a call to the runtime: memrefs travel as pointers (plus
// dynamic sizes) in an i64 array, constants and allocas are cloned so each
// thread has its own, and the outlined loop runs [lower + begin, lower + end).

// CHECK-LABEL: func.func private @grim_parallel_for(!llvm.ptr, i64, i64, (!llvm.ptr, i64, i64) -> (), !llvm.ptr)
// CHECK-LABEL: func.func @scale(
// CHECK-SAME: %[[CTX:.*]]: !llvm.ptr, %[[X:.*]]: memref<?xf32>, %[[Y:.*]]: memref<16xf32>)
// CHECK: %[[ARGS:.*]] = memref.alloca() : memref<3xi64>
// CHECK: memref.extract_aligned_pointer_as_index %[[X]]
// CHECK: memref.dim %[[X]]
// CHECK: memref.extract_aligned_pointer_as_index %[[Y]]
// CHECK: %[[FN:.*]] = constant @scale_parallel0 : (!llvm.ptr, i64, i64) -> ()
// CHECK: call @grim_parallel_for(%[[CTX]], %{{.*}}, %{{.*}}, %[[FN]], %{{.*}})
// CHECK-NOT: scf.for
// CHECK: return
// CHECK-LABEL: func.func private @scale_parallel0(
// CHECK-SAME: %[[A:.*]]: !llvm.ptr, %[[BEGIN:.*]]: i64, %[[END:.*]]: i64)
// CHECK: builtin.unrealized_conversion_cast %{{.*}} to memref<?xf32>
// CHECK: builtin.unrealized_conversion_cast %{{.*}} to memref<16xf32>
// CHECK: %[[TMP:.*]] = memref.alloca() : memref<4xindex>
// CHECK: %[[FIRST:.*]] = arith.index_cast %[[BEGIN]] : i64 to index
// CHECK: %[[LAST:.*]] = arith.index_cast %[[END]] : i64 to index
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step
// CHECK: arith.mulf
// CHECK: memref.store %{{.*}}, %[[TMP]]
// CHECK-NOT: grim.parallel

// LLVM-LABEL: llvm.func @scale(
// LLVM-DAG: %[[G:.*]] = llvm.mlir.constant(4 : i64) : i64
// LLVM-DAG: llvm.mlir.addressof @scale_parallel0
// LLVM: llvm.call @grim_parallel_for(%{{.*}}, %{{.*}}, %[[G]],
// LLVM-LABEL: llvm.func @scale_parallel0(
// LLVM-NOT: unrealized_conversion_cast
func.func @scale(%ctx: !llvm.ptr, %x: memref<?xf32>, %y: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %two = arith.constant 2.0 : f32
  %tmp = memref.alloca() : memref<4xindex>
  scf.for %i = %c0 to %c16 step %c1 {
    %v = memref.load %x[%i] : memref<?xf32>
    %w = arith.mulf %v, %two : f32
    memref.store %w, %y[%i] : memref<16xf32>
    memref.store %i, %tmp[%c0] : memref<4xindex>
  } {grim.parallel}
  return
}

// -----

// Checks that loops without the mark stay where they are.

// CHECK-LABEL: func.func @serial(
// CHECK: scf.for
// CHECK-NOT: grim_parallel_for
// CHECK: return
// LLVM-LABEL: llvm.func @serial(
// LLVM-NOT: grim_parallel_for
// LLVM: llvm.return
func.func @serial(%ctx: !llvm.ptr, %y: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %two = arith.constant 2.0 : f32
  scf.for %i = %c0 to %c16 step %c1 {
    memref.store %two, %y[%i] : memref<16xf32>
  }
  return
}

// -----

// Checks a layer's thread cap (grim.threads = 2, from the LR file): the
// grain handed to the runtime is max(grain, ceil(iterations / 2)), so at
// most two threads take part; the attribute does not survive outlining.

// CHECK-LABEL: func.func @capped(
// CHECK: %[[K:.*]] = arith.constant 2 : i64
// CHECK: %[[SHARE:.*]] = arith.ceildivsi %{{.*}}, %[[K]] : i64
// CHECK: %[[CHUNK:.*]] = arith.maxsi %[[SHARE]], %{{.*}} : i64
// CHECK: call @grim_parallel_for(%{{.*}}, %{{.*}}, %[[CHUNK]],
// CHECK-LABEL: func.func private @capped_parallel0(
// CHECK-NOT: grim.threads
func.func @capped(%ctx: !llvm.ptr, %y: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %one = arith.constant 1.0 : f32
  scf.for %i = %c0 to %c16 step %c1 {
    memref.store %one, %y[%i] : memref<16xf32>
  } {grim.parallel, grim.threads = 2 : i64}
  return
}
