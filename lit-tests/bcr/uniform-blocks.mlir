// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-uniform-blocks)' | %FileCheck %s

// Checks that bcr-uniform-blocks records kept_rows/kept_cols on a packed
// weight whose stored blocks all keep the same counts, with -0.0 (pruning
// by mask multiplication) a structural zero like +0.0. The 4x8 weight in
// 2x4 blocks: every block keeps 1 row and 2 columns.

// CHECK-LABEL: func.func @uniform
// CHECK: "bcr.packed"(%{{.*}}) {block_cols = 4 : i64, block_rows = 2 : i64, cols = 8 : i64, kept_cols = 2 : i64, kept_rows = 1 : i64, name = "w"
// CHECK: "bcr.spmm"
func.func @uniform(%blob: memref<?xi8>, %x: memref<8x4xf32>, %c: memref<4x4xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<[[1.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 4.0], [0.0, -0.0, 0.0, -0.0, -0.0, 0.0, 0.0, 0.0], [-0.0, 5.0, 6.0, -0.0, 7.0, 0.0, 0.0, 8.0], [0.0, -0.0, -0.0, 0.0, 0.0, -0.0, 0.0, 0.0]]> : tensor<4x8xf32>, name = "w", slot = 0 : i64, rows = 4 : i64, cols = 8 : i64, block_rows = 2 : i64, block_cols = 4 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmm"(%p#0, %p#1, %p#2, %p#3, %x, %c) {block_rows = 2 : i64, block_cols = 4 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<8x4xf32>, memref<4x4xf32>) -> ()
  return
}

// -----

// Checks that one block keeping a third column leaves the weight without
// counts, and that stale counts on the input are dropped, not trusted.

// CHECK-LABEL: func.func @one_block_differs
// CHECK: "bcr.packed"
// CHECK-NOT: kept_
// CHECK-SAME: name = "w"
func.func @one_block_differs(%blob: memref<?xi8>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<[[1.0, 9.0, 2.0, 0.0, 0.0, 3.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 5.0, 6.0, 0.0, 7.0, 0.0, 0.0, 8.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<4x8xf32>, name = "w", slot = 0 : i64, rows = 4 : i64, cols = 8 : i64, block_rows = 2 : i64, block_cols = 4 : i64, order = "natural", kept_rows = 1 : i64, kept_cols = 2 : i64} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  return
}

// -----

// Checks that stale counts are recomputed: the weight is dense, so its
// 8x16 blocks keep all 8 rows and 16 columns, whatever the input said.

// CHECK-LABEL: func.func @recomputed
// CHECK: "bcr.packed"(%{{.*}}) {block_cols = 16 : i64, block_rows = 8 : i64, cols = 32 : i64, kept_cols = 16 : i64, kept_rows = 8 : i64, name = "dense"
func.func @recomputed(%blob: memref<?xi8>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "dense", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "grouped", kept_rows = 2 : i64, kept_cols = 3 : i64} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  return
}

// -----

// Checks that a block size that does not divide the matrix (20 rows in
// blocks of 8: the last strip has 4) leaves a dense weight without counts,
// and so does a weight with nothing to store.

// CHECK-LABEL: func.func @edges_and_empty
// CHECK: "bcr.packed"
// CHECK-NOT: kept_
// CHECK-SAME: name = "edge"
// CHECK: "bcr.packed"
// CHECK-NOT: kept_
// CHECK-SAME: name = "empty"
func.func @edges_and_empty(%blob: memref<?xi8>) {
  %a:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<20x16xf32>, name = "edge", slot = 0 : i64, rows = 20 : i64, cols = 16 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  %b:4 = "bcr.packed"(%blob) {value = dense<-0.000000e+00> : tensor<16x16xf32>, name = "empty", slot = 4 : i64, rows = 16 : i64, cols = 16 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  return
}
