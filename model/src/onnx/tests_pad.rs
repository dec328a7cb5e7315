//! Loading Pad in both forms and Reshape's allowzero.

use super::export::vi_proto;
use super::proto::*;
use super::{attr_type, data_type};
use super::tests::{load_model, node_proto, opset_of};
use crate::graph::Op;
use crate::pad::PadMode;

fn ints(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: data_type::INT64,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

fn model(node: NodeProto, initializer: Vec<TensorProto>, x: &[usize], opset: i64) -> ModelProto {
    let mut m = ModelProto {
        ir_version: 8,
        graph: Some(GraphProto {
            name: "g".into(),
            node: vec![node],
            initializer,
            input: vec![vi_proto("x", x)],
            output: vec![],
            ..Default::default()
        }),
        ..Default::default()
    };
    opset_of(&mut m, opset);
    m
}

fn mode(name: &str) -> AttributeProto {
    AttributeProto {
        name: "mode".into(),
        r#type: attr_type::STRING,
        s: name.as_bytes().to_vec(),
        ..Default::default()
    }
}

#[test]
fn pad_with_axes_and_an_omitted_constant_value() {
    // Opset 18: pads for axes [-1, 1] only, constant_value omitted ("").
    let mut pad = node_proto("p", "Pad", &["x", "pads", "", "axes"], &["y"]);
    pad.attribute.push(mode("edge"));
    let m = model(
        pad,
        vec![ints("pads", &[1, 2, 3, 4]), ints("axes", &[-1, 1])],
        &[1, 2, 5],
        18,
    );
    let g = load_model(&m).unwrap();
    assert_eq!(
        g.nodes[0].op,
        Op::Pad {
            mode: PadMode::Edge,
            pads: vec![0, 2, 1, 0, 4, 3],
            value: 0.0
        }
    );
    assert_eq!(g.nodes[0].inputs, ["x"], "the constant inputs are folded");
    assert_eq!(g.infer_shapes().unwrap()["y"], [1, 8, 9]);
}

#[test]
fn pad_errors_name_the_node_and_the_problem() {
    let cases: [(Vec<TensorProto>, &[&str], &str); 3] = [
        (
            vec![ints("pads", &[0, -1, 0, 0])],
            &["x", "pads"],
            "negative pads [0, -1, 0, 0] crop the input",
        ),
        (vec![], &["x", "x"], "pads 'x' must be a constant 1-D INT64 tensor"),
        (
            vec![ints("pads", &[0, 9, 0, 0])],
            &["x", "pads"],
            "reflect padding of dim 1 (size 3) by 9 and 0",
        ),
    ];
    for (initializer, inputs, want) in cases {
        let mut pad = node_proto("the_pad", "Pad", inputs, &["y"]);
        pad.attribute.push(mode("reflect"));
        let e = load_model(&model(pad, initializer, &[2, 3], 13))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the_pad") && e.contains(want), "{e}");
    }
    let mut pad = node_proto("p", "Pad", &["x", "pads"], &["y"]);
    pad.attribute.push(mode("symmetric"));
    let e = load_model(&model(pad, vec![ints("pads", &[0; 4])], &[2, 3], 13))
        .unwrap_err()
        .to_string();
    assert!(e.contains("mode 'symmetric' is not constant, reflect, edge or wrap"), "{e}");
}

#[test]
fn reshape_allowzero_without_a_zero_is_a_plain_reshape() {
    let allowzero = AttributeProto {
        name: "allowzero".into(),
        r#type: attr_type::INT,
        i: 1,
        ..Default::default()
    };
    let mut reshape = node_proto("r", "Reshape", &["x", "shape"], &["y"]);
    reshape.attribute.push(allowzero.clone());
    let g = load_model(&model(reshape, vec![ints("shape", &[3, -1])], &[2, 3], 14)).unwrap();
    assert_eq!(g.nodes[0].op, Op::Reshape { shape: vec![3, -1] });
    let mut reshape = node_proto("r", "Reshape", &["x", "shape"], &["y"]);
    reshape.attribute.push(allowzero);
    let e = load_model(&model(reshape, vec![ints("shape", &[0, 6])], &[2, 3], 14))
        .unwrap_err()
        .to_string();
    assert!(e.contains("allowzero = 1 with a 0 in the shape [0, 6]"), "{e}");
}
