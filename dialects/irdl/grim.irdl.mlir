// The `grim` dialect: graph level, value semantics on ranked f32 tensors.
// Attributes follow ONNX semantics (NCHW). Structure (operand/result kinds,
// required attributes) is verified by MLIR from this declaration; shapes,
// optional attributes and epilogues are checked by the semantic verifier in
// dialects/src/grim/, which also documents every optional attribute.
irdl.dialect @grim {
  // A constant tensor: a weight (`value = dense_resource<key>`, the blob in
  // the module's resource section) or a small constant (`dense<...>`).
  // `name` (optional) is the ONNX initializer's name.
  irdl.operation @constant {
    %tensor = irdl.base "!builtin.tensor"
    %value = irdl.any
    irdl.attributes { "value" = %value }
    irdl.results(result: %tensor)
  }
  // ONNX Gemm: Y = alpha * op(A) * op(W) + beta * C, op() transposing when
  // `trans_a` / `trans_b` are set; MatMul is Gemm without C. Lowering wants
  // the canonical form graph-simplify makes: W out x in (`trans_b`), no
  // alpha/beta/trans_a, C a bias [M]; then an epilogue may be set: a
  // residual (an [N, M] tensor added after the bias) and an `activation`.
  // Two optional operands need `operandSegmentSizes` (IRDL unifies the
  // types of a variadic group, so bias and residual cannot share one).
  irdl.operation @gemm {
    %a = irdl.base "!builtin.tensor"
    %w = irdl.base "!builtin.tensor"
    %bias = irdl.base "!builtin.tensor"
    %residual = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(input: %a, weight: %w, bias: optional %bias, residual: optional %residual)
    irdl.results(result: %result)
  }
  // 2-D convolution, NCHW: Y[N,M,Ho,Wo] = conv(X[N,C,H,W], W[M,C,kh,kw]) (+ bias[M]),
  // group 1, then the epilogue (a residual [N,M,Ho,Wo], `activation`),
  // operands as for gemm. `strides` [sh, sw], `pads` [top, left, bottom,
  // right] and `dilations` [dh, dw] are `array<i64: ...>` attributes, as in
  // ONNX Conv.
  irdl.operation @conv2d {
    %x = irdl.base "!builtin.tensor"
    %w = irdl.base "!builtin.tensor"
    %bias = irdl.base "!builtin.tensor"
    %residual = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    // One constraint value per attribute: IRDL unifies a value used twice.
    %strides = irdl.base "#builtin.dense_array"
    %pads = irdl.base "#builtin.dense_array"
    %dilations = irdl.base "#builtin.dense_array"
    irdl.operands(input: %x, weight: %w, bias: optional %bias, residual: optional %residual)
    irdl.results(result: %result)
    irdl.attributes { "strides" = %strides, "pads" = %pads, "dilations" = %dilations }
  }
  // 2-D pooling over NCHW (ONNX MaxPool, AveragePool, and the global ones
  // with the window of the whole image): `kind` is "max" or "average";
  // `kernel`, `strides`, `dilations` are [h, w] and `pads` [t, l, b, r];
  // optional unit `count_include_pad` (average only). The result shape
  // carries ceil_mode.
  irdl.operation @pool {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    %kind = irdl.base "#builtin.string"
    %kernel = irdl.base "#builtin.dense_array"
    %strides = irdl.base "#builtin.dense_array"
    %pads = irdl.base "#builtin.dense_array"
    %dilations = irdl.base "#builtin.dense_array"
    irdl.operands(input: %x)
    irdl.results(result: %result)
    irdl.attributes { "kind" = %kind, "kernel" = %kernel, "strides" = %strides, "pads" = %pads, "dilations" = %dilations }
  }
  // ONNX BatchNormalization in inference: per channel (axis 1)
  // y = scale * (x - mean) / sqrt(var + epsilon) + bias.
  irdl.operation @batch_norm {
    %x = irdl.base "!builtin.tensor"
    %scale = irdl.base "!builtin.tensor"
    %bias = irdl.base "!builtin.tensor"
    %mean = irdl.base "!builtin.tensor"
    %var = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    %epsilon = irdl.base "#builtin.float"
    irdl.operands(input: %x, scale: %scale, bias: %bias, mean: %mean, var: %var)
    irdl.results(result: %result)
    irdl.attributes { "epsilon" = %epsilon }
  }
  // Elementwise sum with numpy broadcasting.
  irdl.operation @add {
    %a = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(lhs: %a, rhs: %b)
    irdl.results(result: %result)
  }
  // lhs - rhs elementwise, numpy broadcasting.
  irdl.operation @sub {
    %a = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(lhs: %a, rhs: %b)
    irdl.results(result: %result)
  }
  // lhs * rhs elementwise, numpy broadcasting.
  irdl.operation @mul {
    %a = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(lhs: %a, rhs: %b)
    irdl.results(result: %result)
  }
  // lhs / rhs elementwise (IEEE division), numpy broadcasting.
  irdl.operation @div {
    %a = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(lhs: %a, rhs: %b)
    irdl.results(result: %result)
  }
  // max(lhs, rhs) elementwise (NaN if either is NaN), numpy broadcasting.
  irdl.operation @max {
    %a = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(lhs: %a, rhs: %b)
    irdl.results(result: %result)
  }
  // min(lhs, rhs) elementwise (NaN if either is NaN), numpy broadcasting.
  irdl.operation @min {
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
  // numpy matmul of two tensors of any rank (batch dims broadcast, a 1-D
  // operand promoted and its dim dropped): ONNX MatMul where no operand is
  // a 2-D matrix a gemm takes as its weight.
  irdl.operation @matmul {
    %a = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(lhs: %a, rhs: %b)
    irdl.results(result: %result)
  }
  // ONNX RNN, GRU and LSTM (`cell` = "rnn", "gru", "lstm"): Y, Y_h and, for
  // lstm, Y_c of X [T, B, I] ([B, T, I] with `batch_major`), W [D, G*H, I],
  // R [D, G*H, H] and the optional B [D, 2*G*H], initial_h and initial_c
  // ([D, B, H] or [B, D, H]) and P [D, 3*H], in ONNX's gate order. Attributes:
  // `direction` ("forward", "reverse", "bidirectional"), `hidden_size`,
  // `activations` (an array of activation kind strings, per direction),
  // optional `activation_params` (array<f32>), `clip` (f32), `sequence_lens`
  // (array<i64>), units `linear_before_reset`, `input_forget`, `batch_major`;
  // `operandSegmentSizes` = array<i32: 1, 1, 1, b, h, c, p>.
  irdl.operation @recurrent {
    %x = irdl.base "!builtin.tensor"
    %w = irdl.base "!builtin.tensor"
    %r = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    %h0 = irdl.base "!builtin.tensor"
    %c0 = irdl.base "!builtin.tensor"
    %p = irdl.base "!builtin.tensor"
    %y = irdl.base "!builtin.tensor"
    %yh = irdl.base "!builtin.tensor"
    %yc = irdl.base "!builtin.tensor"
    %cell = irdl.base "#builtin.string"
    %direction = irdl.base "#builtin.string"
    %hidden = irdl.base "#builtin.integer"
    %activations = irdl.base "#builtin.array"
    irdl.operands(input: %x, weight: %w, recurrence: %r, bias: optional %b, initial_h: optional %h0, initial_c: optional %c0, peepholes: optional %p)
    irdl.results(y: %y, y_h: %yh, y_c: optional %yc)
    irdl.attributes { "cell" = %cell, "direction" = %direction, "hidden_size" = %hidden, "activations" = %activations }
  }
  // ONNX LRN across channels: x / (bias + alpha / size * sum of x^2 over
  // channels [c - (size-1)/2, c + size/2])^beta.
  irdl.operation @lrn {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    %alpha = irdl.base "#builtin.float"
    %beta = irdl.base "#builtin.float"
    %bias = irdl.base "#builtin.float"
    %size = irdl.base "#builtin.integer"
    irdl.operands(input: %x)
    irdl.results(result: %result)
    irdl.attributes { "alpha" = %alpha, "beta" = %beta, "bias" = %bias, "size" = %size }
  }
  // lhs then rhs along `axis` (i64), equal in every other dim: ONNX Concat
  // of more inputs is a left fold (a variadic group would force one type).
  irdl.operation @concat {
    %a = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    %axis = irdl.base "#builtin.integer"
    irdl.operands(lhs: %a, rhs: %b)
    irdl.results(result: %result)
    irdl.attributes { "axis" = %axis }
  }
  // exp(x) / sum(exp(x)) over dims [axis, axis_end) (i64 attributes): ONNX
  // Softmax, one dim from opset 13, every dim from axis on before.
  irdl.operation @softmax {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    %axis = irdl.base "#builtin.integer"
    %axis_end = irdl.base "#builtin.integer"
    irdl.operands(input: %x)
    irdl.results(result: %result)
    irdl.attributes { "axis" = %axis, "axis_end" = %axis_end }
  }
  // ONNX Transpose of any rank: output dim i is input dim perm[i]
  // (`perm`: array<i64>). The 2-D swap is grim.transpose.
  // ONNX Pad with static pads: `pads` (dense array, begins then ends),
  // `mode` ("constant", "reflect", "edge", "wrap") and the constant `value`.
  irdl.operation @pad {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    %pads = irdl.base "#builtin.dense_array"
    %mode = irdl.base "#builtin.string"
    %value = irdl.base "#builtin.float"
    irdl.operands(input: %x)
    irdl.results(result: %result)
    irdl.attributes { "mode" = %mode, "pads" = %pads, "value" = %value }
  }
  irdl.operation @permute {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    %perm = irdl.base "#builtin.dense_array"
    irdl.operands(input: %x)
    irdl.results(result: %result)
    irdl.attributes { "perm" = %perm }
  }
  // min(max(x, min), max); either bound (`min`, `max`: f32) may be absent.
  irdl.operation @clip {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(input: %x)
    irdl.results(result: %result)
  }
  // x if x >= 0 else alpha * x (`alpha`: f32).
  irdl.operation @leaky_relu {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    %alpha = irdl.base "#builtin.float"
    irdl.operands(input: %x)
    irdl.results(result: %result)
    irdl.attributes { "alpha" = %alpha }
  }
  // 1 / (1 + exp(-x)) elementwise.
  irdl.operation @sigmoid {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(input: %x)
    irdl.results(result: %result)
  }
  // tanh(x) elementwise.
  irdl.operation @tanh {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(input: %x)
    irdl.results(result: %result)
  }
  // max(0, min(1, alpha * x + beta)) (`alpha`, `beta`: f32).
  irdl.operation @hard_sigmoid {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    %alpha = irdl.base "#builtin.float"
    %beta = irdl.base "#builtin.float"
    irdl.operands(input: %x)
    irdl.results(result: %result)
    irdl.attributes { "alpha" = %alpha, "beta" = %beta }
  }
  // x * max(0, min(1, x / 6 + 1/2)) elementwise.
  irdl.operation @hard_swish {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(input: %x)
    irdl.results(result: %result)
  }
  // The input unchanged (ONNX Identity, and Dropout in inference).
  irdl.operation @identity {
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
  // 2-D transpose.
  irdl.operation @transpose {
    %x = irdl.base "!builtin.tensor"
    %result = irdl.base "!builtin.tensor"
    irdl.operands(input: %x)
    irdl.results(result: %result)
  }
}
