// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(lower-bcr-to-loops)' | %FileCheck %s

// Checks that bcr.packed reads its four arrays through the blob's slot table
// (entry at 16 + 16 * slot bytes) and that bcr.spmv becomes a strip / block
// walk with a scalar math.fma chain per kept row.

// CHECK-LABEL: func.func @spmv
// CHECK-SAME: (%[[BLOB:.*]]: memref<?xi8>, %[[X:.*]]: memref<32xf32>, %[[Y:.*]]: memref<16xf32>)
// CHECK: %[[ENTRY_OFFSET:.*]] = arith.constant 16 : index
// CHECK: %[[ENTRY:.*]] = memref.view %[[BLOB]][%[[ENTRY_OFFSET]]][] : memref<?xi8> to memref<2xi64>
// CHECK: %[[STRIPS:.*]] = memref.view %[[BLOB]][%{{.*}}][%{{.*}}] : memref<?xi8> to memref<?xi32>
// CHECK: memref.view %[[BLOB]]{{.*}} to memref<?xi16>
// CHECK: memref.view %[[BLOB]]{{.*}} to memref<?xi8>
// CHECK: %[[VALUES:.*]] = memref.view %[[BLOB]]{{.*}} to memref<?xf32>
// CHECK: %[[KEPT_ROWS:.*]] = memref.alloca() : memref<8xindex>
// CHECK: %[[KEPT_COLS:.*]] = memref.alloca() : memref<16xindex>
// CHECK: scf.for
// CHECK: memref.load %[[STRIPS]]
// CHECK: scf.for
// CHECK: %[[ROW:.*]] = memref.load %[[KEPT_ROWS]]
// CHECK: memref.load %[[Y]][%[[ROW]]]
// CHECK: %[[XV:.*]] = memref.load %[[X]]
// CHECK: %[[W:.*]] = memref.load %[[VALUES]]
// CHECK: math.fma %[[W]], %[[XV]], %{{.*}} : f32
// CHECK: memref.store %{{.*}}, %[[Y]][%[[ROW]]]
// CHECK-NOT: bcr.
// CHECK-NOT: vector.
// CHECK: return
func.func @spmv(%blob: memref<?xi8>, %x: memref<32xf32>, %y: memref<16xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmv"(%p#0, %p#1, %p#2, %p#3, %x, %y) {block_rows = 8 : i64, block_cols = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32xf32>, memref<16xf32>) -> ()
  return
}

// -----

// Checks that bcr.spmm loads each output vector once, accumulates one
// broadcast weight times one activation vector per kept column with
// vector.fma, stores it once, and finishes N = 10 with 8 lanes by one
// masked vector over columns 8..10.

// CHECK-LABEL: func.func @spmm_tail
// CHECK-SAME: (%{{.*}}: memref<?xi8>, %[[X:.*]]: memref<32x10xf32>, %[[C:.*]]: memref<16x10xf32>)
// CHECK: %[[VALUES:.*]] = memref.view {{.*}} to memref<?xf32>
// CHECK: %[[ACC:.*]] = vector.load %[[C]][%[[ROW:.*]], %[[COL:.*]]] : memref<16x10xf32>, vector<8xf32>
// CHECK: %[[SUM:.*]] = scf.for {{.*}} iter_args(%[[PARTIAL:.*]] = %[[ACC]]) -> (vector<8xf32>)
// CHECK: %[[XV:.*]] = vector.load %[[X]][%{{.*}}, %[[COL]]] : memref<32x10xf32>, vector<8xf32>
// CHECK: %[[W:.*]] = memref.load %[[VALUES]]
// CHECK: %[[WV:.*]] = vector.broadcast %[[W]] : f32 to vector<8xf32>
// CHECK: vector.fma %[[WV]], %[[XV]], %[[PARTIAL]] : vector<8xf32>
// CHECK: vector.store %[[SUM]], %[[C]][%[[ROW]], %[[COL]]]
// CHECK: %[[MASK:.*]] = vector.constant_mask [2] : vector<8xi1>
// CHECK: %[[TAIL:.*]] = vector.maskedload %[[C]][%{{.*}}, %{{.*}}], %[[MASK]]
// CHECK: vector.maskedload %[[X]]
// CHECK: vector.fma
// CHECK: vector.maskedstore %[[C]][%{{.*}}, %{{.*}}], %[[MASK]]
// CHECK-NOT: bcr.
// CHECK: return
func.func @spmm_tail(%blob: memref<?xi8>, %x: memref<32x10xf32>, %c: memref<16x10xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "grouped"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmm"(%p#0, %p#1, %p#2, %p#3, %x, %c) {block_rows = 4 : i64, block_cols = 8 : i64, vector_width = 8 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x10xf32>, memref<16x10xf32>) -> ()
  return
}

// -----

// Checks that bcr.dense becomes a static view at the byte offset read from
// its slot-table entry (slot 4: 16 + 16 * 4 = 80 bytes into the blob).

// CHECK-LABEL: func.func @dense
// CHECK-SAME: (%[[BLOB:.*]]: memref<?xi8>, %[[OUT:.*]]: memref<16xf32>)
// CHECK: %[[ENTRY_OFFSET:.*]] = arith.constant 80 : index
// CHECK: %[[ENTRY:.*]] = memref.view %[[BLOB]][%[[ENTRY_OFFSET]]][] : memref<?xi8> to memref<2xi64>
// CHECK: %[[OFFSET:.*]] = memref.load %[[ENTRY]]
// CHECK: %[[BYTES:.*]] = arith.index_cast %[[OFFSET]] : i64 to index
// CHECK: %[[BIAS:.*]] = memref.view %[[BLOB]][%[[BYTES]]][] : memref<?xi8> to memref<16xf32>
// CHECK: memref.copy %[[BIAS]], %[[OUT]]
// CHECK-NOT: bcr.
func.func @dense(%blob: memref<?xi8>, %out: memref<16xf32>) {
  %bias = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<16xf32>, name = "fc1.bias", slot = 4 : i64} : (memref<?xi8>) -> memref<16xf32>
  memref.copy %bias, %out : memref<16xf32> to memref<16xf32>
  return
}

// -----

// Checks the register tile (bcr-lre's schedule): with register_tile = 2 and
// vectors = 2, the full tiles load a 2 x 2 output tile once, and per kept
// column load two activation vectors once and use each for both rows
// (four vector.fma per iteration); the kept rows left over run one at a time.

// CHECK-LABEL: func.func @spmm_tile
// CHECK-SAME: (%{{.*}}: memref<?xi8>, %[[X:.*]]: memref<32x16xf32>, %[[C:.*]]: memref<16x16xf32>)
// CHECK: scf.for
// CHECK-COUNT-4: vector.load %[[C]]
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>)
// CHECK: %[[X0:.*]] = vector.load %[[X]]
// CHECK: %[[X1:.*]] = vector.load %[[X]]
// CHECK: vector.fma %{{.*}}, %[[X0]]
// CHECK: vector.fma %{{.*}}, %[[X1]]
// CHECK: vector.fma %{{.*}}, %[[X0]]
// CHECK: vector.fma %{{.*}}, %[[X1]]
// CHECK-COUNT-4: vector.store {{.*}}, %[[C]]
// CHECK: return
func.func @spmm_tile(%blob: memref<?xi8>, %x: memref<32x16xf32>, %c: memref<16x16xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "grouped"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmm"(%p#0, %p#1, %p#2, %p#3, %x, %c) {block_rows = 4 : i64, block_cols = 8 : i64, vector_width = 4 : i64, register_tile = 2 : i64, vectors = 2 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x16xf32>, memref<16x16xf32>) -> ()
  return
}

// -----

// Checks bcr.spmv over column panels: the strip's 8 outputs stay in one
// vector across its blocks (an scf.for carrying a vector<8xf32>), each kept
// column multiplies a broadcast activation with an 8-row panel, and the sum
// is added to the output with a vector load/store when the strip is whole.
// Its 3 strips are handed out one at a time (work items hold at most a
// quarter of the strips).

// CHECK-LABEL: func.func @spmv_panels
// CHECK-SAME: (%{{.*}}: memref<?xi8>, %[[X:.*]]: memref<32xf32>, %[[Y:.*]]: memref<20xf32>)
// CHECK: %[[SUMS:.*]]:2 = scf.for {{.*}} -> (index, vector<8xf32>)
// CHECK: math.cttz
// CHECK: scf.for {{.*}} -> (vector<8xf32>)
// CHECK: %[[XK:.*]] = memref.load %[[X]]
// CHECK: %[[XB:.*]] = vector.broadcast %[[XK]] : f32 to vector<8xf32>
// CHECK: %[[W:.*]] = vector.load {{.*}} : memref<?xf32>, vector<8xf32>
// CHECK: vector.fma %[[W]], %[[XB]]
// CHECK: scf.if
// CHECK: vector.load %[[Y]]
// CHECK: arith.addf {{.*}}, %[[SUMS]]#1 : vector<8xf32>
// CHECK: vector.store {{.*}}, %[[Y]]
// CHECK: } else {
// CHECK: memref.store {{.*}}, %[[Y]]
// CHECK: } {grim.parallel}
// CHECK-NOT: bcr.
func.func @spmv_panels(%blob: memref<?xi8>, %x: memref<32xf32>, %y: memref<20xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<20x32xf32>, name = "w", slot = 0 : i64, rows = 20 : i64, cols = 32 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "grouped", layout = "col_panels"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmv"(%p#0, %p#1, %p#2, %p#3, %x, %y) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 8 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32xf32>, memref<20xf32>) -> ()
  return
}

// -----

// Checks bcr.spmv over compact panels: each block's row mask becomes a
// vector<8xi1> (vector.bitcast of its byte), each kept column's kept rows
// are expanded by it as they load (vector.expandload), four blocks run per
// iteration into four sums added at the strip's end, and with the packed
// weight's uniform counts (4 rows x 3 columns) a block whose masks have
// them runs straight-line code (three expandloads, no column loop), any
// other the counted walk; the strips are handed out 1024 blocks at a time
// but at most a quarter of them per item (K = 32: 2 blocks per strip, 512
// strips would make an item; 32 strips allow 8).

// CHECK-LABEL: func.func @spmv_compact
// CHECK: scf.for {{.*}} -> (index, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: %[[BYTES:.*]] = vector.load {{.*}} : memref<?xi8>, vector<1xi8>
// CHECK: %[[MASK:.*]] = vector.bitcast %[[BYTES]] : vector<1xi8> to vector<8xi1>
// CHECK: math.ctpop
// CHECK: scf.if {{.*}} -> (vector<8xf32>)
// CHECK: vector.expandload {{.*}}, %[[MASK]], {{.*}} : memref<?xf32>, vector<8xi1>, vector<8xf32> into vector<8xf32>
// CHECK: vector.fma
// CHECK: vector.expandload
// CHECK: vector.expandload
// CHECK: } else {
// CHECK: scf.for {{.*}} -> (vector<8xf32>)
// CHECK: vector.expandload
// CHECK: } {grim.grain = 8 : i64, grim.parallel}
// CHECK-NOT: bcr.
func.func @spmv_compact(%blob: memref<?xi8>, %x: memref<32xf32>, %y: memref<256xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<256x32xf32>, name = "w", slot = 0 : i64, rows = 256 : i64, cols = 32 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "grouped", layout = "compact_panels", kept_rows = 4 : i64, kept_cols = 3 : i64} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmv"(%p#0, %p#1, %p#2, %p#3, %x, %y) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32xf32>, memref<256xf32>) -> ()
  return
}

// -----

// Checks bcr.spmm over compact panels for a narrow product (N = 4): the
// strip loop carries the value offset and one vector<8xf32> sum per output
// column across all blocks; per kept column one expandload of its kept
// rows, then one broadcast activation x[k, j] and one vector.fma per
// column j; the four sums go through a stack buffer into the rows of the
// row-major output once per strip; items hold 1024 / (2 blocks x 4
// columns) = 128 strips, capped at a quarter of the 32 strips.

// CHECK-LABEL: func.func @spmm_compact
// CHECK: scf.for {{.*}} -> (index, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: %[[BYTES:.*]] = vector.load {{.*}} : memref<?xi8>, vector<1xi8>
// CHECK: %[[MASK:.*]] = vector.bitcast %[[BYTES]] : vector<1xi8> to vector<8xi1>
// CHECK: scf.if {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: vector.expandload {{.*}}, %[[MASK]], {{.*}} : memref<?xf32>, vector<8xi1>, vector<8xf32> into vector<8xf32>
// CHECK-COUNT-4: vector.fma
// CHECK: vector.expandload
// CHECK-COUNT-4: vector.fma
// CHECK: vector.expandload
// CHECK-COUNT-4: vector.fma
// CHECK: } else {
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: vector.expandload
// CHECK-COUNT-4: vector.store {{.*}} : memref<32xf32>, vector<8xf32>
// CHECK: arith.minui
// CHECK: scf.for
// CHECK-COUNT-4: memref.store {{.*}} : memref<256x4xf32>
// CHECK: } {grim.grain = 8 : i64, grim.parallel}
// CHECK-NOT: bcr.
func.func @spmm_compact(%blob: memref<?xi8>, %x: memref<32x4xf32>, %y: memref<256x4xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<256x32xf32>, name = "w", slot = 0 : i64, rows = 256 : i64, cols = 32 : i64, block_rows = 8 : i64, block_cols = 16 : i64, order = "grouped", layout = "compact_panels", kept_rows = 4 : i64, kept_cols = 3 : i64} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmm"(%p#0, %p#1, %p#2, %p#3, %x, %y) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 16 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x4xf32>, memref<256x4xf32>) -> ()
  return
}

// -----

// Checks that a dense matrix-vector bcr.gemm (panels of 16 rows, 8 lanes)
// becomes a parallel loop over the 3 panels of 40 rows, each keeping two
// vector<8xf32> sums over all of K (one broadcast activation, two weight
// vector loads and two vector.fma per column), added to the output with
// vector stores, or row by row for the last panel that 40 cuts short.

// CHECK-LABEL: func.func @dense_gemv
// CHECK-SAME: (%[[BLOB:.*]]: memref<?xi8>, %[[X:.*]]: memref<24xf32>, %[[Y:.*]]: memref<40xf32>)
// CHECK: %[[W:.*]] = memref.view %[[BLOB]]{{.*}} to memref<?xf32>
// CHECK: %[[PANELS:.*]] = arith.constant 3 : index
// CHECK: scf.for %[[P:.*]] = %{{.*}} to %[[PANELS]]
// CHECK: scf.for %[[K:.*]] = {{.*}} iter_args(%[[S0:.*]] = %{{.*}}, %[[S1:.*]] = %{{.*}}) -> (vector<8xf32>, vector<8xf32>)
// CHECK: %[[XK:.*]] = memref.load %[[X]][%[[K]]]
// CHECK: %[[B:.*]] = vector.broadcast %[[XK]] : f32 to vector<8xf32>
// CHECK: vector.load %[[W]]
// CHECK: vector.fma %{{.*}}, %[[B]], %[[S0]]
// CHECK: vector.load %[[W]]
// CHECK: vector.fma %{{.*}}, %[[B]], %[[S1]]
// CHECK: scf.if
// CHECK: vector.store {{.*}}, %[[Y]]
// CHECK: } else {
// CHECK: memref.store {{.*}}, %[[Y]]
// CHECK: } {grim.parallel}
func.func @dense_gemv(%blob: memref<?xi8>, %x: memref<24xf32>, %y: memref<40xf32>) {
  %w = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<40x24xf32>, name = "w", slot = 0 : i64, layout = "row_panels", panel_rows = 16 : i64} : (memref<?xi8>) -> memref<?xf32>
  "bcr.gemm"(%w, %x, %y) {register_tile = 16 : i64, vector_width = 8 : i64} : (memref<?xf32>, memref<24xf32>, memref<40xf32>) -> ()
  return
}

// -----

// Checks that bcr.im2col becomes a parallel loop over items of whole patch
// rows (here one item: 18 rows of 25 floats are fewer than the 8192 floats
// an item copies at least), then a loop over the item's rows: the
// row index kk splits into channel, kernel row and kernel column; the
// output rows and columns that read inside the image are computed once per
// row (ceildiv/floordiv of the padding offsets); output rows in the padding
// are zero-filled; every other output row is zeros, a copy from the image,
// zeros, with the same bounds for every row (no per-element checks).

// CHECK-LABEL: func.func @patches
// CHECK-SAME: (%[[X:.*]]: memref<2x5x5xf32>, %[[OUT:.*]]: memref<18x25xf32>)
// CHECK: %[[ONE:.*]] = arith.constant 1 : index
// CHECK: scf.for %[[ITEM:.*]] = %{{.*}} to %[[ONE]]
// CHECK: %[[FIRST:.*]] = arith.muli %[[ITEM]], %c18
// CHECK: %[[END:.*]] = arith.minui
// CHECK: scf.for %[[KK:.*]] = %[[FIRST]] to %[[END]]
// CHECK: %[[CH:.*]] = arith.divui %[[KK]], %{{.*}} : index
// CHECK: arith.ceildivsi
// CHECK: arith.floordivsi
// CHECK: scf.for
// CHECK: memref.store %{{.*}}, %[[OUT]][%[[KK]], %{{.*}}]
// CHECK: scf.for %[[OH:.*]] =
// CHECK-NOT: scf.while
// CHECK: %[[V:.*]] = memref.load %[[X]][%[[CH]], %{{.*}}, %{{.*}}]
// CHECK: memref.store %[[V]], %[[OUT]][%[[KK]], %{{.*}}]
// CHECK: } {grim.parallel}
func.func @patches(%x: memref<2x5x5xf32>, %out: memref<18x25xf32>) {
  "bcr.im2col"(%x, %out) {im2col = array<i64: 3, 3, 1, 1, 1, 1, 1, 1, 1, 1>} : (memref<2x5x5xf32>, memref<18x25xf32>) -> ()
  return
}

// -----

// Checks that bcr.spmm reading an image (implicit im2col) flattens it,
// turns each block's kept patch rows into image offsets
// (c * H * W + i * W + j: 5 * 52 = 260 per channel), and walks the
// output rows (3 of 50 columns) with vector loads at offset + shift + n.

// CHECK-LABEL: func.func @image
// CHECK: %[[FLAT:.*]] = memref.collapse_shape %{{.*}} {{\[}}[0, 1, 2]] : memref<2x5x52xf32> into memref<520xf32>
// CHECK: arith.constant 260 : index
// CHECK: %[[ROWS:.*]] = arith.constant 3 : index
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[ROWS]]
// CHECK: vector.load %[[FLAT]]
// CHECK: vector.fma
func.func @image(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<2x5x52xf32>, %c: memref<4x150xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 4 : i64, block_cols = 8 : i64, vector_width = 8 : i64, im2col = array<i64: 3, 3, 1, 1, 0, 0, 0, 0, 1, 1>} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<2x5x52xf32>, memref<4x150xf32>) -> ()
  return
}

// -----

// Checks that a packed weight whose blocks all keep 4 rows and 8 columns
// (kept_rows/kept_cols, from bcr-uniform-blocks: the dense weight keeps
// all of its 4x8 blocks) gets the walk with constant trip counts, versioned
// on each block's own counts (math.ctpop of its masks): where they match,
// the row mask decodes in a counted loop of 4 steps and the column mask in
// one of 8, the kept columns run 0..8, and the activation rows of a block
// ahead are prefetched (clamped to X's last row); otherwise the counted
// walk (scf.while) runs.

// CHECK-LABEL: func.func @spmm_uniform
// CHECK-SAME: (%{{.*}}: memref<?xi8>, %[[X:.*]]: memref<32x16xf32>, %{{.*}}: memref<16x16xf32>)
// CHECK: %[[ROWS:.*]] = math.ctpop %[[ROW_WORD:.*]] : i64
// CHECK: arith.cmpi eq, %[[ROWS]], %c4
// CHECK: %[[COLS:.*]] = math.ctpop %[[COL_WORD:.*]] : i64
// CHECK: arith.cmpi eq, %[[COLS]], %c8
// CHECK: scf.if
// CHECK-NOT: scf.while
// CHECK: scf.for %{{.*}} = %{{.*}} to %c4{{(_[0-9]+)?}} step %{{.*}} iter_args(%{{.*}} = %[[ROW_WORD]]) -> (i64)
// CHECK: scf.for %{{.*}} = %{{.*}} to %c8{{(_[0-9]+)?}} step %{{.*}} iter_args(%{{.*}} = %[[COL_WORD]]) -> (i64)
// CHECK: %[[DIM:.*]] = memref.dim %[[X]]
// CHECK: %[[LAST:.*]] = arith.subi %[[DIM]]
// CHECK: %[[ROW:.*]] = arith.minui %{{.*}}, %[[LAST]] : index
// CHECK: memref.prefetch %[[X]][%[[ROW]], %{{.*}}], read, locality<3>, data : memref<32x16xf32>
// CHECK: scf.for %{{.*}} = %{{.*}} to %c8{{(_[0-9]+)?}} step %{{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (vector<8xf32>, vector<8xf32>)
// CHECK: vector.fma
// CHECK: } else {
// CHECK: scf.while (%{{.*}} = %[[ROW_WORD]]
// CHECK: scf.while (%{{.*}} = %[[COL_WORD]]
// CHECK-NOT: memref.prefetch
// CHECK: return
func.func @spmm_uniform(%blob: memref<?xi8>, %x: memref<32x16xf32>, %c: memref<16x16xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "natural", kept_rows = 4 : i64, kept_cols = 8 : i64} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmm"(%p#0, %p#1, %p#2, %p#3, %x, %c) {block_rows = 4 : i64, block_cols = 8 : i64, vector_width = 8 : i64, register_tile = 2 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x16xf32>, memref<16x16xf32>) -> ()
  return
}

// -----

// Checks that the same product without the counts decodes each mask with
// an scf.while over its set bits and prefetches nothing.

// CHECK-LABEL: func.func @spmm_counted
// CHECK: scf.while
// CHECK: scf.while
// CHECK-NOT: memref.prefetch
// CHECK: return
func.func @spmm_counted(%blob: memref<?xi8>, %x: memref<32x16xf32>, %c: memref<16x16xf32>) {
  %p:4 = "bcr.packed"(%blob) {value = dense<1.000000e+00> : tensor<16x32xf32>, name = "w", slot = 0 : i64, rows = 16 : i64, cols = 32 : i64, block_rows = 4 : i64, block_cols = 8 : i64, order = "natural"} : (memref<?xi8>) -> (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>)
  "bcr.spmm"(%p#0, %p#1, %p#2, %p#3, %x, %c) {block_rows = 4 : i64, block_cols = 8 : i64, vector_width = 8 : i64, register_tile = 2 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<32x16xf32>, memref<16x16xf32>) -> ()
  return
}

// -----

// Checks that bcr.pack_panels writes a runtime weight (here the transpose
// of a [K=3, M=5] source, times 0.5) into panels of 4 rows, row r of W at
// (r / 4 * K + k) * 4 + r % 4, in a parallel loop over W's rows, then
// zeroes the 3 padding rows of the last panel; the bcr.gemm reads the
// buffer itself.

// CHECK-LABEL: func.func @pack_runtime_weight
// CHECK-SAME: (%[[SRC:.*]]: memref<3x5xf32>, %[[BUF:.*]]: memref<?xf32>
// CHECK: scf.for %[[ROW:.*]] = %{{.*}} to %c5
// CHECK: scf.for %[[K:.*]] =
// CHECK: %[[V:.*]] = memref.load %[[SRC]][%[[K]], %[[ROW]]] : memref<3x5xf32>
// CHECK: %[[S:.*]] = arith.mulf %[[V]], %{{.*}} : f32
// CHECK: arith.divui %[[ROW]], %c4
// CHECK: arith.remui %[[ROW]], %c4
// CHECK: memref.store %[[S]], %[[BUF]]
// CHECK: } {grim.parallel}
// CHECK: scf.for %{{.*}} = %c5{{.*}} to %c8
// CHECK: memref.store %cst{{.*}}, %[[BUF]]
// CHECK-NOT: bcr.pack_panels
// CHECK: scf.for
// CHECK: memref.load %[[BUF]]
func.func @pack_runtime_weight(%source: memref<3x5xf32>, %buffer: memref<?xf32>, %x: memref<3x2xf32>, %c: memref<5x2xf32>) {
  %w = "bcr.pack_panels"(%source, %buffer) {transposed, scale = 5.000000e-01 : f32, panel_rows = 4 : i64} : (memref<3x5xf32>, memref<?xf32>) -> memref<?xf32>
  "bcr.gemm"(%w, %x, %c) {register_tile = 4 : i64} : (memref<?xf32>, memref<3x2xf32>, memref<5x2xf32>) -> ()
  return
}
