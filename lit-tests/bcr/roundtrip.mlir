// RUN: grim-opt %s --split-input-file | grim-opt - --split-input-file | %FileCheck %s

// Checks that bcr.packed, bcr.dense and bcr.spmv parse, verify and print
// back with every attribute, and that the printed form parses again.

// CHECK-LABEL: func.func @spmv
// CHECK-SAME: (%[[BLOB:.*]]: memref<?xi8>, %[[X:.*]]: memref<32xf32>, %[[Y:.*]]: memref<16xf32>)
// CHECK: %[[P:.*]]:4 = "bcr.packed"(%[[BLOB]]) {block_cols = 16 : i64, block_rows = 8 : i64, cols = 32 : i64, name = "fc1.weight", order = "natural", rows = 16 : i64, slot = 0 : i64, value = dense<1.000000e+00> : tensor<16x32xf32>} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
// CHECK: %[[B:.*]] = "bcr.dense"(%[[BLOB]]) {name = "fc1.bias", slot = 4 : i64, value = dense<1.000000e+00> : tensor<16xf32>} : (memref<?xi8>) -> memref<16xf32>
// CHECK: memref.copy %[[B]], %[[Y]]
// CHECK: "bcr.spmv"(%[[P]]#0, %[[P]]#1, %[[P]]#2, %[[P]]#3, %[[X]], %[[Y]]) {block_cols = 16 : i64, block_rows = 8 : i64}
func.func @spmv(%blob: memref<?xi8>, %x: memref<32xf32>, %y: memref<16xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "fc1.weight", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  %b = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<16xf32>, name = "fc1.bias", slot = 4 : i64} : (memref<?xi8>) -> memref<16xf32>
  memref.copy %b, %y : memref<16xf32> to memref<16xf32>
  "bcr.spmv"(%p#0, %p#1, %p#2, %p#3, %x, %y) {block_rows = 8 : i64, block_cols = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32xf32>, memref<16xf32>) -> ()
  return
}

// -----

// Checks bcr.spmm with the grouped order and a vector width, and that the
// BCRC operands may also be plain function arguments.

// CHECK-LABEL: func.func @spmm
// CHECK: "bcr.packed"{{.*}}order = "grouped"
// CHECK: "bcr.spmm"({{.*}}) {block_cols = 8 : i64, block_rows = 4 : i64, vector_width = 16 : i64} : ({{.*}}, memref<32x16xf32>, memref<16x16xf32>) -> ()
// CHECK-LABEL: func.func @spmm_arguments
// CHECK: "bcr.spmm"(%arg0, %arg1, %arg2, %arg3, %arg4, %arg5) {block_cols = 1 : i64, block_rows = 64 : i64, vector_width = 1 : i64}
func.func @spmm(%blob: memref<?xi8>, %x: memref<32x16xf32>, %c: memref<16x16xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "grouped"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmm"(%p#0, %p#1, %p#2, %p#3, %x, %c) {block_rows = 4 : i64, block_cols = 8 : i64, vector_width = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x16xf32>, memref<16x16xf32>) -> ()
  return
}
func.func @spmm_arguments(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<32x3xf32>, %c: memref<16x3xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 64 : i64, block_cols = 1 : i64, vector_width = 1 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x3xf32>, memref<16x3xf32>) -> ()
  return
}

// -----

// CHECK-LABEL: func.func @dense_gemm
// CHECK: %[[W:.*]] = "bcr.dense"(%{{.*}}) {layout = "row_panels", name = "w", panel_rows = 4 : i64, slot = 0 : i64, value = dense<1.000000e+00> : tensor<16x32xf32>} : (memref<?xi8>) -> memref<?xf32>
// CHECK: "bcr.gemm"(%[[W]], %{{.*}}, %{{.*}}) {register_tile = 4 : i64, tile_k = 16 : i64, tile_m = 8 : i64, tile_n = 8 : i64, vector_width = 8 : i64, vectors = 1 : i64}
func.func @dense_gemm(%blob: memref<?xi8>, %x: memref<32x16xf32>, %c: memref<16x16xf32>) {
  %w = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, layout = "row_panels", panel_rows = 4 : i64} : (memref<?xi8>) -> memref<?xf32>
  "bcr.gemm"(%w, %x, %c) {register_tile = 4 : i64, vectors = 1 : i64, vector_width = 8 : i64, tile_m = 8 : i64, tile_n = 8 : i64, tile_k = 16 : i64} : (memref<?xf32>, memref<32x16xf32>, memref<16x16xf32>) -> ()
  return
}

// -----

// CHECK-LABEL: func.func @patches
// CHECK: "bcr.im2col"(%{{.*}}, %{{.*}}) {im2col = array<i64: 3, 3, 1, 1, 1, 1, 1, 1, 1, 1>} : (memref<2x5x5xf32>, memref<18x25xf32>) -> ()
func.func @patches(%x: memref<2x5x5xf32>, %out: memref<18x25xf32>) {
  "bcr.im2col"(%x, %out) {im2col = array<i64: 3, 3, 1, 1, 1, 1, 1, 1, 1, 1>} : (memref<2x5x5xf32>, memref<18x25xf32>) -> ()
  return
}
