// RUN: not grim-opt %s --split-input-file 2>&1 | %FileCheck %s
// Every chunk fails on its own; grim-opt reports each one and exits 1.

// Checks that a sparse product's block rows must be at least 1.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:3: error: 'bcr.spmm' op block size 0x8 out of range (1..=64 each)
func.func @spmm_block_zero(%blob: memref<?xi8>, %x: memref<32x8xf32>, %c: memref<16x8xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmm"(%p#0, %p#1, %p#2, %p#3, %x, %c) {block_rows = 0 : i64, block_cols = 8 : i64, vector_width = 8 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x8xf32>, memref<16x8xf32>) -> ()
  return
}

// -----

// Checks that a sparse product's block rows must be at most 64.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:3: error: 'bcr.spmm' op block size 65x8 out of range (1..=64 each)
func.func @spmm_block_65(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<32x8xf32>, %c: memref<16x8xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 65 : i64, block_cols = 8 : i64, vector_width = 8 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x8xf32>, memref<16x8xf32>) -> ()
  return
}

// -----

// Checks that bcr.packed only knows the natural and grouped orders.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:10: error: 'bcr.packed' op order must be "natural" or "grouped", got "bogus"
func.func @packed_order(%blob: memref<?xi8>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "bogus"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  return
}

// -----

// Checks that bcr.packed's uniform counts come as a pair within the block.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:10: error: 'bcr.packed' op kept_rows and kept_cols come together, in 1..=4 and 1..=8, got Some(5) and Some(2)
func.func @packed_kept_out_of_block(%blob: memref<?xi8>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "natural", kept_rows = 5 : i64, kept_cols = 2 : i64} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  return
}

// -----

// Checks that one uniform count without the other is refused.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:10: error: 'bcr.packed' op kept_rows and kept_cols come together, in 1..=4 and 1..=8, got Some(2) and None
func.func @packed_kept_alone(%blob: memref<?xi8>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "natural", kept_rows = 2 : i64} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  return
}

// -----

// Checks that bcr.packed must describe a non-empty matrix.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:10: error: 'bcr.packed' op matrix must be non-empty, got 0x32
func.func @packed_empty(%blob: memref<?xi8>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<0x32xf32>, name = "w", slot = 0 : i64, rows = 0 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  return
}

// -----

// Checks that bcr.packed's values array must be f32.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:10: error: 'bcr.packed' op result #3 must be memref<?xf32>, got memref<?xi32>
func.func @packed_values_type(%blob: memref<?xi8>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xi32>)
  return
}

// -----

// Checks that spmm's vector width is a power of two up to 16.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:3: error: 'bcr.spmm' op vector_width must be 1, 2, 4, 8 or 16, got 3
func.func @spmm_vector_width(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<32x8xf32>, %c: memref<16x8xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 4 : i64, block_cols = 8 : i64, vector_width = 3 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x8xf32>, memref<16x8xf32>) -> ()
  return
}

// -----

// Checks that spmm's input and output agree on N.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:3: error: 'bcr.spmm' op bcr.spmm needs input [K, N] and output [M, N], got [32, 8] and [16, 4]
func.func @spmm_n(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<32x8xf32>, %c: memref<16x4xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 4 : i64, block_cols = 8 : i64, vector_width = 4 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x8xf32>, memref<16x4xf32>) -> ()
  return
}

// -----

// Checks that a product's block size must match its bcr.packed.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:3: error: 'bcr.spmv' op block size 8x8 differs from the packed matrix's 4x8
func.func @spmv_block_mismatch(%blob: memref<?xi8>, %x: memref<32xf32>, %c: memref<16xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmv"(%p#0, %p#1, %p#2, %p#3, %x, %c) {block_rows = 8 : i64, block_cols = 8 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32xf32>, memref<16xf32>) -> ()
  return
}

// -----

// Checks that a product's operand shapes must match its bcr.packed matrix.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:3: error: 'bcr.spmv' op packed matrix 'w' is 16x32 but the product needs 16x30
func.func @spmv_shape_mismatch(%blob: memref<?xi8>, %x: memref<30xf32>, %c: memref<16xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmv"(%p#0, %p#1, %p#2, %p#3, %x, %c) {block_rows = 4 : i64, block_cols = 8 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<30xf32>, memref<16xf32>) -> ()
  return
}

// -----

// Checks that the BCRC operands have the i32/i16/i8/f32 element types.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:3: error: 'bcr.spmm' op BCRC operands must be memrefs of i32, i16, i8 and f32
func.func @spmm_values_f16(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf16>, %x: memref<32x8xf32>, %c: memref<16x8xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 4 : i64, block_cols = 8 : i64, vector_width = 4 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf16>, memref<32x8xf32>, memref<16x8xf32>) -> ()
  return
}

// -----

// Checks that bcr.dense yields a static f32 memref.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'bcr.dense' op result must be a static f32 memref, got memref<?xf32>
func.func @dense_dynamic(%blob: memref<?xi8>) {
  %d = "bcr.dense"(%blob) {name = "b", slot = 0 : i64, value = dense<1.0> : tensor<4xf32>} : (memref<?xi8>) -> memref<?xf32>
  return
}

// -----

// Checks that blob slots are never negative.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'bcr.dense' op slot must be an integer >= 0
func.func @dense_slot(%blob: memref<?xi8>) {
  %d = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<4xf32>, name = "b", slot = -1 : i64} : (memref<?xi8>) -> memref<4xf32>
  return
}

// -----

// Checks the IRDL structure: bcr is on memrefs, a tensor blob is refused.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: expected base type 'builtin.memref' but got 'builtin.tensor'
// CHECK-NEXT: note: see current operation: %0 = "bcr.dense"(%arg0)
func.func @dense_tensor(%blob: tensor<?xi8>) {
  %d = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<16xf32>, name = "b", slot = 0 : i64} : (tensor<?xi8>) -> memref<16xf32>
  return
}

// -----

// Checks the IRDL structure: the slot attribute is required.
// CHECK-LABEL: invalid.mlir:{{[0-9]+}}:8: error: 'bcr.dense' op attribute "slot" is expected but not provided
func.func @dense_no_slot(%blob: memref<?xi8>) {
  %d = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<4xf32>, name = "b"} : (memref<?xi8>) -> memref<4xf32>
  return
}

// -----

// Checks that bcr.spmm refuses a packed matrix whose values are column panels.
// CHECK: invalid.mlir:[[@LINE+3]]:3: error: 'bcr.spmm' op packed matrix 'w' has col_panels values, which only bcr.spmv reads
func.func @spmm_on_panels(%blob: memref<?xi8>, %x: memref<32x4xf32>, %c: memref<16x4xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "grouped", layout = "col_panels"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmm"(%p#0, %p#1, %p#2, %p#3, %x, %c) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 4 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x4xf32>, memref<16x4xf32>) -> ()
  return
}

// -----

// Checks that bcr.gemm needs its weights in row panels of its register tile's height.
// CHECK: invalid.mlir:[[@LINE+3]]:3: error: 'bcr.gemm' op register_tile 4 differs from the weights' panel_rows 8
func.func @gemm_panels(%blob: memref<?xi8>, %x: memref<32x4xf32>, %c: memref<16x4xf32>) {
  %w = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, layout = "row_panels", panel_rows = 8 : i64} : (memref<?xi8>) -> memref<?xf32>
  "bcr.gemm"(%w, %x, %c) {register_tile = 4 : i64} : (memref<?xf32>, memref<32x4xf32>, memref<16x4xf32>) -> ()
  return
}

// -----

// Checks that a runtime weight's panels may not be taller than the padding
// its scratch holds.
// CHECK: invalid.mlir:[[@LINE+2]]:8: error: 'bcr.pack_panels' op panel_rows must be 1..=16 (the padding its scratch holds), got 32
func.func @pack_panels_too_tall(%source: memref<40x8xf32>, %buffer: memref<?xf32>) {
  %w = "bcr.pack_panels"(%source, %buffer) {panel_rows = 32 : i64} : (memref<40x8xf32>, memref<?xf32>) -> memref<?xf32>
  return
}

// -----

// Checks that bcr.pack_panels needs a 2-D source.
// CHECK: invalid.mlir:[[@LINE+2]]:8: error: 'bcr.pack_panels' op source must be a static 2-D f32 memref, got memref<40xf32>
func.func @pack_panels_source(%source: memref<40xf32>, %buffer: memref<?xf32>) {
  %w = "bcr.pack_panels"(%source, %buffer) : (memref<40xf32>, memref<?xf32>) -> memref<?xf32>
  return
}

// -----

// Checks that bcr.gemm refuses mismatched input and output shapes.
// CHECK: invalid.mlir:[[@LINE+2]]:3: error: 'bcr.gemm' op bcr.gemm needs input [K, N] and output [M, N], or [K] and [M], got [32, 4] and [16]
func.func @gemm_shapes(%w: memref<?xf32>, %x: memref<32x4xf32>, %c: memref<16xf32>) {
  "bcr.gemm"(%w, %x, %c) : (memref<?xf32>, memref<32x4xf32>, memref<16xf32>) -> ()
  return
}

// -----

// Checks that a dense weight in row panels is a dynamic 1-D memref.
// CHECK: invalid.mlir:[[@LINE+2]]:8: error: 'bcr.dense' op a row_panels weight must be memref<?xf32>, got memref<16x32xf32>
func.func @panels_type(%blob: memref<?xi8>) {
  %w = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, layout = "row_panels"} : (memref<?xi8>) -> memref<16x32xf32>
  return
}

// -----

// Checks that bcr.im2col's output must be the patch matrix of its image: a
// 3x3 kernel over 2 channels has 18 rows, and a 5x5 image with pads of 1 25 columns.
// CHECK: invalid.mlir:[[@LINE+2]]:3: error: 'bcr.im2col' op the im2col of [2, 5, 5] is [18, 25], not [18, 20]
func.func @patches_shape(%x: memref<2x5x5xf32>, %out: memref<18x20xf32>) {
  "bcr.im2col"(%x, %out) {im2col = array<i64: 3, 3, 1, 1, 1, 1, 1, 1, 1, 1>} : (memref<2x5x5xf32>, memref<18x20xf32>) -> ()
  return
}

// -----

// Checks that bcr.packed carries its matrix's values: a 16x32 matrix cannot
// be packed from 8x16 values.
// CHECK: invalid.mlir:[[@LINE+2]]:10: error: 'bcr.packed' op 'value' has shape [8, 16], not the 16x32 matrix
func.func @packed_value_shape(%blob: memref<?xi8>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.0> : tensor<8x16xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  return
}

// -----

// Checks the IRDL structure: bcr.dense needs the weight's values.
// CHECK: invalid.mlir:[[@LINE+2]]:8: error: 'bcr.dense' op attribute "value" is expected but not provided
func.func @dense_without_value(%blob: memref<?xi8>) {
  %d = "bcr.dense"(%blob) {name = "b", slot = 0 : i64} : (memref<?xi8>) -> memref<4xf32>
  return
}
