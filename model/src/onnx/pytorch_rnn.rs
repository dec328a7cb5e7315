//! Writing a stacked GRU/LSTM classifier the way PyTorch's exporter
//! (`torch.onnx.export`, TorchScript, opset 14) writes
//! `nn.GRU(input, hidden, num_layers)` / `nn.LSTM(...)` followed by
//! `nn.Linear(hidden, classes)` on a `[T, B, input]` sequence: the zero
//! initial states built from the input's batch size (Shape, Gather,
//! Unsqueeze, Concat, ConstantOfShape) and sliced per layer, GRU nodes with
//! `linear_before_reset = 1` and their weights already in ONNX's gate
//! order as anonymous `onnx::GRU_<n>` initializers, a Squeeze with its axes
//! as an input after every layer, and the classifier as a 3-D MatMul with
//! the transposed weight plus an Add of the bias. The unused `Y_h`/`Y_c`
//! outputs keep their names, as PyTorch leaves them.
//!
//! The graph has no representation in [`crate::Graph`] (Shape and
//! friends are folded at import), so it is written as protobuf directly.

use super::data_type;
use super::export::{attr_i, f32_tensor_proto, vi_proto};
use super::proto::*;
use crate::tensor::Tensor;

/// The layers' cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackCell {
    /// `nn.GRU` (exported with `linear_before_reset = 1`).
    Gru,
    /// `nn.LSTM`.
    Lstm,
}

/// One recurrent layer's weights in ONNX's layout and gate order.
#[derive(Debug, Clone, PartialEq)]
pub struct StackLayer {
    /// `[1, G*H, in]`.
    pub w: Tensor,
    /// `[1, G*H, H]`.
    pub r: Tensor,
    /// `[1, 2*G*H]`.
    pub b: Tensor,
}

/// A stacked recurrent classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentStack {
    /// Graph name.
    pub name: String,
    /// The cell of every layer.
    pub cell: StackCell,
    /// Sequence length.
    pub seq: usize,
    /// Batch.
    pub batch: usize,
    /// Input features.
    pub input: usize,
    /// Hidden size.
    pub hidden: usize,
    /// The layers, first to last.
    pub layers: Vec<StackLayer>,
    /// The classifier's weight `[classes, hidden]` (PyTorch's layout; it is
    /// written transposed, as the exporter does).
    pub fc_weight: Tensor,
    /// The classifier's bias `[classes]`.
    pub fc_bias: Tensor,
}

fn i64_tensor(name: &str, values: &[i64], scalar: bool) -> TensorProto {
    TensorProto {
        dims: if scalar {
            vec![]
        } else {
            vec![values.len() as i64]
        },
        data_type: data_type::INT64,
        name: name.to_string(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn node(name: &str, op_type: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: name.to_string(),
        op_type: op_type.to_string(),
        attribute: vec![],
        domain: String::new(),
    }
}

/// A `Constant` node holding an int64 tensor.
fn constant(name: &str, output: &str, values: &[i64], scalar: bool) -> NodeProto {
    let mut n = node(name, "Constant", &[], &[output]);
    n.attribute.push(AttributeProto {
        name: "value".into(),
        t: Some(i64_tensor("", values, scalar)),
        r#type: super::attr_type::TENSOR,
        ..Default::default()
    });
    n
}

impl RecurrentStack {
    /// The ONNX model (IR 8, opset 14), input `input` `[T, B, in]`,
    /// output `output` `[T, B, classes]`.
    pub fn to_proto(&self) -> ModelProto {
        let (module, op_type) = match self.cell {
            StackCell::Gru => ("gru", "GRU"),
            StackCell::Lstm => ("lstm", "LSTM"),
        };
        let layers = self.layers.len();
        let classes = self.fc_bias.shape[0];
        let mut nodes = Vec::new();
        let mut initializer = Vec::new();
        let mut anonymous = 0usize;
        let mut fresh = |prefix: &str| {
            anonymous += 1;
            format!("onnx::{prefix}_{anonymous}")
        };
        // Zero initial states of [layers, batch, hidden], batch from the input.
        let p = |s: &str| format!("/{module}/{s}");
        nodes.push(node(
            &p("Shape"),
            "Shape",
            &["input"],
            &[&p("Shape_output_0")],
        ));
        nodes.push(constant(
            &p("Constant"),
            &p("Constant_output_0"),
            &[1],
            true,
        ));
        let mut gather = node(
            &p("Gather"),
            "Gather",
            &[&p("Shape_output_0"), &p("Constant_output_0")],
            &[&p("Gather_output_0")],
        );
        gather.attribute.push(attr_i("axis", 0));
        nodes.push(gather);
        nodes.push(constant(
            &p("Constant_1"),
            &p("Constant_1_output_0"),
            &[0],
            false,
        ));
        nodes.push(node(
            &p("Unsqueeze"),
            "Unsqueeze",
            &[&p("Gather_output_0"), &p("Constant_1_output_0")],
            &[&p("Unsqueeze_output_0")],
        ));
        nodes.push(constant(
            &p("Constant_2"),
            &p("Constant_2_output_0"),
            &[layers as i64],
            false,
        ));
        nodes.push(constant(
            &p("Constant_3"),
            &p("Constant_3_output_0"),
            &[self.hidden as i64],
            false,
        ));
        let mut concat = node(
            &p("Concat"),
            "Concat",
            &[
                &p("Constant_2_output_0"),
                &p("Unsqueeze_output_0"),
                &p("Constant_3_output_0"),
            ],
            &[&p("Concat_output_0")],
        );
        concat.attribute.push(attr_i("axis", 0));
        nodes.push(concat);
        let states: &[&str] = match self.cell {
            StackCell::Gru => &["h0"],
            StackCell::Lstm => &["h0", "c0"],
        };
        for (k, state) in states.iter().enumerate() {
            let mut zeros = node(
                &p(&format!("ConstantOfShape_{k}")),
                "ConstantOfShape",
                &[&p("Concat_output_0")],
                &[&p(state)],
            );
            zeros.attribute.push(AttributeProto {
                name: "value".into(),
                t: Some(TensorProto {
                    dims: vec![1],
                    data_type: data_type::FLOAT,
                    raw_data: 0f32.to_le_bytes().to_vec(),
                    ..Default::default()
                }),
                r#type: super::attr_type::TENSOR,
                ..Default::default()
            });
            nodes.push(zeros);
        }
        let mut x = "input".to_string();
        for (l, layer) in self.layers.iter().enumerate() {
            let suffix = if l == 0 {
                String::new()
            } else {
                format!("_{l}")
            };
            // The layer's slice of each initial state.
            let bounds =
                [("starts", l as i64), ("ends", l as i64 + 1), ("axes", 0)].map(|(what, v)| {
                    let name = p(&format!("Constant_{what}{suffix}_output_0"));
                    nodes.push(constant(
                        &p(&format!("Constant_{what}{suffix}")),
                        &name,
                        &[v],
                        false,
                    ));
                    name
                });
            let mut sliced = Vec::new();
            for state in states {
                let out = p(&format!("Slice_{state}{suffix}_output_0"));
                nodes.push(node(
                    &p(&format!("Slice_{state}{suffix}")),
                    "Slice",
                    &[&p(state), &bounds[0], &bounds[1], &bounds[2]],
                    &[&out],
                ));
                sliced.push(out);
            }
            let (w, r, b) = (fresh(op_type), fresh(op_type), fresh(op_type));
            initializer.push(f32_tensor_proto(&w, &layer.w));
            initializer.push(f32_tensor_proto(&r, &layer.r));
            initializer.push(f32_tensor_proto(&b, &layer.b));
            let name = p(&format!("{op_type}{suffix}"));
            let mut inputs = vec![x.clone(), w, r, b, String::new()];
            inputs.extend(sliced);
            // Y, Y_h (and Y_c): only Y is read; the others keep their names.
            let outputs: Vec<String> = (0..states.len() + 1)
                .map(|i| format!("{name}_output_{i}"))
                .collect();
            let mut rnn = NodeProto {
                input: inputs,
                output: outputs.clone(),
                name: name.clone(),
                op_type: op_type.to_string(),
                attribute: vec![attr_i("hidden_size", self.hidden as i64)],
                domain: String::new(),
            };
            if self.cell == StackCell::Gru {
                rnn.attribute.push(attr_i("linear_before_reset", 1));
            }
            nodes.push(rnn);
            // Squeeze the direction axis; the axes are an input from opset 13.
            let axes = p(&format!("Constant_squeeze{suffix}_output_0"));
            nodes.push(constant(
                &p(&format!("Constant_squeeze{suffix}")),
                &axes,
                &[1],
                false,
            ));
            let squeezed = p(&format!("Squeeze{suffix}_output_0"));
            nodes.push(node(
                &p(&format!("Squeeze{suffix}")),
                "Squeeze",
                &[&outputs[0], &axes],
                &[&squeezed],
            ));
            x = squeezed;
        }
        // The classifier on the 3-D sequence: MatMul with W^T, then Add(bias, .).
        let (fc_w, fc_b) = (fresh("MatMul"), "fc.bias".to_string());
        let (rows, cols) = (self.fc_weight.shape[0], self.fc_weight.shape[1]);
        let transposed = Tensor {
            shape: vec![cols, rows],
            data: (0..cols)
                .flat_map(|c| (0..rows).map(move |r| (r, c)))
                .map(|(r, c)| self.fc_weight.data[r * cols + c])
                .collect(),
        };
        initializer.push(f32_tensor_proto(&fc_w, &transposed));
        initializer.push(f32_tensor_proto(&fc_b, &self.fc_bias));
        nodes.push(node(
            "/fc/MatMul",
            "MatMul",
            &[&x, &fc_w],
            &["/fc/MatMul_output_0"],
        ));
        nodes.push(node(
            "/fc/Add",
            "Add",
            &[&fc_b, "/fc/MatMul_output_0"],
            &["output"],
        ));
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 14,
            }],
            producer_name: "grim (as pytorch writes it)".into(),
            graph: Some(GraphProto {
                node: nodes,
                name: self.name.clone(),
                initializer,
                input: vec![vi_proto("input", &[self.seq, self.batch, self.input])],
                output: vec![vi_proto("output", &[self.seq, self.batch, classes])],
                value_info: vec![],
            }),
        }
    }
}
