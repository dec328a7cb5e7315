// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-reorder)' | %FileCheck %s
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-reorder{order=natural})' | %FileCheck %s --check-prefix=NATURAL

// Checks that bcr-reorder sets every bcr.packed to the grouped work order and
// leaves the rest of the op and its users alone; with order=natural it
// restores the natural order.

// CHECK-LABEL: func.func @two_weights
// CHECK: %[[A:.*]]:4 = "bcr.packed"(%[[BLOB:.*]]) {block_cols = 16 : i64, block_rows = 8 : i64, cols = 32 : i64, name = "fc1.weight", order = "grouped", rows = 16 : i64, slot = 0 : i64, value = dense<1.000000e+00> : tensor<16x32xf32>}
// CHECK: %[[B:.*]]:4 = "bcr.packed"(%[[BLOB]]) {{{.*}}name = "fc2.weight", order = "grouped"
// CHECK: "bcr.spmv"(%[[A]]#0, %[[A]]#1, %[[A]]#2, %[[A]]#3,
// CHECK: "bcr.spmv"(%[[B]]#0, %[[B]]#1, %[[B]]#2, %[[B]]#3,
// CHECK-NOT: "natural"

// NATURAL-LABEL: func.func @two_weights
// NATURAL: name = "fc1.weight", order = "natural"
// NATURAL: name = "fc2.weight", order = "natural"
// NATURAL-NOT: "grouped"
func.func @two_weights(%blob: memref<?xi8>, %x: memref<32xf32>, %h: memref<16xf32>, %y: memref<8xf32>) {
  %a:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "fc1.weight", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  %b:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<8x16xf32>, name = "fc2.weight", slot = 4 : i64, rows = 8 : i64, cols = 16 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "grouped"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmv"(%a#0, %a#1, %a#2, %a#3, %x, %h) {block_rows = 8 : i64, block_cols = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32xf32>, memref<16xf32>) -> ()
  "bcr.spmv"(%b#0, %b#1, %b#2, %b#3, %h, %y) {block_rows = 8 : i64, block_cols = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<16xf32>, memref<8xf32>) -> ()
  return
}

// -----

// Checks that a bcr.packed nested in a loop is reordered too (the pass walks
// the whole module, not only function bodies).

// CHECK-LABEL: func.func @nested
// CHECK: scf.for
// CHECK: "bcr.packed"{{.*}}order = "grouped"

// NATURAL-LABEL: func.func @nested
// NATURAL: "bcr.packed"{{.*}}order = "natural"
func.func @nested(%blob: memref<?xi8>, %x: memref<8x4xf32>, %c: memref<8x4xf32>) {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %c2 step %c1 {
    %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<8x8xf32>, name = "w", slot = 0 : i64, rows = 8 : i64, cols = 8 : i64, block_rows = 4 : i64, block_cols = 4 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
    "bcr.spmm"(%p#0, %p#1, %p#2, %p#3, %x, %c) {block_rows = 4 : i64, block_cols = 4 : i64, vector_width = 4 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<8x4xf32>, memref<8x4xf32>) -> ()
  }
  return
}

// -----

// Checks that a packed weight whose order was pinned per layer (from the LR
// file) keeps its order.

// CHECK-LABEL: func.func @pinned
// CHECK: name = "fc1.weight", order = "natural", pinned
// NATURAL-LABEL: func.func @pinned
func.func @pinned(%blob: memref<?xi8>) {
  %a:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "fc1.weight", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "natural", pinned} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  return
}
