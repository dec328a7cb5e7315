// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-lre)' | %FileCheck %s
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-lre{register-tile=2 vectors=1})' | %FileCheck %s --check-prefix=FORCED
// RUN: not grim-opt %s --pass-pipeline='builtin.module(bcr-lre{register-tile=0})' 2>&1 | %FileCheck %s --check-prefix=BAD

// BAD: error: pass 'bcr-lre': register-tile must be in 1..=16, got 0

// Checks that bcr-lre gives every sparse product a register tile that fits
// the target's registers: 8 lanes (AVX2, 16 registers) with 8-row blocks ->
// 4 rows x 2 vectors; 4 lanes (NEON, 32 registers) -> 4 rows x 4 vectors;
// spmv gets a row tile only.

// CHECK-LABEL: func.func @choose
// CHECK: "bcr.spmm"{{.*}}register_tile = 4 : i64, vector_width = 8 : i64, vectors = 2 : i64
// CHECK: "bcr.spmm"{{.*}}register_tile = 4 : i64, vector_width = 4 : i64, vectors = 4 : i64
// CHECK: "bcr.spmv"{{.*}}register_tile = 4 : i64
// FORCED-LABEL: func.func @choose
// FORCED: "bcr.spmm"{{.*}}register_tile = 2 : i64, vector_width = 8 : i64, vectors = 1 : i64
func.func @choose(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<64x64xf32>, %c: memref<64x64xf32>, %xv: memref<64xf32>, %cv: memref<64xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 8 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64x64xf32>, memref<64x64xf32>) -> ()
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 4 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64x64xf32>, memref<64x64xf32>) -> ()
  "bcr.spmv"(%s, %b, %m, %v, %xv, %cv) {block_rows = 8 : i64, block_cols = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64xf32>, memref<64xf32>) -> ()
  return
}

// -----

// Checks that a product whose schedule is already set (from the LR file)
// keeps it.

// CHECK-LABEL: func.func @kept
// CHECK: register_tile = 1 : i64, vector_width = 8 : i64, vectors = 1 : i64
func.func @kept(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<64x64xf32>, %c: memref<64x64xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 8 : i64, register_tile = 1 : i64, vectors = 1 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64x64xf32>, memref<64x64xf32>) -> ()
  return
}

// -----

// Checks that a register tile given per layer is kept and the vectors are
// fitted around it (16 AVX2 registers, 6 rows: (16 - 1) / 7 = 2 vectors).

// CHECK-LABEL: func.func @given_tile
// CHECK: register_tile = 6 : i64, vector_width = 8 : i64, vectors = 2 : i64
func.func @given_tile(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<64x64xf32>, %c: memref<64x64xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 8 : i64, register_tile = 6 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64x64xf32>, memref<64x64xf32>) -> ()
  return
}

// -----

// Checks the dense register tile: 4 rows x 3 vectors on AVX2 (12
// accumulators, 3 activation vectors, 1 broadcast = 16 registers), 8 x 3 on
// NEON, 4 vectors of rows for a matrix-vector product, and that the tile's
// height becomes the weight's panel_rows (how the blob stores it).

// CHECK-LABEL: func.func @dense
// CHECK: %[[W8:.*]] = "bcr.dense"{{.*}}panel_rows = 4 : i64
// CHECK: %[[W4:.*]] = "bcr.dense"{{.*}}panel_rows = 8 : i64
// CHECK: %[[WV:.*]] = "bcr.dense"{{.*}}panel_rows = 32 : i64
// CHECK: "bcr.gemm"(%[[W8]], {{.*}}register_tile = 4 : i64, vector_width = 8 : i64, vectors = 3 : i64
// CHECK: "bcr.gemm"(%[[W4]], {{.*}}register_tile = 8 : i64, vector_width = 4 : i64, vectors = 3 : i64
// CHECK: "bcr.gemm"(%[[WV]], {{.*}}register_tile = 32 : i64, vector_width = 8 : i64, vectors = 4 : i64
func.func @dense(%blob: memref<?xi8>, %x: memref<64x256xf32>, %c: memref<64x256xf32>, %xv: memref<64xf32>, %cv: memref<64xf32>) {
  %w8 = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<64x64xf32>, name = "a", slot = 0 : i64, layout = "row_panels"} : (memref<?xi8>) -> memref<?xf32>
  %w4 = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<64x64xf32>, name = "b", slot = 1 : i64, layout = "row_panels"} : (memref<?xi8>) -> memref<?xf32>
  %wv = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<64x64xf32>, name = "c", slot = 2 : i64, layout = "row_panels"} : (memref<?xi8>) -> memref<?xf32>
  "bcr.gemm"(%w8, %x, %c) {vector_width = 8 : i64} : (memref<?xf32>, memref<64x256xf32>, memref<64x256xf32>) -> ()
  "bcr.gemm"(%w4, %x, %c) {vector_width = 4 : i64} : (memref<?xf32>, memref<64x256xf32>, memref<64x256xf32>) -> ()
  "bcr.gemm"(%wv, %xv, %cv) {vector_width = 8 : i64} : (memref<?xf32>, memref<64xf32>, memref<64xf32>) -> ()
  return
}

// -----

// Checks that the register file recorded by bcr-vectorize wins over the
// guess from the lanes: 4 lanes on AVX2 (registers = 16) fit 4 rows x 2
// vectors, where the same lanes on NEON (32 registers) fit 4 x 4.

// CHECK-LABEL: func.func @narrowed
// CHECK: "bcr.spmm"{{.*}}register_tile = 4 : i64, registers = 16 : i64, vector_width = 4 : i64, vectors = 2 : i64
func.func @narrowed(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<64x64xf32>, %c: memref<64x64xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 4 : i64, registers = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64x64xf32>, memref<64x64xf32>) -> ()
  return
}

// -----

// Checks that a runtime weight's bcr.pack_panels gets the dense tile's
// panel height, as a bcr.dense does (8 lanes, 16 registers: 4 rows), and
// that a forced taller tile is capped at the 16 rows its scratch pads for.

// CHECK-LABEL: func.func @runtime_panels
// CHECK: "bcr.pack_panels"(%{{.*}}, %{{.*}}) {panel_rows = 4 : i64}
// CHECK: "bcr.gemm"({{.*}}) {register_tile = 4 : i64, vector_width = 8 : i64, vectors = 3 : i64}
func.func @runtime_panels(%source: memref<40x32xf32>, %buffer: memref<?xf32>, %x: memref<32x64xf32>, %c: memref<40x64xf32>) {
  %w = "bcr.pack_panels"(%source, %buffer) : (memref<40x32xf32>, memref<?xf32>) -> memref<?xf32>
  "bcr.gemm"(%w, %x, %c) {vector_width = 8 : i64} : (memref<?xf32>, memref<32x64xf32>, memref<40x64xf32>) -> ()
  return
}
