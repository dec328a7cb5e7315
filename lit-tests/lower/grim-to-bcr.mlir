// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-plan-memory,lower-grim-to-bcr)' | %FileCheck %s
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-plan-memory,lower-grim-to-bcr{block=4x8 order=grouped})' | %FileCheck %s --check-prefix=OPTS
// RUN: grim-opt %s --split-input-file --pass-pipeline='builtin.module(graph-profile-layers,graph-plan-memory,lower-grim-to-bcr)' | %FileCheck %s --check-prefix=PROFILE

// Checks that a one-row gemm with a bias becomes bcr.packed + bcr.spmv into
// an output initialised from the bias, on the caller-buffer ABI, with no
// grim op left: the input is read in place and the returned relu writes
// straight into the output buffer (no copies of caller buffers).

// CHECK-LABEL: func.func @mlp
// CHECK-SAME: (%{{.*}}: !llvm.ptr, %[[BLOB:.*]]: memref<?xi8>, %[[SCRATCH:.*]]: memref<?xi8>, %[[IN:.*]]: memref<1x32xf32>, %[[OUT:.*]]: memref<1x16xf32>)
// CHECK-SAME: grim.num_slots = 5 : i64, grim.scratch_bytes = 64 : i64, llvm.emit_c_interface
// CHECK-NOT: memref.copy %[[IN]]
// CHECK: %[[W:.*]]:4 = "bcr.packed"(%[[BLOB]]) {block_cols = 16 : i64, block_rows = 8 : i64, cols = 32 : i64, layout = "col_panels", name = "fc1.weight", order = "natural", rows = 16 : i64, slot = 0 : i64, value = dense<{{.*}}> : tensor<{{.*}}>}
// CHECK: %[[BIAS:.*]] = "bcr.dense"(%[[BLOB]]) {name = "fc1.bias", slot = 4 : i64, value = dense<{{.*}}> : tensor<{{.*}}>} : (memref<?xi8>) -> memref<16xf32>
// CHECK: %[[X:.*]] = memref.reinterpret_cast %[[IN]] {{.*}} to memref<32xf32>
// CHECK: %[[Y:.*]] = memref.view %[[SCRATCH]]{{.*}} to memref<16xf32>
// CHECK: memref.copy %[[BIAS]], %[[Y]]
// CHECK: "bcr.spmv"(%[[W]]#0, %[[W]]#1, %[[W]]#2, %[[W]]#3, %[[X]], %[[Y]]) {block_cols = 16 : i64, block_rows = 8 : i64}
// CHECK: %[[R:.*]] = memref.reinterpret_cast %[[OUT]] {{.*}} to memref<16xf32>
// CHECK: scf.for
// CHECK: arith.maximumf
// CHECK: memref.store %{{.*}}, %[[R]]
// CHECK-NOT: memref.copy
// CHECK-NOT: grim.weight
// CHECK-NOT: grim.gemm
// CHECK-NOT: grim.relu
// CHECK: return

// With profile=1, each layer's code is bracketed by runtime calls with the
// layer's id, the layers' names (location name, else op#id) are listed on
// the function, and the runtime functions are declared.
// PROFILE: func.func private @grim_profile_end(!llvm.ptr, i64)
// PROFILE: func.func private @grim_profile_begin(!llvm.ptr, i64)
// PROFILE-LABEL: func.func @mlp(
// PROFILE-SAME: %[[CTX:[^:]*]]: !llvm.ptr
// PROFILE-SAME: grim.layers = ["fc1", "relu#1"]
// PROFILE: %[[ID0:.*]] = arith.constant 0 : i64
// PROFILE-NEXT: call @grim_profile_begin(%[[CTX]], %[[ID0]])
// PROFILE: "bcr.spmv"
// PROFILE: call @grim_profile_end(%[[CTX]], %{{.*}})
// PROFILE: %[[ID1:.*]] = arith.constant 1 : i64
// PROFILE-NEXT: call @grim_profile_begin(%[[CTX]], %[[ID1]])
// PROFILE: arith.maximumf
// PROFILE: call @grim_profile_end(%[[CTX]], %{{.*}})
// PROFILE-NEXT: return

// OPTS-LABEL: func.func @mlp
// OPTS: "bcr.packed"{{.*}}block_cols = 8 : i64, block_rows = 4 : i64{{.*}}order = "grouped"
// OPTS: "bcr.spmv"{{.*}}{block_cols = 8 : i64, block_rows = 4 : i64}
func.func @mlp(%x: tensor<1x32xf32>) -> tensor<1x16xf32> {
  %w = "grim.constant"() {name = "fc1.weight", value = dense<5.000000e-01> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %b = "grim.constant"() {name = "fc1.bias", value = dense<5.000000e-01> : tensor<16xf32>} : () -> tensor<16xf32>
  %y = "grim.gemm"(%x, %w, %b) {trans_b, operandSegmentSizes = array<i32: 1, 1, 1, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>, tensor<16xf32>) -> tensor<1x16xf32> loc("fc1")
  %r = "grim.relu"(%y) : (tensor<1x16xf32>) -> tensor<1x16xf32>
  return %r : tensor<1x16xf32>
}

// -----

// Checks that a gemm with N > 1 rows becomes bcr.spmm on the transposed
// input [K, N] and accumulator [M, N], and that the gemm's own block
// attributes win over the pass option.

// CHECK-LABEL: func.func @batch
// CHECK-SAME: grim.num_slots = 4 : i64, grim.scratch_bytes = 768 : i64
// CHECK: %[[W:.*]]:4 = "bcr.packed"{{.*}}block_cols = 8 : i64, block_rows = 2 : i64{{.*}}order = "natural"
// CHECK: %[[XT:.*]] = memref.view {{.*}} to memref<32x4xf32>
// CHECK: %[[ACC:.*]] = memref.view {{.*}} to memref<16x4xf32>
// CHECK: "bcr.spmm"(%[[W]]#0, %[[W]]#1, %[[W]]#2, %[[W]]#3, %[[XT]], %[[ACC]]) {block_cols = 8 : i64, block_rows = 2 : i64}
// CHECK: memref.load %[[ACC]]
// CHECK-NOT: grim.

// OPTS-LABEL: func.func @batch
// OPTS: "bcr.packed"{{.*}}block_cols = 8 : i64, block_rows = 2 : i64{{.*}}order = "grouped"
// OPTS: "bcr.spmm"{{.*}}{block_cols = 8 : i64, block_rows = 2 : i64}
func.func @batch(%x: tensor<4x32xf32>) -> tensor<4x16xf32> {
  %w = "grim.constant"() {name = "fc.weight", value = dense<5.000000e-01> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %y = "grim.gemm"(%x, %w) {trans_b, block_rows = 2 : i64, block_cols = 8 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<4x32xf32>, tensor<16x32xf32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

// Checks that two gemms on one weight share one bcr.packed (4 slots), and
// that grim.add reads both products from their scratch buffers.

// CHECK-LABEL: func.func @shared
// CHECK-SAME: grim.num_slots = 4 : i64
// CHECK: %[[W:.*]]:4 = "bcr.packed"
// CHECK-NOT: "bcr.packed"
// CHECK: "bcr.spmv"(%[[W]]#0,
// CHECK: "bcr.spmv"(%[[W]]#0,
// CHECK: scf.for
// CHECK: arith.addf
// CHECK-NOT: grim.
func.func @shared(%x: tensor<1x32xf32>) -> tensor<1x16xf32> {
  %w = "grim.constant"() {name = "w", value = dense<5.000000e-01> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %a = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>) -> tensor<1x16xf32>
  %b = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>) -> tensor<1x16xf32>
  %s = "grim.add"(%a, %b) : (tensor<1x16xf32>, tensor<1x16xf32>) -> tensor<1x16xf32>
  return %s : tensor<1x16xf32>
}

// -----

// Checks that a broadcast add reads a grim.constant as a bcr.dense blob slot
// (padded to the result's rank), that reshape is free (the transpose reads
// the add's bytes at the same offset), and that the tiled transpose swaps
// indices, writing the returned value straight into the output buffer.

// CHECK-LABEL: func.func @elementwise
// CHECK-SAME: %[[OUT:[^:]*]]: memref<4x6xf32>)
// CHECK-SAME: grim.num_slots = 1 : i64, grim.scratch_bytes = 128 : i64
// CHECK: %[[C:.*]] = "bcr.dense"(%{{.*}}) {name = "elementwise.const0", slot = 0 : i64, value = dense<{{.*}}> : tensor<{{.*}}>} : (memref<?xi8>) -> memref<1x1x4xf32>
// CHECK: %[[SUM_OFFSET:.*]] = arith.constant 0 : index
// CHECK: memref.view %{{.*}}[%[[SUM_OFFSET]]][] : memref<?xi8> to memref<2x3x4xf32>
// CHECK: memref.load %[[C]]
// CHECK: arith.addf
// CHECK: %[[RESHAPED_OFFSET:.*]] = arith.constant 0 : index
// CHECK: %[[R:.*]] = memref.view %{{.*}}[%[[RESHAPED_OFFSET]]][] : memref<?xi8> to memref<6x4xf32>
// CHECK: scf.for
// CHECK: scf.for
// CHECK: arith.minui
// CHECK: scf.for %[[J:.*]] =
// CHECK: scf.for %[[I:.*]] =
// CHECK: memref.load %[[R]][%[[I]], %[[J]]]
// CHECK: memref.store %{{.*}}, %[[OUT]][%[[J]], %[[I]]]
// CHECK-NOT: grim.
func.func @elementwise(%x: tensor<2x3x4xf32>) -> tensor<4x6xf32> {
  %c = "grim.constant"() {value = dense<1.0> : tensor<4xf32>} : () -> tensor<4xf32>
  %s = "grim.add"(%x, %c) : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  %r = "grim.reshape"(%s) : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
  %t = "grim.transpose"(%r) : (tensor<6x4xf32>) -> tensor<4x6xf32>
  return %t : tensor<4x6xf32>
}

// -----

// Checks that transposes around a gemm with N > 1 cancel against the ones
// the gemm needs: bcr.spmm reads the [K, N] input and accumulates straight
// into the [M, N] output buffer; no transpose loop and no scratch is left.

// CHECK-LABEL: func.func @kn_layout
// CHECK-SAME: %[[IN:[^:]*]]: memref<32x6xf32>, %[[OUT:[^:]*]]: memref<16x6xf32>)
// CHECK-SAME: grim.scratch_bytes = 64 : i64
// CHECK: scf.for
// CHECK: memref.store %{{.*}}, %[[OUT]]
// CHECK: "bcr.spmm"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[IN]], %[[OUT]])
// CHECK-NEXT: return
func.func @kn_layout(%x: tensor<32x6xf32>) -> tensor<16x6xf32> {
  %w = "grim.constant"() {name = "w", value = dense<5.000000e-01> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %a = "grim.transpose"(%x) : (tensor<32x6xf32>) -> tensor<6x32xf32>
  %y = "grim.gemm"(%a, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<6x32xf32>, tensor<16x32xf32>) -> tensor<6x16xf32>
  %t = "grim.transpose"(%y) : (tensor<6x16xf32>) -> tensor<16x6xf32>
  return %t : tensor<16x6xf32>
}

// -----

// Checks that a gemm marked `kernel = "dense"` becomes bcr.gemm on a
// bcr.dense weight in row panels (one slot, no BCRC arrays), for N > 1 on
// the [K, N] input and for N = 1 on the vector, each with its own copy of
// the weight (their panel heights differ), and that a per-layer vector
// width from the LR file is carried onto the product.

// CHECK-LABEL: func.func @dense
// CHECK-SAME: grim.num_slots = 2 : i64
// CHECK-NOT: bcr.packed
// CHECK: %[[W:.*]] = "bcr.dense"(%{{.*}}) {layout = "row_panels", name = "w", rows = 16 : i64, slot = 0 : i64, value = dense<{{.*}}> : tensor<16x32xf32>} : (memref<?xi8>) -> memref<?xf32>
// CHECK: "bcr.gemm"(%[[W]], %{{.*}}, %{{.*}}) {vector_width = 4 : i64} : (memref<?xf32>, memref<32x6xf32>, memref<16x6xf32>) -> ()
// CHECK: %[[V:.*]] = "bcr.dense"(%{{.*}}) {layout = "row_panels", name = "w", rows = 16 : i64, slot = 1 : i64, value = dense<{{.*}}> : tensor<16x32xf32>}
// CHECK: "bcr.gemm"(%[[V]], %{{.*}}, %{{.*}}) : (memref<?xf32>, memref<32xf32>, memref<16xf32>) -> ()
// CHECK-NOT: grim.
func.func @dense(%x: tensor<32x6xf32>, %v: tensor<1x32xf32>) -> (tensor<16x6xf32>, tensor<1x16xf32>) {
  %w = "grim.constant"() {name = "w", value = dense<5.000000e-01> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %a = "grim.transpose"(%x) : (tensor<32x6xf32>) -> tensor<6x32xf32>
  %y = "grim.gemm"(%a, %w) {trans_b, kernel = "dense", vector_width = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<6x32xf32>, tensor<16x32xf32>) -> tensor<6x16xf32>
  %t = "grim.transpose"(%y) : (tensor<6x16xf32>) -> tensor<16x6xf32>
  %z = "grim.gemm"(%v, %w) {trans_b, kernel = "dense", operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>) -> tensor<1x16xf32>
  return %t, %z : tensor<16x6xf32>, tensor<1x16xf32>
}

// -----

// Checks a conv in its GEMM view: the BCR kernels multiply an explicit
// patch matrix (bcr.im2col into scratch, [C*kh*kw, Ho*Wo] = [18, 20]) into
// the output image viewed as [M, Ho*Wo]; the dense kernel reads the image
// itself (implicit im2col on the bcr.gemm); a pointwise conv multiplies
// the image as the [C, H*W] matrix it is, with no patches at all.

// CHECK-LABEL: func.func @convs
// CHECK: "bcr.packed"{{.*}}cols = 18 : i64{{.*}}name = "w3"{{.*}}rows = 4 : i64
// CHECK: %[[Y:.*]] = memref.reinterpret_cast {{.*}} to memref<4x20xf32>
// CHECK: %[[X:.*]] = memref.reinterpret_cast {{.*}} to memref<2x4x5xf32>
// CHECK: %[[P:.*]] = memref.view {{.*}} to memref<18x20xf32>
// CHECK: "bcr.im2col"(%[[X]], %[[P]]) {im2col = array<i64: 3, 3, 1, 1, 1, 1, 1, 1, 1, 1>}
// CHECK: "bcr.spmm"({{.*}}, %[[P]], %[[Y]])
// CHECK: %[[WD:.*]] = "bcr.dense"{{.*}}layout = "row_panels", name = "w3"
// CHECK: "bcr.gemm"(%[[WD]], %{{.*}}, %{{.*}}) {im2col = array<i64: 3, 3, 1, 1, 1, 1, 1, 1, 1, 1>} : (memref<?xf32>, memref<2x4x5xf32>, memref<4x20xf32>)
// CHECK-NOT: bcr.im2col
// CHECK: "bcr.spmm"({{.*}}) {{.*}} : ({{.*}}, memref<2x20xf32>, memref<3x20xf32>)
// CHECK-NOT: grim.
func.func @convs(%x: tensor<1x2x4x5xf32>) -> (tensor<1x4x4x5xf32>, tensor<1x4x4x5xf32>, tensor<1x3x4x5xf32>) {
  %w = "grim.constant"() {name = "w3", value = dense<5.000000e-01> : tensor<4x2x3x3xf32>} : () -> tensor<4x2x3x3xf32>
  %w1 = "grim.constant"() {name = "w1", value = dense<5.000000e-01> : tensor<3x2x1x1xf32>} : () -> tensor<3x2x1x1xf32>
  %a = "grim.conv2d"(%x, %w) {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x2x4x5xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x4x5xf32>
  %b = "grim.conv2d"(%x, %w) {kernel = "dense", strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x2x4x5xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x4x5xf32>
  %c = "grim.conv2d"(%x, %w1) {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x2x4x5xf32>, tensor<3x2x1x1xf32>) -> tensor<1x3x4x5xf32>
  return %a, %b, %c : tensor<1x4x4x5xf32>, tensor<1x4x4x5xf32>, tensor<1x3x4x5xf32>
}

// -----

// Checks that a BCR conv whose output rows are wide (50 columns, stride 1)
// reads its image in place: a bcr.im2col of a 1x1 kernel with the conv's
// pads writes the zero-padded image [2, 5, 52] (no 18 x 150 patch matrix),
// and bcr.spmm reads it with the conv's geometry minus the pads.

// CHECK-LABEL: func.func @wide
// CHECK: "bcr.im2col"(%{{.*}}, %{{.*}}) {im2col = array<i64: 1, 1, 1, 1, 1, 1, 1, 1, 1, 1>} : (memref<2x3x50xf32>, memref<2x260xf32>)
// CHECK: "bcr.spmm"({{.*}}) {block_cols = 16 : i64, block_rows = 8 : i64, im2col = array<i64: 3, 3, 1, 1, 0, 0, 0, 0, 1, 1>} : ({{.*}}, memref<2x5x52xf32>, memref<4x150xf32>)
// CHECK-NOT: memref<18x150xf32>
func.func @wide(%x: tensor<1x2x3x50xf32>) -> tensor<1x4x3x50xf32> {
  %w = "grim.constant"() {name = "w", value = dense<5.000000e-01> : tensor<4x2x3x3xf32>} : () -> tensor<4x2x3x3xf32>
  %y = "grim.conv2d"(%x, %w) {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x2x3x50xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x3x50xf32>
  return %y : tensor<1x4x3x50xf32>
}

// -----

// Checks that a conv with a residual but no bias reads its residual from
// operand #2 (the segment sizes say where it is; it used to be looked up
// at operand #3 and fail): the output starts as the residual (%r), then
// the product accumulates into it.

// CHECK-LABEL: func.func @residual_no_bias
// CHECK-SAME: %[[X:[a-z0-9]+]]: memref<1x2x3x3xf32>, %[[R:[a-z0-9]+]]: memref<1x2x3x3xf32>, %[[Y:[a-z0-9]+]]: memref<1x2x3x3xf32>
// CHECK: %[[YV:.*]] = memref.reinterpret_cast %[[Y]]
// CHECK: %[[RV:.*]] = memref.reinterpret_cast %[[R]]
// CHECK: memref.load %[[RV]]
// CHECK: memref.store {{.*}}, %[[YV]]
// CHECK: "bcr.spmm"({{.*}}, %[[YV]])
func.func @residual_no_bias(%x: tensor<1x2x3x3xf32>, %r: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> {
  %w = "grim.constant"() {name = "w", value = dense<5.000000e-01> : tensor<2x2x1x1xf32>} : () -> tensor<2x2x1x1xf32>
  %y = "grim.conv2d"(%x, %w, %r) {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 1>} : (tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  return %y : tensor<1x2x3x3xf32>
}

// -----

// Checks that grim.pool becomes a loop nest over the output with the
// window inside: positions outside the input are skipped (scf.if with the
// max's identity, -inf), the reduction is arith.maximumf, and an average
// divides by the positions it counted (with count_include_pad, those
// inside the padded extent).

// CHECK-LABEL: func.func @pools
// CHECK: arith.constant 0xFF800000 : f32
// CHECK: scf.for
// CHECK: arith.cmpi sge
// CHECK: arith.cmpi slt
// CHECK: scf.if
// CHECK: memref.load
// CHECK: arith.maximumf
// CHECK: memref.store
// CHECK: scf.if
// CHECK: arith.addf
// CHECK: arith.select
// CHECK: arith.divf
// CHECK: memref.store
// CHECK-NOT: grim.
// CHECK: return
func.func @pools(%x: tensor<1x2x5x5xf32>) -> (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) {
  %p = "grim.pool"(%x) {kind = "max", kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>} : (tensor<1x2x5x5xf32>) -> tensor<1x2x3x3xf32>
  %a = "grim.pool"(%x) {kind = "average", kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, count_include_pad} : (tensor<1x2x5x5xf32>) -> tensor<1x2x3x3xf32>
  return %p, %a : tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>
}

// -----

// grim.max and grim.min (ONNX Max/Min, and a Clip whose bounds arrive at run
// time) are loop nests over the result with the NaN-propagating
// arith.maximumf / arith.minimumf, the scalar bound read at index 0.

// CHECK-LABEL: func.func @runtime_clip
// CHECK: scf.for
// CHECK: memref.load %{{.*}}[%[[ZERO:.*]], %[[ZERO]]] : memref<1x1xf32>
// CHECK: arith.maximumf
// CHECK: memref.store
// CHECK: scf.for
// CHECK: arith.minimumf
// CHECK: memref.store
// CHECK-NOT: grim.
// CHECK: return
func.func @runtime_clip(%x: tensor<2x3xf32>, %lo: tensor<1xf32>, %hi: tensor<1xf32>) -> tensor<2x3xf32> {
  %a = "grim.max"(%x, %lo) : (tensor<2x3xf32>, tensor<1xf32>) -> tensor<2x3xf32>
  %b = "grim.min"(%a, %hi) : (tensor<2x3xf32>, tensor<1xf32>) -> tensor<2x3xf32>
  return %b : tensor<2x3xf32>
}

// -----

// A gemm whose weight is a function argument keeps its ONNX attributes:
// B [K=4, M=3] (no trans_b) is packed transposed and scaled by alpha into
// its first temporary (bcr.pack_panels), trans_a reads A [K, N] in place
// (no input transpose), the accumulator starts from beta * C broadcast
// along N, and the dense bcr.gemm multiplies the packed panels.

// CHECK-LABEL: func.func @runtime_weight_gemm
// CHECK: %[[PANELS:.*]] = "bcr.pack_panels"(%{{.*}}, %{{.*}}) {scale = 7.500000e-01 : f32, transposed} : (memref<4x3xf32>, memref<?xf32>) -> memref<?xf32>
// CHECK: scf.for
// CHECK: arith.mulf %{{.*}}, %{{.*}} : f32
// CHECK: memref.store
// CHECK: } {grim.parallel}
// CHECK: "bcr.gemm"(%[[PANELS]], %arg3, %{{.*}}) : (memref<?xf32>, memref<4x2xf32>, memref<3x2xf32>) -> ()
// CHECK-NOT: grim.
// CHECK: return
func.func @runtime_weight_gemm(%a: tensor<4x2xf32>, %b: tensor<4x3xf32>, %c: tensor<1x3xf32>) -> tensor<2x3xf32> {
  %y = "grim.gemm"(%a, %b, %c) {alpha = 7.500000e-01 : f32, beta = -2.000000e+00 : f32, trans_a, operandSegmentSizes = array<i32: 1, 1, 1, 0>} : (tensor<4x2xf32>, tensor<4x3xf32>, tensor<1x3xf32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}

// -----

// grim.permute reads each output element at the permuted input index
// (output dim d is input dim perm[d]); grim.matmul broadcasts the batch
// dim of its [1, 3, 2] operand (index 0) and sums over K in a register.

// CHECK-LABEL: func.func @permute_then_matmul
// CHECK: scf.for %[[A:.*]] =
// CHECK: scf.for %[[B:.*]] =
// CHECK: scf.for %[[C:.*]] =
// CHECK: memref.load %arg3[%[[A]], %[[C]], %[[B]]] : memref<2x2x3xf32>
// CHECK: memref.store
// CHECK: scf.for %[[N:.*]] =
// CHECK: scf.for %[[I:.*]] =
// CHECK: scf.for %[[J:.*]] =
// CHECK: scf.for %[[K:.*]] = {{.*}} iter_args
// CHECK: memref.load %{{.*}}[%[[N]], %[[I]], %[[K]]] : memref<2x3x2xf32>
// CHECK: memref.load %arg4[%{{.*}}, %[[K]], %[[J]]] : memref<1x2x4xf32>
// CHECK: math.fma
// CHECK: memref.store %{{.*}}, %arg5[%[[N]], %[[I]], %[[J]]]
// CHECK-NOT: grim.
// CHECK: return
func.func @permute_then_matmul(%x: tensor<2x2x3xf32>, %w: tensor<1x2x4xf32>) -> tensor<2x3x4xf32> {
  %p = "grim.permute"(%x) {perm = array<i64: 0, 2, 1>} : (tensor<2x2x3xf32>) -> tensor<2x3x2xf32>
  %y = "grim.matmul"(%p, %w) : (tensor<2x3x2xf32>, tensor<1x2x4xf32>) -> tensor<2x3x4xf32>
  return %y : tensor<2x3x4xf32>
}

// -----

// A depthwise conv (group = C) is a direct convolution: a parallel loop
// over output channels, each reading its group's one input channel; the
// output row splits into a left border (pads 1) that checks each tap's
// column and an interior that checks only the kernel row (no right
// padding, so no right border), and the fused clip is
// applied as each value is stored. No bcr product, no scratch.

// CHECK-LABEL: func.func @depthwise
// CHECK-NOT: bcr.gemm
// CHECK: scf.for %{{.*}} = %c0 to %c1 step
// CHECK: scf.for %[[CH:.*]] = %{{.*}} to %c4 step
// CHECK: arith.divui %[[CH]]
// CHECK: scf.for %[[OH:.*]] =
// CHECK: scf.for {{.*}} = %c0{{.*}} to %c1
// CHECK: scf.if
// CHECK: scf.if
// CHECK: math.fma
// CHECK: arith.maximumf
// CHECK: arith.minimumf
// CHECK: memref.store
// CHECK: scf.for {{.*}} = %c1{{.*}} to %c5
// CHECK: scf.if
// CHECK-NOT: scf.if
// CHECK: math.fma
// CHECK: arith.maximumf
// CHECK-NOT: scf.for
// CHECK: } {grim.parallel}
// CHECK-NOT: bcr.
// CHECK: return
func.func @depthwise(%x: tensor<1x4x6x6xf32>) -> tensor<1x4x5x5xf32> {
  %w = "grim.constant"() {value = dense<1.000000e+00> : tensor<4x1x3x3xf32>} : () -> tensor<4x1x3x3xf32>
  %y = "grim.conv2d"(%x, %w) {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 0, 0>, dilations = array<i64: 1, 1>, group = 4 : i64, activation = "clip", activation_params = array<f32: 0.0, 6.0>, kernel = "dense", operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x4x6x6xf32>, tensor<4x1x3x3xf32>) -> tensor<1x4x5x5xf32>
  return %y : tensor<1x4x5x5xf32>
}

// -----

// With the target's vectors (avx2: 8 lanes), a stride-2 depthwise row of 19
// output columns runs its interior 8 columns at a time: per tap two vector
// loads of the input row, a shuffle keeping the even lanes and one vector
// fma with the broadcast weight; the clip on the vector, one vector store.
// Columns 1..17 are two vectors; column 17 stays a scalar interior column
// and 18 the right border.

// CHECK-LABEL: func.func @depthwise_vectors
// CHECK: scf.for %{{.*}} = %c1{{.*}} to %c17{{.*}} step %c8
// CHECK: vector.broadcast %{{.*}} : f32 to vector<8xf32>
// CHECK: scf.if %{{.*}} -> (vector<8xf32>)
// CHECK: vector.load %{{.*}} : memref<1x2x4x37xf32{{.*}}>, vector<8xf32>
// CHECK: vector.load
// CHECK: vector.shuffle %{{.*}} [0, 2, 4, 6, 8, 10, 12, 14] : vector<8xf32>, vector<8xf32>
// CHECK: vector.fma %{{.*}} : vector<8xf32>
// CHECK: arith.maximumf %{{.*}} : vector<8xf32>
// CHECK: arith.minimumf %{{.*}} : vector<8xf32>
// CHECK: vector.store
// CHECK: scf.for {{.*}} = %c0{{.*}} to %c1
// CHECK: scf.for {{.*}} = %c17{{.*}} to %c18
// CHECK: scf.for {{.*}} = %c18{{.*}} to %c19
module attributes {grim.target = "avx2"} {
func.func @depthwise_vectors(%x: tensor<1x2x4x37xf32>) -> tensor<1x2x2x19xf32> {
  %w = "grim.constant"() {value = dense<1.000000e+00> : tensor<2x1x3x3xf32>} : () -> tensor<2x1x3x3xf32>
  %y = "grim.conv2d"(%x, %w) {strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, group = 2 : i64, activation = "clip", activation_params = array<f32: 0.0, 6.0>, kernel = "dense", operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x2x4x37xf32>, tensor<2x1x3x3xf32>) -> tensor<1x2x2x19xf32>
  return %y : tensor<1x2x2x19xf32>
}
}

// -----

// A max pool with the target's vectors: ResNet's 3x3 stride-2 pad-1 window
// over a row of 37 gives 19 columns; 1..17 are two vectors of 8, each
// window row (checked once) two loads, the even-lane shuffle and a vector
// maximum from -inf; column 0 (the padded border) and 17..19 stay scalar.

// CHECK-LABEL: func.func @maxpool_vectors
// CHECK: scf.for {{.*}} = %c0{{.*}} to %c1
// CHECK: scf.for %{{.*}} = %c1{{.*}} to %c17{{.*}} step %c8
// CHECK: arith.constant 0xFF800000 : f32
// CHECK: vector.broadcast %{{.*}} : f32 to vector<8xf32>
// CHECK: scf.if %{{.*}} -> (vector<8xf32>)
// CHECK: vector.load
// CHECK: vector.load
// CHECK: vector.shuffle %{{.*}} [0, 2, 4, 6, 8, 10, 12, 14]
// CHECK: arith.maximumf %{{.*}} : vector<8xf32>
// CHECK: vector.store
// CHECK: scf.for {{.*}} = %c17{{.*}} to %c19
module attributes {grim.target = "avx2"} {
func.func @maxpool_vectors(%x: tensor<1x1x4x37xf32>) -> tensor<1x1x2x19xf32> {
  %y = "grim.pool"(%x) {kind = "max", kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>} : (tensor<1x1x4x37xf32>) -> tensor<1x1x2x19xf32>
  return %y : tensor<1x1x2x19xf32>
}
}

// -----

// grim.pad to a loop nest over the output: reflect mirrors each position p
// (the output index minus the front pad) as min(|p|, 2(n-1) - |p|); wrap
// takes it modulo the dim; constant reads only inside the input.

// CHECK-LABEL: func.func @pads
// CHECK: scf.for
// CHECK: arith.maxsi
// CHECK: arith.minsi
// CHECK: memref.load
// CHECK: scf.for
// CHECK: arith.remsi
// CHECK: arith.remsi
// CHECK: memref.load
// CHECK: scf.for
// CHECK: scf.if
// CHECK: memref.load
// CHECK: } else {
// CHECK: arith.constant 7.500000e-01 : f32
func.func @pads(%x: tensor<2x5xf32>) -> (tensor<2x8xf32>, tensor<2x12xf32>, tensor<3x6xf32>) {
  %r = "grim.pad"(%x) {mode = "reflect", pads = array<i64: 0, 1, 0, 2>, value = 0.0 : f32} : (tensor<2x5xf32>) -> tensor<2x8xf32>
  %w = "grim.pad"(%x) {mode = "wrap", pads = array<i64: 0, 7, 0, 0>, value = 0.0 : f32} : (tensor<2x5xf32>) -> tensor<2x12xf32>
  %c = "grim.pad"(%x) {mode = "constant", pads = array<i64: 1, 0, 0, 1>, value = 0.75 : f32} : (tensor<2x5xf32>) -> tensor<3x6xf32>
  return %r, %w, %c : tensor<2x8xf32>, tensor<2x12xf32>, tensor<3x6xf32>
}

// -----

// grim.softmax over dim 1 of [2, 5, 3] walks [outer = 2, reduce = 5,
// inner = 3]: per (outer, inner) the maximum, the sum of exp(x - max) in
// a register, then each exp(x - max) / sum.

// CHECK-LABEL: func.func @softmax
// CHECK: scf.for %[[O:.*]] = %{{.*}} to %c2
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %c3
// CHECK: arith.constant 0xFF800000 : f32
// CHECK: scf.for {{.*}} to %c5 {{.*}} iter_args
// CHECK: arith.maximumf
// CHECK: scf.for {{.*}} to %c5{{.*}} iter_args
// CHECK: arith.subf
// CHECK: math.exp
// CHECK: arith.addf
// CHECK: scf.for {{.*}} to %c5{{.*}} step
// CHECK: math.exp
// CHECK: arith.divf
// CHECK: memref.store %{{.*}}, %{{.*}}[%[[O]], %{{.*}}, %[[I]]]
// CHECK-NOT: grim.
// CHECK: return
func.func @softmax(%x: tensor<2x5x3xf32>) -> tensor<2x5x3xf32> {
  %y = "grim.softmax"(%x) {axis = 1 : i64, axis_end = 2 : i64} : (tensor<2x5x3xf32>) -> tensor<2x5x3xf32>
  return %y : tensor<2x5x3xf32>
}

// -----

// grim.concat along dim 1 copies each operand into its rows of the result
// viewed as [outer, 3 + 2, inner]: lhs at rows 0..3, rhs offset by 3.

// CHECK-LABEL: func.func @concat
// CHECK: scf.for %[[O:.*]] = %{{.*}} to %c2
// CHECK: scf.for %[[R:.*]] = %{{.*}} to %c3
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %c4
// CHECK: %[[ROW0:.*]] = arith.addi %[[R]], %c0
// CHECK: memref.store %{{.*}}, %arg5[%[[O]], %[[ROW0]], %[[I]]] : memref<2x5x4xf32>
// CHECK: scf.for %[[O2:.*]] = %{{.*}} to %c2
// CHECK: scf.for %[[R2:.*]] = %{{.*}} to %c2
// CHECK: scf.for %[[I2:.*]] = %{{.*}} to %c4
// CHECK: %[[ROW:.*]] = arith.addi %[[R2]], %c3
// CHECK: memref.store %{{.*}}, %arg5[%[[O2]], %[[ROW]], %[[I2]]]
// CHECK: return
func.func @concat(%a: tensor<2x3x4xf32>, %b: tensor<2x2x4xf32>) -> tensor<2x5x4xf32> {
  %y = "grim.concat"(%a, %b) {axis = 1 : i64} : (tensor<2x3x4xf32>, tensor<2x2x4xf32>) -> tensor<2x5x4xf32>
  return %y : tensor<2x5x4xf32>
}

// -----

// A concat whose operands graph-plan-memory placed in their slices of the
// result: the relu and the sigmoid store into a view at its slice's offset of the arena
// (0 and 1024 bytes), and the concat copies nothing: no store between the
// sigmoid's and the tanh's.

// CHECK-LABEL: func.func @concat_in_place
// CHECK: %[[A:.*]] = memref.view %{{.*}}[%c0{{.*}}][] : memref<?xi8> to memref<256xf32>
// CHECK: arith.maximumf
// CHECK: memref.store %{{.*}}, %[[A]]
// CHECK: %[[B:.*]] = memref.view %{{.*}}[%c1024{{.*}}][] : memref<?xi8> to memref<256xf32>
// CHECK: arith.divf
// CHECK: memref.store %{{.*}}, %[[B]]
// CHECK-NOT: memref.store
// CHECK: math.tanh
func.func @concat_in_place(%x: tensor<1x4x8x8xf32>) -> tensor<1x8x8x8xf32> {
  %a = "grim.relu"(%x) : (tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  %b = "grim.sigmoid"(%x) : (tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  %c = "grim.concat"(%a, %b) {axis = 1 : i64} : (tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>) -> tensor<1x8x8x8xf32>
  %y = "grim.tanh"(%c) : (tensor<1x8x8x8xf32>) -> tensor<1x8x8x8xf32>
  return %y : tensor<1x8x8x8xf32>
}

// -----

// A GRU (linear_before_reset = 0) with W and R given at run time: X is
// transposed once, W and the two row blocks of R (R_zr, then R_h at
// element 18) are packed into row panels, the input projections of all
// three steps are one matrix product, and the time loop runs the R_zr
// product, the reset loop (sigmoid, r * h), the R_h product on r * h and
// the gate loop (sigmoid, tanh) that writes the step's row of Y. The
// gates' sigmoid and tanh are inline exp code (math.floor for the range
// reduction, the exponent bits by arith.bitcast), no libm call.

// CHECK-LABEL: func.func @gru
// CHECK-SAME: %[[Y:[a-z0-9]+]]: memref<3x1x1x3xf32>, %{{.*}}: memref<1x1x3xf32>)
// CHECK: %[[YF:.*]] = memref.reinterpret_cast %[[Y]] {{.*}} to memref<9xf32>
// CHECK: memref.store %{{.*}} : memref<2x3xf32>
// CHECK: %[[W:.*]] = "bcr.pack_panels"({{.*}}) : (memref<9x2xf32>, memref<?xf32>) -> memref<?xf32>
// CHECK: %[[RZR:.*]] = "bcr.pack_panels"({{.*}}) : (memref<6x3xf32>, memref<?xf32>) -> memref<?xf32>
// CHECK: %[[RH:.*]] = "bcr.pack_panels"({{.*}}) : (memref<3x3xf32, strided<[3, 1], offset: 18>>, memref<?xf32>) -> memref<?xf32>
// CHECK: "bcr.gemm"(%[[W]], %{{.*}}, %{{.*}}) : (memref<?xf32>, memref<2x3xf32>, memref<9x3xf32>) -> ()
// CHECK: scf.for
// CHECK: "bcr.gemm"(%[[RZR]], %{{.*}}, %{{.*}}) : (memref<?xf32>, memref<3xf32>, memref<6xf32>) -> ()
// CHECK: math.floor
// CHECK: arith.bitcast
// CHECK: arith.mulf
// CHECK: "bcr.gemm"(%[[RH]], %{{.*}}, %{{.*}}) : (memref<?xf32>, memref<3xf32>, memref<3xf32>) -> ()
// CHECK: math.floor
// CHECK: math.floor
// CHECK: memref.store %{{.*}}, %[[YF]]
// CHECK-NOT: grim.recurrent
// CHECK-NOT: math.exp
// CHECK-NOT: math.tanh
// CHECK: return

func.func @gru(%x: tensor<3x1x2xf32>, %w: tensor<1x9x2xf32>, %r: tensor<1x9x3xf32>) -> (tensor<3x1x1x3xf32>, tensor<1x1x3xf32>) {
  %y, %yh = "grim.recurrent"(%x, %w, %r) {cell = "gru", direction = "forward", hidden_size = 3 : i64, activations = ["sigmoid", "tanh"], operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0>} : (tensor<3x1x2xf32>, tensor<1x9x2xf32>, tensor<1x9x3xf32>) -> (tensor<3x1x1x3xf32>, tensor<1x1x3xf32>)
  return %y, %yh : tensor<3x1x1x3xf32>, tensor<1x1x3xf32>
}

// -----

// A bidirectional LSTM with constant weights on the BCR kernel: each
// direction's W and R is its own packed weight named after the node and
// direction; W runs bcr.spmm over both steps, R one bcr.spmv per step.

// CHECK-LABEL: func.func @lstm_bcr
// CHECK: "bcr.packed"{{.*}}name = "lstm.W.forward"{{.*}}rows = 32
// CHECK: "bcr.packed"{{.*}}layout = "col_panels", name = "lstm.R.forward"
// CHECK: "bcr.spmm"{{.*}}(memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<16x2xf32>, memref<32x2xf32>) -> ()
// CHECK: scf.for
// CHECK: "bcr.spmv"{{.*}}(memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>, memref<8xf32>, memref<32xf32>) -> ()
// CHECK: "bcr.packed"{{.*}}name = "lstm.W.reverse"
// CHECK: "bcr.packed"{{.*}}name = "lstm.R.reverse"
// CHECK: "bcr.spmm"
// CHECK: scf.for
// CHECK: "bcr.spmv"

func.func @lstm_bcr(%x: tensor<2x1x16xf32>) -> tensor<2x1x8xf32> {
  %w = "grim.constant"() {name = "w", value = dense<0.5> : tensor<2x32x16xf32>} : () -> tensor<2x32x16xf32>
  %r = "grim.constant"() {name = "r", value = dense<0.25> : tensor<2x32x8xf32>} : () -> tensor<2x32x8xf32>
  %y, %yh, %yc = "grim.recurrent"(%x, %w, %r) {cell = "lstm", direction = "bidirectional", hidden_size = 8 : i64, activations = ["sigmoid", "tanh", "tanh", "sigmoid", "tanh", "tanh"], kernel = "bcr", block_rows = 8 : i64, block_cols = 8 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0>} : (tensor<2x1x16xf32>, tensor<2x32x16xf32>, tensor<2x32x8xf32>) -> (tensor<2x2x1x8xf32>, tensor<2x1x8xf32>, tensor<2x1x8xf32>) loc("lstm")
  return %yc : tensor<2x1x8xf32>
}

// -----

// A matrix-vector product on an AVX-512 target whose blocks keep half
// their rows stores its BCR values as compact panels (each kept column's
// kept rows, expanded by the row mask as they load); on AVX2 the same
// weight keeps full-height column panels.

// CHECK-LABEL: func.func @compact
// CHECK: "bcr.packed"{{.*}}layout = "compact_panels", name = "w"
// CHECK-LABEL: func.func @full_panels
// CHECK: "bcr.packed"{{.*}}layout = "col_panels", name = "w"

module attributes {grim.target = "avx512"} {
func.func @compact(%x: tensor<1x32xf32>) -> tensor<1x16xf32> {
  %w = "grim.constant"() {name = "w", value = dense<[[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %y = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>) -> tensor<1x16xf32>
  return %y : tensor<1x16xf32>
}
}

// -----

module attributes {grim.target = "avx2"} {
func.func @full_panels(%x: tensor<1x32xf32>) -> tensor<1x16xf32> {
  %w = "grim.constant"() {name = "w", value = dense<[[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %y = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<1x32xf32>, tensor<16x32xf32>) -> tensor<1x16xf32>
  return %y : tensor<1x16xf32>
}
}

// -----

// A narrow matrix product (4 columns, as a recurrent step over a batch of
// 4) on AVX-512 reads compact panels too (bcr.spmm keeps one sum per
// column in registers); past 16 columns the weight stays row-major.

// CHECK-LABEL: func.func @compact_narrow
// CHECK: "bcr.packed"{{.*}}layout = "compact_panels", name = "w"
// CHECK: "bcr.spmm"
// CHECK-LABEL: func.func @wide_row_major
// CHECK: "bcr.packed"{{.*}}layout = "row_major", name = "w"
// CHECK: "bcr.spmm"

module attributes {grim.target = "avx512"} {
func.func @compact_narrow(%x: tensor<4x32xf32>) -> tensor<4x16xf32> {
  %w = "grim.constant"() {name = "w", value = dense<[[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %y = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<4x32xf32>, tensor<16x32xf32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}
}

// -----

module attributes {grim.target = "avx512"} {
func.func @wide_row_major(%x: tensor<32x32xf32>) -> tensor<32x16xf32> {
  %w = "grim.constant"() {name = "w", value = dense<[[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<16x32xf32>} : () -> tensor<16x32xf32>
  %y = "grim.gemm"(%x, %w) {trans_b, operandSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<32x32xf32>, tensor<16x32xf32>) -> tensor<32x16xf32>
  return %y : tensor<32x16xf32>
}
}
