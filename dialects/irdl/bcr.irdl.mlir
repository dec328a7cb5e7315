// The `bcr` dialect: loop level, on memrefs. A BCRC-packed weight is read
// from the model's weight blob through its slot table at run time, so the
// code depends on the shapes and block size only, never on the weight
// values. The values travel with the op (`value`, the graph level's weight
// attribute, usually a dense_resource) until the blob is packed from them.
// Semantic checks (ranks, shapes, block sizes) are in dialects/src/bcr.rs.
irdl.dialect @bcr {
  // The four BCRC arrays of one weight matrix (docs/lr-and-bcrc.md):
  // strips (i32), block_col (i16), masks (i8), values (f32), taken from the
  // blob's slots `slot` .. `slot + 3`.
  irdl.operation @packed {
    %blob = irdl.base "!builtin.memref"
    %strips = irdl.base "!builtin.memref"
    %block_col = irdl.base "!builtin.memref"
    %masks = irdl.base "!builtin.memref"
    %values = irdl.base "!builtin.memref"
    %name = irdl.base "#builtin.string"
    %order = irdl.base "#builtin.string"
    %slot = irdl.base "#builtin.integer"
    %rows = irdl.base "#builtin.integer"
    %cols = irdl.base "#builtin.integer"
    %block_rows = irdl.base "#builtin.integer"
    %block_cols = irdl.base "#builtin.integer"
    %value = irdl.any
    irdl.operands(blob: %blob)
    irdl.results(strips: %strips, block_col: %block_col, masks: %masks, values: %values)
    irdl.attributes { "name" = %name, "order" = %order, "slot" = %slot, "rows" = %rows, "cols" = %cols, "block_rows" = %block_rows, "block_cols" = %block_cols, "value" = %value }
  }
  // A dense f32 array (a bias, an add operand) from blob slot `slot`; with
  // `layout = "row_panels"` a dense weight matrix for `bcr.gemm`, stored in
  // panels of `panel_rows` rows, each panel K-major (docs/lr-and-bcrc.md).
  irdl.operation @dense {
    %blob = irdl.base "!builtin.memref"
    %result = irdl.base "!builtin.memref"
    %name = irdl.base "#builtin.string"
    %slot = irdl.base "#builtin.integer"
    %value = irdl.any
    irdl.operands(blob: %blob)
    irdl.results(result: %result)
    irdl.attributes { "name" = %name, "slot" = %slot, "value" = %value }
  }
  // A weight computed at run time packed into row panels for `bcr.gemm`:
  // writes W = source [M, K] (or its transpose with unit `transposed`,
  // source [K, M]) times f32 `scale` (default 1) into `buffer`, a scratch
  // of at least (M + 15) * K floats, in panels of `panel_rows` (<= 16, set
  // by bcr-lre as on bcr.dense), and returns it.
  irdl.operation @pack_panels {
    %source = irdl.base "!builtin.memref"
    %buffer = irdl.base "!builtin.memref"
    %result = irdl.base "!builtin.memref"
    irdl.operands(source: %source, buffer: %buffer)
    irdl.results(result: %result)
  }
  // C[M,N] += W[M,K] * X[K,N], W in BCRC (GEMM-shaped work).
  irdl.operation @spmm {
    %strips = irdl.base "!builtin.memref"
    %block_col = irdl.base "!builtin.memref"
    %masks = irdl.base "!builtin.memref"
    %values = irdl.base "!builtin.memref"
    %x = irdl.base "!builtin.memref"
    %c = irdl.base "!builtin.memref"
    %block_rows = irdl.base "#builtin.integer"
    %block_cols = irdl.base "#builtin.integer"
    irdl.operands(strips: %strips, block_col: %block_col, masks: %masks, values: %values, input: %x, output: %c)
    irdl.attributes { "block_rows" = %block_rows, "block_cols" = %block_cols }
  }
  // c[M] += W[M,K] * x[K], W in BCRC (matrix-vector work, N = 1).
  irdl.operation @spmv {
    %strips = irdl.base "!builtin.memref"
    %block_col = irdl.base "!builtin.memref"
    %masks = irdl.base "!builtin.memref"
    %values = irdl.base "!builtin.memref"
    %x = irdl.base "!builtin.memref"
    %c = irdl.base "!builtin.memref"
    %block_rows = irdl.base "#builtin.integer"
    %block_cols = irdl.base "#builtin.integer"
    irdl.operands(strips: %strips, block_col: %block_col, masks: %masks, values: %values, input: %x, output: %c)
    irdl.attributes { "block_rows" = %block_rows, "block_cols" = %block_cols }
  }
  // C[M,N] += W[M,K] * X[K,N], or c[M] += W[M,K] * x[K] when the input is a
  // vector: a layer that stays dense. W is a `bcr.dense` in row panels.
  // With an `im2col` attribute (as on bcr.im2col) the input is an image
  // X[C, H, W] read through its im2col view (implicit im2col).
  irdl.operation @gemm {
    %w = irdl.base "!builtin.memref"
    %x = irdl.base "!builtin.memref"
    %c = irdl.base "!builtin.memref"
    irdl.operands(weights: %w, input: %x, output: %c)
  }
  // im2col of one image: Out[K, Ho*Wo] = the patches of X[C, H, W] that a
  // convolution multiplies (K = C*kh*kw, zeros where a patch reaches into
  // the padding). `im2col = array<i64: kh, kw, sh, sw, pt, pl, pb, pr, dh, dw>`.
  irdl.operation @im2col {
    %x = irdl.base "!builtin.memref"
    %out = irdl.base "!builtin.memref"
    %geometry = irdl.base "#builtin.dense_array"
    irdl.operands(input: %x, output: %out)
    irdl.attributes { "im2col" = %geometry }
  }
}
