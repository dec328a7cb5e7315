// The `grim` dialect: graph level, value semantics on ranked f32 tensors.
// Attributes follow ONNX semantics. Structure (operand/result kinds) is
// verified by MLIR from this declaration; shapes are checked by the semantic
// verifier in dialects/src/grim.rs.
irdl.dialect @grim {
  // A weight that lives outside the IR (an ONNX initializer), named by `name`.
  irdl.operation @weight {
    %tensor = irdl.base "!builtin.tensor"
    %name = irdl.base "#builtin.string"
    irdl.attributes { "name" = %name }
    irdl.results(result: %tensor)
  }
  // A small constant whose values are in the IR (`value` is a dense elements attribute).
  irdl.operation @constant {
    %tensor = irdl.base "!builtin.tensor"
    %value = irdl.any
    irdl.attributes { "value" = %value }
    irdl.results(result: %tensor)
  }
  // Y[N,M] = A[N,K] * W[M,K]^T (+ bias[M]). W is stored out x in, as a
  // fully connected layer's weight; ONNX Gemm and MatMul map onto it.
  irdl.operation @gemm {
    %a = irdl.base "!builtin.tensor"
    %w = irdl.base "!builtin.tensor"
    %bias = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(input: %a, weight: %w, bias: optional %bias)
    irdl.results(result: %result)
  }
  // 2-D convolution, NCHW: Y[N,M,Ho,Wo] = conv(X[N,C,H,W], W[M,C,kh,kw]) (+ bias[M]),
  // group 1. `strides` [sh, sw], `pads` [top, left, bottom, right] and
  // `dilations` [dh, dw] are `array<i64: ...>` attributes, as in ONNX Conv.
  irdl.operation @conv2d {
    %x = irdl.base "!builtin.tensor"
    %w = irdl.base "!builtin.tensor"
    %bias = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    // One constraint value per attribute: IRDL unifies a value used twice.
    %strides = irdl.base "#builtin.dense_array"
    %pads = irdl.base "#builtin.dense_array"
    %dilations = irdl.base "#builtin.dense_array"
    irdl.operands(input: %x, weight: %w, bias: optional %bias)
    irdl.results(result: %result)
    irdl.attributes { "strides" = %strides, "pads" = %pads, "dilations" = %dilations }
  }
  // Elementwise sum with numpy broadcasting.
  irdl.operation @add {
    %a = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(lhs: %a, rhs: %b)
    irdl.results(result: %result)
  }
  // max(x, 0) elementwise.
  irdl.operation @relu {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(input: %x)
    irdl.results(result: %result)
  }
  // Same elements, new static shape (ONNX Reshape with a constant shape, Flatten).
  irdl.operation @reshape {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(input: %x)
    irdl.results(result: %result)
  }
  // 2-D transpose (ONNX Gemm's transA).
  irdl.operation @transpose {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(input: %x)
    irdl.results(result: %result)
  }
}
