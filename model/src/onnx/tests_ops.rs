//! Loading Pad in both forms, Reshape's allowzero, and 1-D convs and pools.

use super::export::vi_proto;
use super::proto::*;
use super::tests::{load_model, node_proto, opset_of};
use super::{attr_type, data_type};
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
        (
            vec![],
            &["x", "x"],
            "pads 'x' must be a constant 1-D INT64 tensor",
        ),
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
    assert!(
        e.contains("mode 'symmetric' is not constant, reflect, edge or wrap"),
        "{e}"
    );
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
    assert!(
        e.contains("allowzero = 1 with a 0 in the shape [0, 6]"),
        "{e}"
    );
}

fn f32s(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        float_data: v.to_vec(),
        ..Default::default()
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::INTS,
        ints: v.to_vec(),
        ..Default::default()
    }
}

#[test]
fn a_1d_conv_is_the_2d_conv_over_a_height_of_one() {
    // y[i] = x[i-1] - x[i+1] with one zero of padding on each side.
    let mut conv = node_proto("conv1d", "Conv", &["x", "w"], &["y"]);
    conv.attribute.push(ints_attr("pads", &[1, 1]));
    conv.attribute.push(ints_attr("kernel_shape", &[3]));
    let m = model(
        conv,
        vec![f32s("w", &[1, 1, 3], &[1.0, 0.0, -1.0])],
        &[1, 1, 5],
        13,
    );
    let g = load_model(&m).unwrap();
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.op_type()).collect();
    assert_eq!(ops, ["Reshape", "Conv", "Reshape"]);
    assert_eq!(
        g.nodes[1].name, "conv1d",
        "the conv keeps its name (LR files match on it)"
    );
    assert_eq!(g.initializers.len(), 1, "only the lifted weight stays");
    let w = g.initializers.values().next().unwrap();
    assert_eq!(w.shape, [1, 1, 1, 3]);
    let mut g = g;
    g.outputs = vec![crate::graph::ValueInfo {
        name: "y".into(),
        shape: vec![1, 1, 5],
    }];
    let x = crate::tensor::Tensor::new(vec![1, 1, 5], vec![1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let y = crate::reference::run_reference(&g, &[x]).unwrap();
    assert_eq!(y[0].shape, [1, 1, 5]);
    assert_eq!(y[0].data, [-2.0, -2.0, -2.0, -2.0, 4.0]);
}

#[test]
fn a_1d_max_pool_with_stride_and_pads() {
    let mut pool = node_proto("pool1d", "MaxPool", &["x"], &["y"]);
    pool.attribute.push(ints_attr("kernel_shape", &[2]));
    pool.attribute.push(ints_attr("strides", &[2]));
    pool.attribute.push(ints_attr("pads", &[1, 0]));
    let mut g = load_model(&model(pool, vec![], &[1, 1, 5], 12)).unwrap();
    g.outputs = vec![crate::graph::ValueInfo {
        name: "y".into(),
        shape: vec![1, 1, 3],
    }];
    let x = crate::tensor::Tensor::new(vec![1, 1, 5], vec![3.0, 1.0, 4.0, 1.0, 5.0]).unwrap();
    let y = crate::reference::run_reference(&g, &[x]).unwrap();
    // Windows [pad, 3], [1, 4], [1, 5].
    assert_eq!(y[0].data, [3.0, 4.0, 5.0]);
}
