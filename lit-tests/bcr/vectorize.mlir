// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-vectorize)' | %FileCheck %s
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-vectorize{vector-width=4})' | %FileCheck %s --check-prefix=NEON
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-vectorize{vector-width=4},lower-bcr-to-loops)' | %FileCheck %s --check-prefix=LOOPS
// RUN: not grim-opt %s --pass-pipeline='builtin.module(bcr-vectorize{vector-width=6})' 2>&1 | %FileCheck %s --check-prefix=BAD

// BAD: error: pass 'bcr-vectorize': vector-width must be 1, 2, 4, 8 or 16, got 6

// Checks that bcr-vectorize gives every product the target's lanes (8 by
// default, 4 for NEON), narrows a matrix product whose N is smaller than
// the lanes to the largest power of two that fits (N = 6 -> 4, N = 3 -> 2)
// while recording the target's register file (16 on AVX2 even for a
// product narrowed to 4 lanes, 32 on NEON),
// gives matrix-vector products the full width (they vectorise along rows),
// and that the lowering then multiplies vector<4xf32> with vector.fma
// instead of scalar math.fma.

// CHECK-LABEL: func.func @products
// CHECK: "bcr.spmm"{{.*}}registers = 16 : i64, vector_width = 8 : i64{{.*}}memref<64x64xf32>
// CHECK: "bcr.spmm"{{.*}}registers = 16 : i64, vector_width = 4 : i64{{.*}}memref<64x6xf32>
// CHECK: "bcr.spmv"{{.*}}vector_width = 8 : i64
// CHECK: "bcr.gemm"{{.*}}vector_width = 2 : i64{{.*}}memref<64x3xf32>
// CHECK: "bcr.gemm"{{.*}}vector_width = 8 : i64{{.*}}memref<64xf32>
// NEON-LABEL: func.func @products
// NEON: "bcr.spmm"{{.*}}registers = 32 : i64, vector_width = 4 : i64{{.*}}memref<64x64xf32>
// NEON: "bcr.spmm"{{.*}}vector_width = 4 : i64{{.*}}memref<64x6xf32>
// NEON: "bcr.spmv"{{.*}}vector_width = 4 : i64
func.func @products(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<64x64xf32>, %c: memref<64x64xf32>, %x6: memref<64x6xf32>, %c6: memref<64x6xf32>, %xv: memref<64xf32>, %cv: memref<64xf32>, %w: memref<?xf32>, %x3: memref<64x3xf32>, %c3: memref<64x3xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 8 : i64, block_cols = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64x64xf32>, memref<64x64xf32>) -> ()
  "bcr.spmm"(%s, %b, %m, %v, %x6, %c6) {block_rows = 8 : i64, block_cols = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64x6xf32>, memref<64x6xf32>) -> ()
  "bcr.spmv"(%s, %b, %m, %v, %xv, %cv) {block_rows = 8 : i64, block_cols = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64xf32>, memref<64xf32>) -> ()
  "bcr.gemm"(%w, %x3, %c3) : (memref<?xf32>, memref<64x3xf32>, memref<64x3xf32>) -> ()
  "bcr.gemm"(%w, %xv, %cv) : (memref<?xf32>, memref<64xf32>, memref<64xf32>) -> ()
  return
}

// -----

// Checks that a width given per layer (LR file) is kept while the product
// still gets the target's register file (bcr-lre sizes its tile by it: a
// 4-lane layer on AVX2 has 16 registers, not NEON's 32), and that the
// vectorised spmm lowers to vector.fma on vector<4xf32>, where the scalar
// input lowers to math.fma only.

// CHECK-LABEL: func.func @kept
// CHECK: "bcr.spmm"{{.*}}registers = 16 : i64, vector_width = 2 : i64
// NEON-LABEL: func.func @kept
// NEON: "bcr.spmm"{{.*}}registers = 32 : i64, vector_width = 2 : i64
// LOOPS-LABEL: func.func @lowered
// LOOPS-NOT: math.fma
// LOOPS: vector.fma {{.*}} : vector<4xf32>
// LOOPS-NOT: math.fma
// LOOPS: return
func.func @kept(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<64x64xf32>, %c: memref<64x64xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 2 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64x64xf32>, memref<64x64xf32>) -> ()
  return
}
func.func @lowered(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<64x64xf32>, %c: memref<64x64xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 8 : i64, block_cols = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64x64xf32>, memref<64x64xf32>) -> ()
  return
}
