// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-tile)' | %FileCheck %s
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-tile{tile-n=48})' | %FileCheck %s --check-prefix=FORCED
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(bcr-tile,lower-bcr-to-loops)' | %FileCheck %s --check-prefix=LOOPS
// RUN: not grim-opt %s --pass-pipeline='builtin.module(bcr-tile{cache-bytes=10})' 2>&1 | %FileCheck %s --check-prefix=BAD

// BAD: error: pass 'bcr-tile': cache-bytes must be at least 1024, got 10

// Checks that bcr-tile gives a long-N product the largest tile of whole
// register chunks whose strip output tile and block activation panel fit in
// the 256 KiB budget ((32 + 32) x 1024 x 4 bytes), leaves a product whose N
// fits untiled, and that the lowering walks a matrix tile-major: one
// parallel loop over (tile, strip) pairs, 2 full tiles times the strips
// (item / strips is the tile, item mod strips the strip), then a second
// parallel loop over the strips for the 2100 mod 1024 = 52 columns left
// over (starting at column 2048).

// CHECK-LABEL: func.func @conv_like
// CHECK: "bcr.spmm"{{.*}}tile_n = 1024 : i64
// CHECK: "bcr.spmm"
// CHECK-NOT: tile_n
// CHECK-SAME: memref<32x16xf32>
// FORCED-LABEL: func.func @conv_like
// FORCED: "bcr.spmm"{{.*}}tile_n = 48 : i64
// LOOPS-LABEL: func.func @conv_like
// LOOPS: %[[STRIPS:.*]] = arith.subi
// LOOPS: %[[ITEMS:.*]] = arith.muli %[[STRIPS]], %c2
// LOOPS: scf.for %[[I:.*]] = %{{.*}} to %[[ITEMS]] step
// LOOPS: arith.divui %[[I]], %[[STRIPS]]
// LOOPS: arith.remui %[[I]], %[[STRIPS]]
// LOOPS: arith.constant 1024 : index
// LOOPS: scf.for {{.*}} iter_args
// LOOPS: vector.fma
// LOOPS: } {grim.parallel}
// LOOPS: arith.constant 2048 : index
// LOOPS: } {grim.parallel}
func.func @conv_like(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<64x2100xf32>, %c: memref<64x2100xf32>, %x2: memref<64x16xf32>, %c2: memref<32x16xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 32 : i64, block_cols = 32 : i64, vector_width = 8 : i64, vectors = 2 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64x2100xf32>, memref<64x2100xf32>) -> ()
  "bcr.spmm"(%s, %b, %m, %v, %x2, %c2) {block_rows = 32 : i64, block_cols = 32 : i64, vector_width = 8 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<64x16xf32>, memref<32x16xf32>) -> ()
  return
}

// -----

// Checks the panel rule: a 2304 x 784 patch matrix (7.2 MB) exceeds the
// 1 MiB panel budget (4 x cache-bytes), so the product gets the widest
// whole chunks (4 x 16 = 64 columns) whose 2304-row panel fits (1 MiB /
// (2304 x 4) = 113 -> 64), though the strip rule alone would leave N = 784
// untiled; 256 rows of the same N fit the budget and stay untiled.

// CHECK-LABEL: func.func @patch_matrix
// CHECK: "bcr.spmm"{{.*}}tile_n = 64 : i64
// CHECK: "bcr.spmm"
// CHECK-NOT: tile_n
// CHECK-SAME: memref<256x784xf32>
func.func @patch_matrix(%s: memref<?xi32>, %b: memref<?xi16>, %m: memref<?xi8>, %v: memref<?xf32>, %x: memref<2304x784xf32>, %c: memref<256x784xf32>, %x2: memref<256x784xf32>) {
  "bcr.spmm"(%s, %b, %m, %v, %x, %c) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 16 : i64, vectors = 4 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<2304x784xf32>, memref<256x784xf32>) -> ()
  "bcr.spmm"(%s, %b, %m, %v, %x2, %c) {block_rows = 8 : i64, block_cols = 16 : i64, vector_width = 16 : i64, vectors = 4 : i64} : (memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<256x784xf32>, memref<256x784xf32>) -> ()
  return
}

// -----

// Checks the dense blocking of vgg16.conv3_1 as a GEMM (256 x 1152 by
// 1152 x 3136, 4 x 24 register tile): K in blocks of 256, N in tiles of
// 240 (256 KiB / (256 x 4 bytes) = 256, rounded down to whole 24-column
// chunks); with 14 N tiles the work items are N tiles over all 256 rows.
// The lowering runs the 14 items in parallel (the last one 16 columns wide),
// each packing its activation block per K block into a cache-line aligned
// buffer (10 chunks of 24 columns x 256 rows) and running every panel's
// 4 x 24 register tile over the block.

// CHECK-LABEL: func.func @dense_conv
// CHECK: "bcr.gemm"{{.*}}tile_k = 256 : i64, tile_m = 256 : i64, tile_n = 240 : i64
// LOOPS-LABEL: func.func @dense_conv
// LOOPS: %[[PACK:.*]] = memref.alloca() {alignment = 64 : i64} : memref<61440xf32>
// LOOPS: %[[ITEMS:.*]] = arith.constant 14 : index
// LOOPS: scf.for %[[ITEM:.*]] = %{{.*}} to %[[ITEMS]]
// LOOPS: scf.if
// LOOPS: %[[KB:.*]] = arith.constant 256 : index
// LOOPS: scf.for %[[K0:.*]] = %{{.*}} to %{{.*}} step %[[KB]]
// LOOPS: %[[KEND:.*]] = arith.minui
// LOOPS: vector.store {{.*}}, %[[PACK]]
// LOOPS: scf.for %[[P:.*]] =
// LOOPS: scf.for {{.*}} = %[[K0]] to %[[KEND]] step {{.*}} iter_args
// LOOPS-COUNT-12: vector.fma
// LOOPS: } {grim.parallel}
func.func @dense_conv(%blob: memref<?xi8>, %x: memref<1152x3136xf32>, %c: memref<256x3136xf32>) {
  %w = "bcr.dense"(%blob) {value = dense<1.000000e+00> : tensor<256x1152xf32>, name = "w", slot = 0 : i64, layout = "row_panels", panel_rows = 4 : i64} : (memref<?xi8>) -> memref<?xf32>
  "bcr.gemm"(%w, %x, %c) {register_tile = 4 : i64, vector_width = 8 : i64, vectors = 3 : i64} : (memref<?xf32>, memref<1152x3136xf32>, memref<256x3136xf32>) -> ()
  return
}
