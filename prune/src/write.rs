//! Writing the pruned model: the same ONNX graph with new weight values.
//!
//! Each pruned (or fine-tuned) weight replaces the tensor it came from: an
//! initializer keeps its name, dims and place (as `FLOAT` raw data), a
//! `Constant` node gets a new `value`, and a weight the importer folded
//! from a chain (`ConstantOfShape`, a Transpose of a constant) becomes an
//! initializer of the same name, the node that computed it dropped. Nothing
//! else changes; fields grim's ONNX reader does not model (doc strings,
//! metadata properties) are not carried over.

use std::collections::BTreeMap;

use grim_model::onnx::data_type;
use grim_model::onnx::proto::{AttributeProto, ModelProto, TensorProto};
use grim_model::Tensor;

fn set_tensor(t: &mut TensorProto, value: &Tensor) {
    t.data_type = data_type::FLOAT;
    t.dims = value.shape.iter().map(|&d| d as i64).collect();
    t.float_data.clear();
    t.double_data.clear();
    t.int32_data.clear();
    t.int64_data.clear();
    t.raw_data = value.data.iter().flat_map(|v| v.to_le_bytes()).collect();
}

/// Puts `weights` (by value name) into `model`; returns notes for the user
/// about weights that were not initializers.
pub fn update(model: &mut ModelProto, weights: &BTreeMap<String, Tensor>) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(g) = model.graph.as_mut() else {
        return notes;
    };
    for (name, value) in weights {
        if let Some(t) = g.initializer.iter_mut().find(|t| &t.name == name) {
            set_tensor(t, value);
            continue;
        }
        let producer = g
            .node
            .iter()
            .position(|n| n.output.iter().any(|o| o == name));
        match producer {
            Some(i) if g.node[i].op_type == "Constant" => {
                let node = &mut g.node[i];
                node.attribute.retain(|a| a.name == "value");
                if node.attribute.is_empty() {
                    node.attribute.push(AttributeProto {
                        name: "value".into(),
                        r#type: 4, // TENSOR
                        ..Default::default()
                    });
                }
                let t = node.attribute[0].t.get_or_insert_with(Default::default);
                set_tensor(t, value);
            }
            Some(i) => {
                let node = g.node.remove(i);
                notes.push(format!(
                    "weight '{name}' was computed by node '{}' ({}); it is now an initializer",
                    node.name, node.op_type
                ));
                let mut t = TensorProto {
                    name: name.clone(),
                    ..Default::default()
                };
                set_tensor(&mut t, value);
                g.initializer.push(t);
            }
            None => notes.push(format!("weight '{name}' is not in the model; not written")),
        }
    }
    notes
}
