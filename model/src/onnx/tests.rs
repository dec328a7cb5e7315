//! Unit tests of ONNX import and export.

use super::export::{attr_f, attr_i, f32_tensor_proto, vi_proto};
use super::proto::tensor_shape_proto::dimension;
use super::*;

fn small_graph() -> Graph {
    let w = Tensor::new(vec![4, 6], (0..24).map(|i| i as f32 * 0.25 - 3.0).collect()).unwrap();
    let b = Tensor::new(vec![4], vec![0.5, -0.5, 1.0, 0.0]).unwrap();
    let mut initializers = BTreeMap::new();
    initializers.insert("w".to_string(), w);
    initializers.insert("b".to_string(), b);
    let n = |name: &str, op: Op, ins: &[&str], out: &str| Node {
        name: name.into(),
        op,
        inputs: ins.iter().map(|s| s.to_string()).collect(),
        outputs: vec![out.into()],
    };
    Graph {
        name: "small".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![2, 3, 2],
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: vec![8],
        }],
        nodes: vec![
            n("flat", Op::Flatten { axis: 1 }, &["x"], "f"),
            n(
                "fc",
                Op::Gemm {
                    alpha: 0.5,
                    beta: 2.0,
                    trans_a: false,
                    trans_b: true,
                },
                &["f", "w", "b"],
                "g",
            ),
            n("", Op::Relu, &["g"], "r"),
            n("add", Op::Add, &["r", "b"], "s"),
            n("rs", Op::Reshape { shape: vec![-1] }, &["s"], "y"),
        ],
        initializers,
    }
}

fn write(model: &ModelProto) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    std::fs::write(&p, model.encode_to_vec()).unwrap();
    (dir, p)
}

#[test]
fn round_trip() {
    let g = small_graph();
    g.validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    save_onnx(&g, &p).unwrap();
    assert_eq!(load_onnx(&p).unwrap(), g);
    let m = ModelProto::decode(std::fs::read(&p).unwrap().as_slice()).unwrap();
    assert_eq!((m.ir_version, m.opset_import[0].version), (8, 17));
    let gp = m.graph.unwrap();
    assert!(gp
        .initializer
        .iter()
        .filter(|t| t.data_type == data_type::FLOAT)
        .all(|t| !t.raw_data.is_empty() && t.float_data.is_empty()));
    let vi: Vec<&str> = gp.value_info.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(vi, ["f", "g", "r", "s"]);
}

#[test]
fn truncated_and_garbage_name_the_file() {
    let g = small_graph();
    let bytes = to_proto(&g).encode_to_vec();
    let (_d, p) = write(&to_proto(&g));
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_onnx(&p).unwrap_err();
    assert!(matches!(e, ModelError::OnnxDecode { .. }), "{e:?}");
    assert!(e.to_string().contains("m.onnx"), "{e}");
    std::fs::write(&p, b"\xff\xff\xff\xff garbage").unwrap();
    assert!(load_onnx(&p).unwrap_err().to_string().contains("m.onnx"));
    std::fs::write(&p, b"").unwrap();
    let e = load_onnx(&p).unwrap_err().to_string();
    assert!(e.contains("m.onnx") && e.contains("no graph"), "{e}");
    let e = load_onnx(Path::new("/nonexistent/x.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/x.onnx"), "{e}");
}

#[test]
fn unsupported_op_and_attribute() {
    let mut m = to_proto(&small_graph());
    let gp = m.graph.as_mut().unwrap();
    gp.node[2].op_type = "Einsum".into();
    let (_d, p) = write(&m);
    let e = load_onnx(&p).unwrap_err().to_string();
    assert_eq!(e, "node '#2' (Einsum): operator 'Einsum' is not supported");

    let mut m = to_proto(&small_graph());
    m.graph.as_mut().unwrap().node[1]
        .attribute
        .push(attr_i("foo", 1));
    let (_d, p) = write(&m);
    let e = load_onnx(&p).unwrap_err().to_string();
    assert_eq!(e, "node 'fc' (Gemm): unsupported attribute 'foo'");

    let mut m = to_proto(&small_graph());
    m.graph.as_mut().unwrap().node[1].attribute[0] = attr_i("alpha", 2);
    let (_d, p) = write(&m);
    let e = load_onnx(&p).unwrap_err().to_string();
    assert!(
        e.starts_with("node 'fc' (Gemm): attribute 'alpha' must be a float"),
        "{e}"
    );
}

#[test]
fn types_and_dynamic_dims_rejected() {
    // A free batch dim (as PyTorch's dynamic_axes writes it, on the input
    // and the output) is taken as 1 with a note, or fixed by --input-shape.
    let free = |m: &mut ModelProto, output: bool, index: usize, name: &str| {
        let g = m.graph.as_mut().unwrap();
        let vi = if output {
            &mut g.output[0]
        } else {
            &mut g.input[0]
        };
        if let Some(type_proto::Value::TensorType(t)) = &mut vi.r#type.as_mut().unwrap().value {
            t.shape.as_mut().unwrap().dim[index].value =
                Some(dimension::Value::DimParam(name.into()));
        }
    };
    let mut m = to_proto(&small_graph());
    free(&mut m, false, 0, "batch");
    free(&mut m, true, 0, "batch");
    let (_d, p) = write(&m);
    let loaded = load_onnx_with(&p, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.graph.inputs[0].shape, [1, 3, 2]);
    // The output's free dim is inferred: [2, 3, 2] gives 8 values, [1, 3, 2] 4.
    assert_eq!(loaded.graph.outputs[0].shape, [4]);
    assert!(
        loaded.notes[0].contains("'x'")
            && loaded.notes[0].contains("free batch dimension 'batch'")
            && loaded.notes[0].contains("--input-shape x=Nx3x2"),
        "{:?}",
        loaded.notes
    );
    let shapes = |pairs: &[(&str, &[usize])]| LoadOptions {
        input_shapes: pairs
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect(),
    };
    let loaded = load_onnx_with(&p, &shapes(&[("x", &[2, 3, 2])])).unwrap();
    assert_eq!(loaded.graph.outputs[0].shape, [8]);
    assert!(loaded.notes.is_empty());
    let e = load_onnx_with(&p, &shapes(&[("x", &[2, 3, 3])]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--input-shape x=2x3x3 does not match the declared shape ['batch', 3, 2]"),
        "{e}"
    );
    let e = load_onnx_with(&p, &shapes(&[("input", &[2, 3, 2])]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'input', which is not a graph input (inputs: x)"),
        "{e}"
    );
    // A free dim that is not the batch is an error saying how to fix it.
    let mut m = to_proto(&small_graph());
    free(&mut m, false, 1, "features");
    let (_d, p) = write(&m);
    let e = load_onnx(&p).unwrap_err().to_string();
    assert!(
        e.contains("'x'")
            && e.contains("dynamic dimension 'features'")
            && e.contains("--input-shape x=2xNx2"),
        "{e}"
    );

    let mut m = to_proto(&small_graph());
    if let Some(type_proto::Value::TensorType(t)) = &mut m.graph.as_mut().unwrap().output[0]
        .r#type
        .as_mut()
        .unwrap()
        .value
    {
        t.elem_type = 11;
    }
    let (_d, p) = write(&m);
    let e = load_onnx(&p).unwrap_err().to_string();
    assert!(e.contains("'y'") && e.contains("DOUBLE"), "{e}");

    let mut m = to_proto(&small_graph());
    m.graph.as_mut().unwrap().initializer[0].data_type = 11;
    let (_d, p) = write(&m);
    let e = load_onnx(&p).unwrap_err().to_string();
    assert!(e.contains("initializer 'b'") && e.contains("DOUBLE"), "{e}");
}

#[test]
fn shape_mismatch_names_node() {
    let mut g = small_graph();
    g.initializers.insert("w".into(), Tensor::zeros(vec![4, 5]));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.onnx");
    save_onnx(&g, &p).unwrap();
    let e = load_onnx(&p).unwrap_err().to_string();
    assert!(
        e.contains("'fc'") && e.contains("[2, 6]") && e.contains("[4, 5]"),
        "{e}"
    );

    let mut g = small_graph();
    g.outputs[0].shape = vec![9];
    save_onnx(&g, &p).unwrap();
    let e = load_onnx(&p).unwrap_err().to_string();
    assert!(
        e.contains("'y'") && e.contains("[9]") && e.contains("[8]"),
        "{e}"
    );
}

fn conv_graph(bias: bool) -> Graph {
    let weight = (0..5 * 3 * 3 * 2)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    crate::mlp::conv_layer(
        2,
        3,
        9,
        8,
        5,
        [3, 2],
        [2, 1],
        [1, 0, 2, 1],
        [1, 2],
        bias,
        weight,
    )
    .unwrap()
}

#[test]
fn conv_round_trip() {
    for bias in [true, false] {
        let g = conv_graph(bias);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("conv.onnx");
        save_onnx(&g, &p).unwrap();
        let back = load_onnx(&p).unwrap();
        assert_eq!(back, g);
        assert_eq!(
            back.nodes[0].op,
            Op::Conv {
                strides: [2, 1],
                pads: [1, 0, 2, 1],
                dilations: [1, 2],
                group: 1,
            }
        );
        // ONNX attribute names and order, as onnxruntime reads them.
        let m = ModelProto::decode(std::fs::read(&p).unwrap().as_slice()).unwrap();
        let node = &m.graph.unwrap().node[0];
        assert_eq!(node.op_type, "Conv");
        let attrs: Vec<(&str, &[i64])> = node
            .attribute
            .iter()
            .map(|a| (a.name.as_str(), a.ints.as_slice()))
            .collect();
        assert_eq!(
            attrs,
            [
                ("strides", &[2, 1][..]),
                ("pads", &[1, 0, 2, 1][..]),
                ("dilations", &[1, 2][..]),
                ("kernel_shape", &[3, 2][..]),
            ]
        );
        assert!(node.attribute.iter().all(|a| a.r#type == attr_type::INTS));
    }
}

/// Loads `conv_graph(true)` after `edit` changed its Conv node proto.
fn load_edited_conv(edit: impl FnOnce(&mut NodeProto)) -> Result<Graph, ModelError> {
    let mut m = to_proto(&conv_graph(true));
    edit(&mut m.graph.as_mut().unwrap().node[0]);
    let (_d, p) = write(&m);
    load_onnx(&p)
}

fn set_attr(node: &mut NodeProto, a: AttributeProto) {
    node.attribute.retain(|b| b.name != a.name);
    node.attribute.push(a);
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: attr_type::INTS,
        ..Default::default()
    }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: v.as_bytes().to_vec(),
        r#type: attr_type::STRING,
        ..Default::default()
    }
}

#[test]
fn conv_attribute_errors_name_the_node() {
    let err = |edit: &dyn Fn(&mut NodeProto)| {
        let e = load_edited_conv(edit).unwrap_err().to_string();
        assert!(e.starts_with("node 'conv' (Conv): "), "{e}");
        e
    };
    let e = load_edited_conv(|n: &mut NodeProto| set_attr(n, attr_i("group", 2)))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("node 'conv': shape error: Conv group 2 must divide both C=3"),
        "{e}"
    );
    let e = err(&|n| set_attr(n, attr_i("group", 0)));
    assert!(e.contains("group = 0 must be at least 1"), "{e}");
    let e = err(&|n| set_attr(n, ints("strides", &[1, 1, 1])));
    assert!(
        e.contains("'strides' must have 2 values") && e.contains("[1, 1, 1]"),
        "{e}"
    );
    let e = err(&|n| set_attr(n, ints("strides", &[1])));
    assert!(e.contains("'strides' must have 2 values"), "{e}");
    let e = err(&|n| set_attr(n, ints("strides", &[0, 1])));
    assert!(
        e.contains("'strides' values must be >= 1") && e.contains("[0, 1]"),
        "{e}"
    );
    let e = err(&|n| set_attr(n, ints("strides", &[1, -2])));
    assert!(e.contains("'strides' values must be >= 1"), "{e}");
    let e = err(&|n| set_attr(n, ints("dilations", &[0, 1])));
    assert!(e.contains("'dilations' values must be >= 1"), "{e}");
    let e = err(&|n| set_attr(n, ints("pads", &[0, -1, 0, 0])));
    assert!(e.contains("'pads' values must be >= 0"), "{e}");
    let e = err(&|n| set_attr(n, ints("pads", &[1, 1])));
    assert!(e.contains("'pads' must have 4 values"), "{e}");
    let e = err(&|n| set_attr(n, ints("kernel_shape", &[3, 3])));
    assert!(
        e.contains("kernel_shape [3, 3]") && e.contains("[3, 2]"),
        "{e}"
    );
    let e = err(&|n| set_attr(n, ints("kernel_shape", &[3, 2, 1])));
    assert!(e.contains("kernel_shape [3, 2, 1]"), "{e}");
    let e = err(&|n| set_attr(n, attr_i("strides", 2)));
    assert!(e.contains("'strides' must be a list of ints"), "{e}");
    let e = err(&|n| set_attr(n, string("auto_pad", "SAME_MIDDLE")));
    assert!(e.contains("auto_pad 'SAME_MIDDLE'"), "{e}");
    let e = err(&|n| set_attr(n, string("auto_pad", "VALID")));
    assert!(e.contains("pads together with auto_pad"), "{e}");
    let e = err(&|n| set_attr(n, attr_i("foo", 1)));
    assert!(e.ends_with("unsupported attribute 'foo'"), "{e}");
    let e = err(&|n| n.input.truncate(1));
    assert!(e.contains("expected 2 or 3 inputs"), "{e}");
    // A weight given at run time loads as a graph input of the conv, and
    // the reference reads it like a constant.
    let constant = conv_graph(false);
    let mut m = to_proto(&constant);
    let gp = m.graph.as_mut().unwrap();
    gp.initializer.retain(|t| t.name != "w");
    gp.input.push(vi_proto("w", &[5, 3, 3, 2]));
    let (_d, p) = write(&m);
    let g = load_onnx(&p).unwrap();
    assert!(!g.initializers.contains_key("w"));
    assert_eq!(g.inputs.last().map(|v| v.name.as_str()), Some("w"));
    let x = Tensor::new(
        constant.inputs[0].shape.clone(),
        (0..constant.inputs[0].shape.iter().product::<usize>())
            .map(|i| (i % 7) as f32 - 3.0)
            .collect(),
    )
    .unwrap();
    let w = constant.initializers["w"].clone();
    assert_eq!(
        crate::run_reference(&g, &[x.clone(), w]).unwrap(),
        crate::run_reference(&constant, &[x]).unwrap()
    );
    // Shape errors found at load name the node too (kernel wider than the
    // padded input: W 8+0+1 = 9 < dilation 2 * (6-1) + 1 = 11).
    let mut g = conv_graph(true);
    g.initializers
        .insert("w".into(), Tensor::zeros(vec![5, 3, 3, 6]));
    let (_d, p) = write(&to_proto(&g));
    let e = load_onnx(&p).unwrap_err().to_string();
    assert!(
        e.contains("'conv'") && e.contains("width") && e.contains("spans 11"),
        "{e}"
    );
}

#[test]
fn conv_defaults_and_auto_pad() {
    let op = |g: Graph| g.nodes[0].op.clone();
    // No attributes at all: stride 1, no padding, dilation 1. The
    // declared output shape no longer fits, so it is dropped and inferred.
    let g = load_edited_conv(|n| n.attribute.clear());
    let e = g.unwrap_err().to_string();
    assert!(
        e.contains("'y'") && e.contains("[2, 5, 5, 7]") && e.contains("[2, 5, 7, 7]"),
        "{e}"
    );
    let strip_out = |m: &mut ModelProto| {
        m.graph.as_mut().unwrap().output[0].r#type = None;
    };
    let load = |edit: &dyn Fn(&mut NodeProto)| {
        let mut m = to_proto(&conv_graph(true));
        edit(&mut m.graph.as_mut().unwrap().node[0]);
        strip_out(&mut m);
        let (_d, p) = write(&m);
        load_onnx(&p).unwrap()
    };
    let g = load(&|n| n.attribute.clear());
    assert_eq!(
        op(g.clone()),
        Op::Conv {
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
            group: 1,
        }
    );
    assert_eq!(g.outputs[0].shape, vec![2, 5, 7, 7]);
    // group 1, NOTSET and VALID are accepted; VALID means no padding.
    let g = load(&|n| {
        n.attribute.retain(|a| a.name != "pads");
        set_attr(n, attr_i("group", 1));
        set_attr(n, string("auto_pad", "VALID"));
    });
    assert!(matches!(
        op(g),
        Op::Conv {
            pads: [0, 0, 0, 0],
            strides: [2, 1],
            ..
        }
    ));
    let g = load(&|n| set_attr(n, string("auto_pad", "NOTSET")));
    assert!(matches!(
        op(g),
        Op::Conv {
            pads: [1, 0, 2, 1],
            ..
        }
    ));
    // SAME: output ceil(in / stride). Input 9x8, kernel 3x2, strides (2,1),
    // dilations (1,2): H out 5, needs (5-1)*2 + 3 - 9 = 2 -> (1, 1);
    // W out 8, span 3, needs 7 + 3 - 8 = 2 -> (1, 1).
    let same = |mode: &'static str, strides: [i64; 2], dilations: [i64; 2]| {
        let g = load(&|n| {
            n.attribute.retain(|a| a.name != "pads");
            set_attr(n, string("auto_pad", mode));
            set_attr(n, ints("strides", &strides));
            set_attr(n, ints("dilations", &dilations));
        });
        let out = g.outputs[0].shape.clone();
        match op(g) {
            Op::Conv { pads, .. } => (pads, out),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        same("SAME_UPPER", [2, 1], [1, 2]),
        ([1, 1, 1, 1], vec![2, 5, 5, 8])
    );
    // Odd totals: H stride 1, kernel 3 -> needs 2 -> (1, 1); W dilation 1,
    // kernel 2 -> needs 1: the extra unit goes to the end (UPPER) or the
    // beginning (LOWER).
    assert_eq!(
        same("SAME_UPPER", [1, 1], [1, 1]),
        ([1, 0, 1, 1], vec![2, 5, 9, 8])
    );
    assert_eq!(
        same("SAME_LOWER", [1, 1], [1, 1]),
        ([1, 1, 1, 0], vec![2, 5, 9, 8])
    );
    // H stride 3: out ceil(9/3) = 3, needs 2*3 + 3 - 9 = 0.
    assert_eq!(
        same("SAME_LOWER", [3, 1], [1, 1]),
        ([0, 1, 0, 0], vec![2, 5, 3, 8])
    );
    // W stride 3, dilation 2: out ceil(8/3) = 3, span 3, needs 2*3 + 3 - 8 = 1.
    assert_eq!(
        same("SAME_LOWER", [1, 3], [1, 2]),
        ([1, 1, 1, 0], vec![2, 5, 9, 3])
    );
}

/// The forms exporters produce: float_data, Constant shape, Identity,
/// initializers listed as inputs, omitted output shapes, packed dims.
#[test]
fn exporter_variants() {
    let tensor_f = |name: &str, dims: Vec<i64>, data: Vec<f32>| TensorProto {
        dims,
        data_type: data_type::FLOAT,
        name: name.into(),
        float_data: data,
        ..Default::default()
    };
    let node =
        |name: &str, op: &str, ins: &[&str], out: &str, attribute: Vec<AttributeProto>| NodeProto {
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            name: name.into(),
            op_type: op.into(),
            attribute,
            domain: String::new(),
        };
    let shape_const = AttributeProto {
        name: "value".into(),
        r#type: attr_type::TENSOR,
        t: Some(TensorProto {
            dims: vec![2],
            data_type: data_type::INT64,
            int64_data: vec![1, -1],
            ..Default::default()
        }),
        ..Default::default()
    };
    let m = ModelProto {
        ir_version: 7,
        opset_import: vec![],
        producer_name: "test".into(),
        graph: Some(GraphProto {
            name: "v".into(),
            node: vec![
                node("c", "Constant", &[], "shp", vec![shape_const]),
                node("id1", "Identity", &["x"], "xi", vec![]),
                node("r", "Reshape", &["xi", "shp"], "xr", vec![]),
                node("mm", "MatMul", &["xr", "w"], "m", vec![]),
                node("id2", "Identity", &["m"], "y", vec![]),
            ],
            initializer: vec![tensor_f(
                "w",
                vec![4, 2],
                vec![1., 0., 0., 1., 1., 1., 2., -1.],
            )],
            input: vec![vi_proto("x", &[2, 2]), vi_proto("w", &[4, 2])],
            output: vec![ValueInfoProto {
                name: "y".into(),
                r#type: None,
            }],
            value_info: vec![],
        }),
    };
    let (_d, p) = write(&m);
    let g = load_onnx(&p).unwrap();
    assert_eq!(
        g.inputs,
        vec![ValueInfo {
            name: "x".into(),
            shape: vec![2, 2]
        }]
    );
    assert_eq!(
        g.outputs,
        vec![ValueInfo {
            name: "y".into(),
            shape: vec![1, 2]
        }]
    );
    // Identity nodes are kept (compiler passes remove them); only the
    // Constant is folded away.
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.op_type()).collect();
    assert_eq!(ops, ["Identity", "Reshape", "MatMul", "Identity"]);
    assert_eq!(g.nodes[0].inputs, vec!["x".to_string()]);
    assert_eq!(g.nodes[1].inputs, vec!["xi".to_string()]);
    assert_eq!(g.nodes[3].outputs, vec!["y".to_string()]);
    let x = Tensor::new(vec![2, 2], vec![1., 2., 3., 4.]).unwrap();
    let y = crate::reference::run_reference(&g, &[x]).unwrap();
    // [1,2,3,4] . W = [1 + 3 + 8, 2 + 3 - 4] = [12, 1].
    assert_eq!(y[0].data, vec![12., 1.]);
}

fn node(name: &str, op: Op, ins: &[&str], out: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: ins.iter().map(|s| s.to_string()).collect(),
        outputs: vec![out.into()],
    }
}

pub(super) fn node_proto(name: &str, op: &str, ins: &[&str], outs: &[&str]) -> NodeProto {
    NodeProto {
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: outs.iter().map(|s| s.to_string()).collect(),
        name: name.into(),
        op_type: op.into(),
        attribute: vec![],
        domain: String::new(),
    }
}

fn f32_init(name: &str, shape: &[usize], data: &[f32]) -> TensorProto {
    f32_tensor_proto(name, &Tensor::new(shape.to_vec(), data.to_vec()).unwrap())
}

fn bool_init(name: &str, v: bool) -> TensorProto {
    TensorProto {
        data_type: data_type::BOOL,
        name: name.into(),
        raw_data: vec![v as u8],
        ..Default::default()
    }
}

pub(super) fn opset_of(m: &mut ModelProto, version: i64) {
    m.opset_import = vec![OperatorSetIdProto {
        domain: String::new(),
        version,
    }];
}

/// `x[1, 2, 1, 2]` through batch norm, the four forms of Clip and every
/// activation, with an unused initializer `c1_min` that the Clip bound
/// initializers must not collide with.
fn activation_graph() -> Graph {
    let clip = |min, max| Op::Clip { min, max };
    let p = |v: [f32; 2]| Tensor::new(vec![2], v.to_vec()).unwrap();
    Graph {
        name: "acts".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![1, 2, 1, 2],
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: vec![1, 2, 1, 2],
        }],
        nodes: vec![
            node(
                "bn",
                Op::BatchNormalization { epsilon: 1e-3 },
                &["x", "s", "b", "m", "v"],
                "bn",
            ),
            node("c1", clip(Some(-1.0), Some(1.5)), &["bn"], "c1"),
            node("c2", clip(None, Some(1.0)), &["c1"], "c2"),
            node("c3", clip(Some(-0.5), None), &["c2"], "c3"),
            node("c4", clip(None, None), &["c3"], "c4"),
            node("lr", Op::LeakyRelu { alpha: 0.2 }, &["c4"], "lr"),
            node(
                "hs",
                Op::HardSigmoid {
                    alpha: 0.3,
                    beta: 0.4,
                },
                &["lr"],
                "hs",
            ),
            node("sg", Op::Sigmoid, &["hs"], "sg"),
            node("th", Op::Tanh, &["sg"], "th"),
            node("hw", Op::HardSwish, &["th"], "hw"),
            node("id", Op::Identity, &["hw"], "y"),
        ],
        initializers: [
            ("s", p([1.5, 0.5])),
            ("b", p([0.1, -0.1])),
            ("m", p([0.2, -0.3])),
            ("v", p([2.0, 0.5])),
            ("c1_min", p([7.0, 8.0])),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect(),
    }
}

#[test]
fn new_ops_round_trip_in_both_clip_forms() {
    let g = activation_graph();
    g.validate().unwrap();
    for opset in [10, 17] {
        let m = to_proto_with_opset(&g, opset);
        assert_eq!(m.opset_import[0].version, opset);
        let gp = m.graph.as_ref().unwrap();
        // Per Clip node: its inputs and its (name, value) attributes.
        type ClipForm<'a> = (Vec<&'a str>, Vec<(&'a str, f32)>);
        let clips: Vec<ClipForm> = gp
            .node
            .iter()
            .filter(|n| n.op_type == "Clip")
            .map(|n| {
                let ins = n.input.iter().map(String::as_str).collect();
                let attrs = n.attribute.iter().map(|a| (a.name.as_str(), a.f)).collect();
                (ins, attrs)
            })
            .collect();
        let init = |name: &str| gp.initializer.iter().find(|t| t.name == name);
        if opset < 11 {
            assert_eq!(
                clips,
                [
                    (vec!["bn"], vec![("min", -1.0), ("max", 1.5)]),
                    (vec!["c1"], vec![("max", 1.0)]),
                    (vec!["c2"], vec![("min", -0.5)]),
                    (vec!["c3"], vec![]),
                ]
            );
            assert!(init("c1_max").is_none());
        } else {
            // `c1_min` is taken by an initializer, so the bound is `c1_min_1`;
            // an absent min before a present max is an empty name.
            assert_eq!(
                clips,
                [
                    (vec!["bn", "c1_min_1", "c1_max"], vec![]),
                    (vec!["c1", "", "c2_max"], vec![]),
                    (vec!["c2", "c3_min"], vec![]),
                    (vec!["c3"], vec![]),
                ]
            );
            let lo = init("c1_min_1").unwrap();
            assert_eq!(
                (lo.dims.as_slice(), lo.data_type),
                (&[][..], data_type::FLOAT)
            );
            assert_eq!(lo.raw_data, (-1.0f32).to_le_bytes());
            assert_eq!(init("c2_max").unwrap().raw_data, 1.0f32.to_le_bytes());
        }
        let attrs = |op: &str| -> Vec<(String, f32)> {
            let n = gp.node.iter().find(|n| n.op_type == op).unwrap();
            n.attribute.iter().map(|a| (a.name.clone(), a.f)).collect()
        };
        assert_eq!(attrs("BatchNormalization"), [("epsilon".into(), 1e-3)]);
        assert_eq!(attrs("LeakyRelu"), [("alpha".into(), 0.2)]);
        assert_eq!(
            attrs("HardSigmoid"),
            [("alpha".into(), 0.3), ("beta".into(), 0.4)]
        );
        assert_eq!(attrs("Identity"), []);

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("acts.onnx");
        save_onnx_with_opset(&g, &p, opset).unwrap();
        let back = load_onnx(&p).unwrap();
        // Equal graphs: the bound initializers were folded back into the
        // ops, and the unrelated `c1_min` survived.
        assert_eq!(back, g, "opset {opset}");
        let x = Tensor::fixed_seed(vec![1, 2, 1, 2], 5);
        assert_eq!(
            crate::reference::run_reference(&back, std::slice::from_ref(&x)).unwrap(),
            crate::reference::run_reference(&g, &[x]).unwrap()
        );
    }
}

/// Loads [`activation_graph`] written at `opset` after `edit` changed
/// the node named `name`.
fn load_edited_node(
    opset: i64,
    name: &str,
    edit: impl FnOnce(&mut NodeProto),
) -> Result<Graph, ModelError> {
    let mut m = to_proto_with_opset(&activation_graph(), opset);
    let gp = m.graph.as_mut().unwrap();
    edit(gp.node.iter_mut().find(|n| n.name == name).unwrap());
    let (_d, p) = write(&m);
    load_onnx(&p)
}

#[test]
fn batch_norm_attributes() {
    let bn_op = |g: Graph| g.nodes[0].op.clone();
    let g = load_edited_node(17, "bn", |n| n.attribute.clear()).unwrap();
    assert_eq!(bn_op(g), Op::BatchNormalization { epsilon: 1e-5 });
    let g = load_edited_node(17, "bn", |n| {
        n.attribute.push(attr_f("momentum", 0.9));
        n.attribute.push(attr_i("training_mode", 0));
        // Training outputs left out by empty names are not outputs.
        n.output.extend(["".to_string(), "".to_string()]);
    })
    .unwrap();
    assert_eq!(bn_op(g), Op::BatchNormalization { epsilon: 1e-3 });
    let g = load_edited_node(8, "bn", |n| n.attribute.push(attr_i("spatial", 1))).unwrap();
    assert_eq!(bn_op(g), Op::BatchNormalization { epsilon: 1e-3 });

    let err = |opset: i64, edit: &dyn Fn(&mut NodeProto)| {
        let e = load_edited_node(opset, "bn", edit).unwrap_err();
        assert!(matches!(e, ModelError::Unsupported { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.starts_with("node 'bn' (BatchNormalization): "), "{e}");
        e
    };
    let e = err(8, &|n| n.attribute.push(attr_i("spatial", 0)));
    assert!(
        e.contains("attribute 'spatial' = 0") && e.contains("only spatial = 1"),
        "{e}"
    );
    // Opset 9 removed `spatial`.
    let e = err(9, &|n| n.attribute.push(attr_i("spatial", 1)));
    assert!(e.ends_with("unsupported attribute 'spatial'"), "{e}");
    let e = err(17, &|n| n.attribute.push(attr_i("training_mode", 1)));
    assert!(e.contains("attribute 'training_mode' = 1"), "{e}");
    let e = err(6, &|n| n.attribute.push(attr_i("is_test", 1)));
    assert!(
        e.contains("attribute 'is_test'") && e.contains("before opset 7"),
        "{e}"
    );
    let e = err(6, &|n| {
        n.attribute.push(ints("consumed_inputs", &[0, 0, 0, 1, 1]))
    });
    assert!(e.contains("attribute 'consumed_inputs'"), "{e}");
    let e = err(17, &|n| n.attribute[0] = attr_i("epsilon", 1));
    assert!(e.contains("attribute 'epsilon' must be a float"), "{e}");
    let e = err(17, &|n| {
        n.output.extend(["rm", "rv", "sm", "sv"].map(String::from));
    });
    assert!(
        e.contains("5 outputs") && e.contains("training-mode"),
        "{e}"
    );

    // A scale of the wrong length is a shape error naming the node.
    let mut g = activation_graph();
    g.initializers
        .insert("s".into(), Tensor::new(vec![3], vec![1.0; 3]).unwrap());
    let (_d, p) = write(&to_proto(&g));
    let e = load_onnx(&p).unwrap_err();
    assert!(matches!(e, ModelError::Shape { .. }), "{e:?}");
    let e = e.to_string();
    assert!(
        e.contains("'bn'") && e.contains("scale [3]") && e.contains("[C] = [2]"),
        "{e}"
    );
}

/// MaxPool/AveragePool as files have them load with their geometry; a
/// missing kernel, a 1-D kernel and the Indices output are errors that
/// name the node.
#[test]
fn pools_load_and_refuse_what_grim_does_not_do() {
    let model = |edit: &dyn Fn(&mut NodeProto), outputs: &[&str]| {
        let mut node = node_proto("pool", "AveragePool", &["x"], outputs);
        node.attribute.push(ints("kernel_shape", &[3, 3]));
        node.attribute.push(ints("strides", &[2, 2]));
        node.attribute.push(ints("pads", &[1, 1, 1, 1]));
        edit(&mut node);
        let mut m = ModelProto {
            ir_version: 8,
            graph: Some(GraphProto {
                name: "pool".into(),
                node: vec![node],
                input: vec![vi_proto("x", &[1, 2, 7, 7])],
                output: vec![vi_proto("y", &[1, 2, 4, 4])],
                ..Default::default()
            }),
            ..Default::default()
        };
        opset_of(&mut m, 13);
        load_model(&m)
    };
    let g = model(&|_| {}, &["y"]).unwrap();
    let Op::Pool(pool) = &g.nodes[0].op else {
        panic!("{:?}", g.nodes[0].op)
    };
    assert_eq!(
        (pool.kernel, pool.strides, pool.pads),
        ([3, 3], [2, 2], [1; 4])
    );
    assert_eq!(g.infer_shapes().unwrap()["y"], [1, 2, 4, 4]);
    let e = model(&|n| n.attribute.remove(0).name.clear(), &["y"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'pool'") && e.contains("missing attribute 'kernel_shape'"),
        "{e}"
    );
    let e = model(&|n| n.attribute[0] = ints("kernel_shape", &[3]), &["y"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("only 2-D convolution and pooling"), "{e}");
    let e = model(&|n| n.op_type = "MaxPool".into(), &["y", "i"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("(MaxPool): expected exactly one output, got 2"),
        "{e}"
    );
}

/// ONNX Sum of three inputs (numpy broadcasting, opset 13) loads as a
/// left fold of two Adds, a Sum of one input as Identity, and both
/// compute what the file means.
#[test]
fn sum_folds_into_adds() {
    let sum = |inputs: &[&str]| {
        let mut m = ModelProto {
            ir_version: 8,
            opset_import: vec![],
            producer_name: "test".into(),
            graph: Some(GraphProto {
                name: "sum".into(),
                node: vec![node_proto("total", "Sum", inputs, &["y"])],
                initializer: vec![f32_init("c", &[3], &[100.0, 200.0, 300.0])],
                input: vec![vi_proto("a", &[2, 3]), vi_proto("b", &[2, 1])],
                output: vec![vi_proto("y", &[2, 3])],
                value_info: vec![],
            }),
        };
        opset_of(&mut m, 13);
        load_model(&m).unwrap()
    };
    let a = Tensor::new(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
    let b = Tensor::new(vec![2, 1], vec![10., 20.]).unwrap();
    let g = sum(&["a", "b", "c"]);
    let ops: Vec<_> = g.nodes.iter().map(|n| n.op.op_type()).collect();
    assert_eq!(ops, ["Add", "Add"]);
    assert_eq!(g.nodes[1].outputs, ["y"]);
    let y = crate::run_reference(&g, &[a.clone(), b.clone()]).unwrap();
    assert_eq!(y[0].data, [111., 212., 313., 124., 225., 326.]);
    let mut m = ModelProto {
        ir_version: 8,
        graph: Some(GraphProto {
            name: "one".into(),
            node: vec![node_proto("total", "Sum", &["a"], &["y"])],
            input: vec![vi_proto("a", &[2, 3])],
            output: vec![vi_proto("y", &[2, 3])],
            ..Default::default()
        }),
        ..Default::default()
    };
    opset_of(&mut m, 13);
    let g = load_model(&m).unwrap();
    assert_eq!(g.nodes[0].op.op_type(), "Identity");
    assert_eq!(
        crate::run_reference(&g, &[a]).unwrap()[0].data,
        [1., 2., 3., 4., 5., 6.]
    );
}

/// `x[4] -> Clip -> y1 -> Add(y1, hi) -> y` in the opset-13 input form,
/// with the bound names `lo` and `hi` and initializers edited by `edit`.
fn clip_model(lo: Option<&str>, edit: impl FnOnce(&mut GraphProto)) -> ModelProto {
    let mut m = ModelProto {
        ir_version: 8,
        opset_import: vec![],
        producer_name: "test".into(),
        graph: Some(GraphProto {
            name: "clip".into(),
            node: vec![
                node_proto("clip", "Clip", &["x", lo.unwrap_or(""), "hi"], &["y1"]),
                node_proto("add", "Add", &["y1", "hi"], &["y"]),
            ],
            initializer: vec![f32_init("hi", &[1], &[6.0])],
            input: vec![vi_proto("x", &[4])],
            output: vec![vi_proto("y", &[4])],
            value_info: vec![],
        }),
    };
    opset_of(&mut m, 13);
    edit(m.graph.as_mut().unwrap());
    m
}

pub(super) fn load_model(m: &ModelProto) -> Result<Graph, ModelError> {
    let (_d, p) = write(m);
    load_onnx(&p)
}

#[test]
fn clip_bounds_are_folded_constants() {
    // min from a Constant node, max from an initializer that Add also reads.
    let m = clip_model(Some("lo"), |g| {
        let mut c = node_proto("c", "Constant", &[], &["lo"]);
        c.attribute.push(AttributeProto {
            name: "value".into(),
            r#type: attr_type::TENSOR,
            t: Some(f32_init("", &[], &[-2.0])),
            ..Default::default()
        });
        g.node.insert(0, c);
    });
    let g = load_model(&m).unwrap();
    assert_eq!(
        g.nodes[0],
        node(
            "clip",
            Op::Clip {
                min: Some(-2.0),
                max: Some(6.0)
            },
            &["x"],
            "y1"
        )
    );
    // The folded `lo` is gone; `hi` stays because Add reads it.
    assert_eq!(g.initializers.keys().collect::<Vec<_>>(), ["hi"]);
    let x = Tensor::new(vec![4], vec![-3.0, 0.5, 5.0, 7.0]).unwrap();
    let y = crate::reference::run_reference(&g, &[x]).unwrap();
    assert_eq!(y[0].data, vec![4.0, 6.5, 11.0, 12.0]);
    // No min at all (an empty name before max).
    let g = load_model(&clip_model(None, |_| {})).unwrap();
    assert_eq!(
        g.nodes[0].op,
        Op::Clip {
            min: None,
            max: Some(6.0)
        }
    );

    let err = |m: &ModelProto| {
        let e = load_model(m).unwrap_err();
        assert!(matches!(e, ModelError::Unsupported { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.starts_with("node 'clip' (Clip): "), "{e}");
        e
    };
    // A lower bound computed at run time (here a graph input) is a Max
    // before the constant upper bound's Clip.
    let g = load_model(&clip_model(Some("lo"), |g| {
        g.input.push(vi_proto("lo", &[]))
    }))
    .unwrap();
    let ops: Vec<_> = g.nodes.iter().map(|n| n.op.clone()).collect();
    assert_eq!(
        ops[..2],
        [
            Op::Max,
            Op::Clip {
                min: None,
                max: Some(6.0)
            }
        ]
    );
    assert_eq!(g.nodes[0].inputs, ["x", "lo"]);
    assert_eq!(g.nodes[1].inputs, [g.nodes[0].outputs[0].as_str()]);
    assert_eq!(g.nodes[1].outputs, ["y1"]);
    let e = err(&clip_model(Some("lo"), |g| {
        g.input.push(vi_proto("lo", &[2]))
    }));
    assert!(
        e.contains("min input 'lo' must be a scalar") && e.contains("[2]"),
        "{e}"
    );
    let e = err(&clip_model(Some("lo"), |g| {
        g.initializer.push(f32_init("lo", &[2], &[0.0, 1.0]));
    }));
    assert!(
        e.contains("min input 'lo' must be a scalar") && e.contains("[2]"),
        "{e}"
    );
    let e = err(&clip_model(None, |g| {
        g.initializer[0] = f32_init("hi", &[1, 1], &[6.0]);
    }));
    assert!(e.contains("max input 'hi'") && e.contains("[1, 1]"), "{e}");
    // From opset 11 the attributes no longer exist.
    let e = err(&clip_model(None, |g| {
        g.node[0].attribute.push(attr_f("min", 0.0))
    }));
    assert!(
        e.contains("attribute 'min' is the Clip form before opset 11") && e.contains("opset 13"),
        "{e}"
    );
    // Before opset 11 the bounds are attributes and inputs are not allowed.
    let mut m = clip_model(None, |_| {});
    opset_of(&mut m, 10);
    let e = err(&m);
    assert!(e.contains("expected 1 input before opset 11"), "{e}");
}

/// Both bounds at run time: `Min(Max(x, lo), hi)`, so a lower bound above
/// the upper one gives the upper one, as ONNX's Clip does.
#[test]
fn clip_runtime_bounds_keep_the_onnx_order() {
    let m = clip_model(Some("lo"), |g| {
        g.initializer.clear();
        g.input.push(vi_proto("lo", &[]));
        g.input.push(vi_proto("hi", &[1]));
    });
    let g = load_model(&m).unwrap();
    let ops: Vec<_> = g.nodes.iter().map(|n| n.op.op_type()).collect();
    assert_eq!(ops, ["Max", "Min", "Add"]);
    let x = Tensor::new(vec![4], vec![-3.0, 0.5, 5.0, f32::NAN]).unwrap();
    let scalar = |v: f32, shape: Vec<usize>| Tensor::new(shape, vec![v]).unwrap();
    let y =
        crate::run_reference(&g, &[x.clone(), scalar(0.0, vec![]), scalar(4.0, vec![1])]).unwrap();
    // y = clip(x, 0, 4) + hi
    assert_eq!(y[0].data[..3], [4.0, 4.5, 8.0]);
    assert!(y[0].data[3].is_nan());
    let y = crate::run_reference(&g, &[x, scalar(5.0, vec![]), scalar(1.0, vec![1])]).unwrap();
    assert_eq!(y[0].data[..3], [2.0, 2.0, 2.0]);
}

/// ONNX Max and Min of three inputs fold left like Sum, broadcasting.
#[test]
fn max_and_min_fold_left() {
    for (op, expected) in [("Max", [10.0, 10.0, 300.0]), ("Min", [-1.0, -20.0, 3.0])] {
        let mut m = ModelProto {
            ir_version: 8,
            graph: Some(GraphProto {
                name: "m".into(),
                node: vec![node_proto("m", op, &["a", "b", "c"], &["y"])],
                initializer: vec![f32_init("c", &[3], &[-1.0, 5.0, 300.0])],
                input: vec![vi_proto("a", &[3]), vi_proto("b", &[1])],
                output: vec![vi_proto("y", &[3])],
                ..Default::default()
            }),
            ..Default::default()
        };
        opset_of(&mut m, 13);
        let g = load_model(&m).unwrap();
        assert_eq!(g.nodes.len(), 2, "{op}");
        let a = Tensor::new(vec![3], vec![0.0, -20.0, 3.0]).unwrap();
        let b = Tensor::new(vec![1], vec![10.0]).unwrap();
        assert_eq!(
            crate::run_reference(&g, &[a, b]).unwrap()[0].data,
            expected,
            "{op}"
        );
    }
}

#[test]
fn clip_attribute_form_before_opset_11() {
    let attr_form = |m: &mut ModelProto| {
        let gp = m.graph.as_mut().unwrap();
        gp.node[0].input.truncate(1);
        gp.node[0].attribute.push(attr_f("max", 2.5));
    };
    let mut m = clip_model(None, |_| {});
    attr_form(&mut m);
    opset_of(&mut m, 6);
    let g = load_model(&m).unwrap();
    assert_eq!(
        g.nodes[0].op,
        Op::Clip {
            min: None,
            max: Some(2.5)
        }
    );
    // A model importing no opset is read as opset 1: attributes as well.
    let mut m = clip_model(None, |_| {});
    attr_form(&mut m);
    m.opset_import.clear();
    assert_eq!(load_model(&m).unwrap(), g);
    // "ai.onnx" names the default domain too.
    let mut m = clip_model(None, |_| {});
    attr_form(&mut m);
    m.opset_import[0] = OperatorSetIdProto {
        domain: "ai.onnx".into(),
        version: 10,
    };
    assert_eq!(load_model(&m).unwrap(), g);
    m.opset_import[0].version = 11;
    let e = load_model(&m).unwrap_err().to_string();
    assert!(e.contains("attribute 'max' is the Clip form"), "{e}");
}

/// `x[2, 3] -> Dropout(x, ratio?, training_mode?) -> [y, mask?]`, then `edit`.
fn dropout_model(ins: &[&str], outs: &[&str], edit: impl FnOnce(&mut GraphProto)) -> ModelProto {
    let mut m = ModelProto {
        ir_version: 8,
        opset_import: vec![],
        producer_name: "test".into(),
        graph: Some(GraphProto {
            name: "dropout".into(),
            node: vec![node_proto("drop", "Dropout", ins, outs)],
            initializer: vec![f32_init("ratio", &[], &[0.3]), bool_init("tm", false)],
            input: vec![vi_proto("x", &[2, 3])],
            output: vec![vi_proto("y", &[2, 3])],
            value_info: vec![],
        }),
    };
    opset_of(&mut m, 13);
    edit(m.graph.as_mut().unwrap());
    m
}

#[test]
fn dropout_loads_as_identity() {
    let identity = node("drop", Op::Identity, &["x"], "y");
    let g = load_model(&dropout_model(
        &["x", "ratio", "tm"],
        &["y", "mask"],
        |_| {},
    ))
    .unwrap();
    assert_eq!(g.nodes, std::slice::from_ref(&identity));
    // The folded ratio is not left behind as a weight.
    assert!(g.initializers.is_empty(), "{:?}", g.initializers.keys());
    let x = Tensor::fixed_seed(vec![2, 3], 9);
    let y = crate::reference::run_reference(&g, std::slice::from_ref(&x)).unwrap();
    assert_eq!(y[0], x);
    // The older attribute form, and training_mode as an INT64 Constant
    // 0 with the ratio omitted.
    let m = dropout_model(&["x"], &["y"], |g| {
        g.node[0].attribute = vec![attr_f("ratio", 0.5), attr_i("seed", 3)];
    });
    assert_eq!(
        load_model(&m).unwrap().nodes,
        std::slice::from_ref(&identity)
    );
    let m = dropout_model(&["x", "", "zero"], &["y"], |g| {
        let mut c = node_proto("c", "Constant", &[], &["zero"]);
        c.attribute.push(AttributeProto {
            name: "value".into(),
            r#type: attr_type::TENSOR,
            t: Some(TensorProto {
                data_type: data_type::INT64,
                int64_data: vec![0],
                ..Default::default()
            }),
            ..Default::default()
        });
        g.node.insert(0, c);
    });
    assert_eq!(load_model(&m).unwrap().nodes, [identity]);

    let err = |m: &ModelProto| {
        let e = load_model(m).unwrap_err();
        assert!(matches!(e, ModelError::Unsupported { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.starts_with("node 'drop' (Dropout): "), "{e}");
        e
    };
    let e = err(&dropout_model(&["x", "ratio", "tm"], &["y"], |g| {
        g.initializer[1] = bool_init("tm", true);
    }));
    assert!(e.contains("training_mode input 'tm' is true"), "{e}");
    let e = err(&dropout_model(&["x", "ratio", "tm"], &["y"], |g| {
        g.initializer.truncate(1);
        g.input.push(vi_proto("tm", &[]));
    }));
    assert!(
        e.contains("training_mode input 'tm' must be a constant false"),
        "{e}"
    );
    // A ratio computed at run time scales nothing in inference either.
    let m = dropout_model(&["x", "r"], &["y"], |g| g.input.push(vi_proto("r", &[])));
    assert_eq!(load_model(&m).unwrap().nodes[0].op, Op::Identity);
    let e = err(&dropout_model(&["x", "r"], &["y"], |_| {}));
    assert!(
        e.contains("ratio input 'r' is not defined before this node"),
        "{e}"
    );
    // A mask that something reads cannot be dropped.
    let e = err(&dropout_model(&["x"], &["y", "mask"], |g| {
        g.node.push(node_proto("use", "Relu", &["mask"], &["z"]));
    }));
    assert!(e.contains("the mask output 'mask' is used"), "{e}");
    let e = err(&dropout_model(&["x"], &["y", "mask"], |g| {
        g.output.push(vi_proto("mask", &[2, 3]));
    }));
    assert!(e.contains("the mask output 'mask' is used"), "{e}");
    let e = err(&dropout_model(&["x"], &["y", "mask", "more"], |_| {}));
    assert!(e.contains("expected exactly one output, got 3"), "{e}");
    let e = err(&dropout_model(&["x"], &["y"], |g| {
        g.node[0].attribute.push(attr_i("is_test", 1));
    }));
    assert!(e.ends_with("unsupported attribute 'is_test'"), "{e}");
}

#[test]
fn activation_defaults_and_attributes() {
    let op_of = |name: &str, edit: &dyn Fn(&mut NodeProto)| {
        let g = load_edited_node(17, name, edit).unwrap();
        g.nodes.into_iter().find(|n| n.name == name).unwrap().op
    };
    assert_eq!(
        op_of("lr", &|n| n.attribute.clear()),
        Op::LeakyRelu { alpha: 0.01 }
    );
    assert_eq!(
        op_of("hs", &|n| n.attribute.clear()),
        Op::HardSigmoid {
            alpha: 0.2,
            beta: 0.5
        }
    );
    assert_eq!(
        op_of("hs", &|n| n.attribute.truncate(1)),
        Op::HardSigmoid {
            alpha: 0.3,
            beta: 0.5
        }
    );
    for (name, op) in [
        ("sg", "Sigmoid"),
        ("th", "Tanh"),
        ("hw", "HardSwish"),
        ("id", "Identity"),
    ] {
        let e = load_edited_node(17, name, |n| n.attribute.push(attr_f("alpha", 1.0)))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("node '{name}' ({op}): unsupported attribute 'alpha'")
        );
    }
    let e = load_edited_node(17, "lr", |n| n.attribute.push(attr_f("beta", 1.0)))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "node 'lr' (LeakyRelu): unsupported attribute 'beta'");
    // Clip's data input cannot be omitted.
    let e = load_edited_node(17, "c2", |n| n.input[0].clear())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'c2'") && e.contains("data input is omitted"),
        "{e}"
    );
}

/// Transpose: the default perm reverses the dims; a perm that is not a
/// permutation is a shape error naming the node.
#[test]
fn transpose_perm_default_and_errors() {
    let transpose = |perm: Option<Vec<i64>>| {
        let mut node = node_proto("t", "Transpose", &["x"], &["y"]);
        if let Some(perm) = perm {
            node.attribute.push(AttributeProto {
                name: "perm".into(),
                r#type: attr_type::INTS,
                ints: perm,
                ..Default::default()
            });
        }
        let mut m = ModelProto {
            ir_version: 8,
            graph: Some(GraphProto {
                name: "t".into(),
                node: vec![node],
                input: vec![vi_proto("x", &[2, 3, 4])],
                output: vec![],
                ..Default::default()
            }),
            ..Default::default()
        };
        opset_of(&mut m, 13);
        load_model(&m)
    };
    let g = transpose(None).unwrap();
    assert_eq!(
        g.nodes[0].op,
        Op::Transpose {
            perm: vec![2, 1, 0]
        }
    );
    let g = transpose(Some(vec![1, 2, 0])).unwrap();
    let x = Tensor::new(vec![2, 3, 4], (0..24).map(|i| i as f32).collect()).unwrap();
    g.validate().unwrap();
    let mut g = g;
    g.outputs = vec![ValueInfo {
        name: "y".into(),
        shape: vec![3, 4, 2],
    }];
    let y = crate::run_reference(&g, &[x]).unwrap();
    // y[i, j, k] = x[k, i, j]: y[0, 1, 1] = x[1, 0, 1] = 13.
    assert_eq!(y[0].shape, [3, 4, 2]);
    assert_eq!(y[0].data[3], 13.0);
    for bad in [vec![0, 0, 1], vec![0, 1], vec![0, 1, 3], vec![0, 1, -1]] {
        let e = transpose(Some(bad.clone())).unwrap_err().to_string();
        assert!(
            e.contains("node 't'") && e.contains("not a permutation"),
            "{bad:?}: {e}"
        );
    }
}

/// PyTorch's `x.view(x.size(0), -1)`: Shape -> Gather -> Unsqueeze ->
/// Concat -> Reshape, folded at import into one Reshape; and an old
/// converter's weight made by ConstantOfShape, then Cast, Slice, Squeeze.
#[test]
fn shape_chains_and_constant_of_shape_fold_at_import() {
    let int_init = |name: &str, dims: &[i64], values: &[i64]| TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::INT64,
        int64_data: values.to_vec(),
        ..Default::default()
    };
    let with_int = |mut n: NodeProto, name: &str, value: i64| {
        n.attribute.push(attr_i(name, value));
        n
    };
    let mut fill = node_proto("fill", "ConstantOfShape", &["wshape"], &["w0"]);
    fill.attribute.push(AttributeProto {
        name: "value".into(),
        r#type: attr_type::TENSOR,
        t: Some(f32_init("", &[1], &[0.5])),
        ..Default::default()
    });
    let mut m = ModelProto {
        ir_version: 8,
        graph: Some(GraphProto {
            name: "view".into(),
            node: vec![
                node_proto("shape", "Shape", &["x"], &["s"]),
                with_int(
                    node_proto("gather", "Gather", &["s", "zero"], &["n"]),
                    "axis",
                    0,
                ),
                node_proto("unsq", "Unsqueeze", &["n", "axes0"], &["n1"]),
                with_int(
                    node_proto("cat", "Concat", &["n1", "minus1"], &["target"]),
                    "axis",
                    0,
                ),
                node_proto("view", "Reshape", &["x", "target"], &["flat"]),
                fill,
                // [1, 12, 5] -> slice the first 6 of 12 -> squeeze to [6, 5]
                node_proto(
                    "slice",
                    "Slice",
                    &["w0", "starts", "ends", "axes1"],
                    &["w1"],
                ),
                node_proto("squeeze", "Squeeze", &["w1", "axes0"], &["w"]),
                with_int(node_proto("cast", "Cast", &["w"], &["wf"]), "to", 1),
                node_proto("fc", "Gemm", &["flat", "wf"], &["y"]),
            ],
            initializer: vec![
                int_init("zero", &[], &[0]),
                int_init("axes0", &[1], &[0]),
                int_init("minus1", &[1], &[-1]),
                int_init("wshape", &[3], &[1, 12, 5]),
                int_init("starts", &[1], &[0]),
                int_init("ends", &[1], &[6]),
                int_init("axes1", &[1], &[1]),
            ],
            input: vec![vi_proto("x", &[2, 3, 2])],
            output: vec![vi_proto("y", &[2, 5])],
            ..Default::default()
        }),
        ..Default::default()
    };
    opset_of(&mut m, 13);
    let g = load_model(&m).unwrap();
    let ops: Vec<_> = g.nodes.iter().map(|n| n.op.op_type()).collect();
    assert_eq!(ops, ["Reshape", "Gemm"]);
    assert_eq!(g.nodes[0].op, Op::Reshape { shape: vec![2, -1] });
    // Only the folded weight remains, [6, 5] of 0.5.
    assert_eq!(g.initializers.keys().collect::<Vec<_>>(), ["wf"]);
    assert_eq!(g.initializers["wf"].shape, [6, 5]);
    assert!(g.initializers["wf"].data.iter().all(|v| *v == 0.5));
    let x = Tensor::new(vec![2, 3, 2], (0..12).map(|i| i as f32).collect()).unwrap();
    let y = crate::run_reference(&g, &[x]).unwrap();
    // Row 0 sums 0..6 = 15, times 0.5.
    assert_eq!(y[0].data[0], 7.5);

    // Gather of an activation is not folded and says so.
    let mut bad = m.clone();
    bad.graph.as_mut().unwrap().node[1].input[0] = "x".into();
    let e = load_model(&bad).unwrap_err().to_string();
    assert!(
        e.contains("node 'gather' (Gather)") && e.contains("computed at run time"),
        "{e}"
    );
}

/// Squeeze and Unsqueeze of activations are reshapes, in both forms.
#[test]
fn squeeze_and_unsqueeze_of_activations_are_reshapes() {
    for opset in [11, 13] {
        let mut squeeze = node_proto("sq", "Squeeze", &["x"], &["a"]);
        let mut unsqueeze = node_proto("unsq", "Unsqueeze", &["a"], &["y"]);
        let mut initializer = vec![];
        if opset < 13 {
            squeeze.attribute.push(AttributeProto {
                name: "axes".into(),
                r#type: attr_type::INTS,
                ints: vec![-1],
                ..Default::default()
            });
            unsqueeze.attribute.push(AttributeProto {
                name: "axes".into(),
                r#type: attr_type::INTS,
                ints: vec![0, 2],
                ..Default::default()
            });
        } else {
            squeeze.input.push("sq_axes".into());
            unsqueeze.input.push("unsq_axes".into());
            initializer.push(TensorProto {
                name: "sq_axes".into(),
                dims: vec![1],
                data_type: data_type::INT64,
                int64_data: vec![-1],
                ..Default::default()
            });
            initializer.push(TensorProto {
                name: "unsq_axes".into(),
                dims: vec![2],
                data_type: data_type::INT64,
                int64_data: vec![0, 2],
                ..Default::default()
            });
        }
        let mut m = ModelProto {
            ir_version: 8,
            graph: Some(GraphProto {
                name: "sq".into(),
                node: vec![squeeze, unsqueeze],
                initializer,
                input: vec![vi_proto("x", &[3, 4, 1])],
                output: vec![],
                ..Default::default()
            }),
            ..Default::default()
        };
        opset_of(&mut m, opset);
        let g = load_model(&m).unwrap();
        let ops: Vec<_> = g.nodes.iter().map(|n| n.op.clone()).collect();
        assert_eq!(
            ops,
            [
                Op::Reshape { shape: vec![3, 4] },
                Op::Reshape {
                    shape: vec![1, 3, 1, 4]
                }
            ],
            "opset {opset}"
        );
        assert!(g.initializers.is_empty());
    }
}

/// Softmax: opset 13 reduces its axis, earlier opsets every dim from it;
/// a graph's span survives a write at either kind of opset (spans the
/// opset cannot say in one node are written as Transpose/Flatten chains).
#[test]
fn softmax_spans_load_and_round_trip_at_both_semantics() {
    let x = Tensor::new(
        vec![2, 3, 4],
        (0..24).map(|i| (i as f32 * 0.7).sin() * 3.0).collect(),
    )
    .unwrap();
    for (axis, axis_end) in [(1, 2), (1, 3), (0, 1), (2, 3), (0, 3)] {
        let g = Graph {
            name: "softmax".into(),
            inputs: vec![ValueInfo {
                name: "x".into(),
                shape: vec![2, 3, 4],
            }],
            outputs: vec![ValueInfo {
                name: "y".into(),
                shape: vec![2, 3, 4],
            }],
            nodes: vec![node("sm", Op::Softmax { axis, axis_end }, &["x"], "y")],
            initializers: BTreeMap::new(),
        };
        let want = crate::run_reference(&g, std::slice::from_ref(&x)).unwrap();
        // Every slice over the span sums to one.
        let span: usize = [2, 3, 4][axis..axis_end].iter().product();
        let total: f32 = want[0].data.iter().sum();
        assert!(
            (total - (24 / span) as f32).abs() < 1e-4,
            "{axis}..{axis_end}: {total}"
        );
        for opset in [11, 17] {
            let (_d, p) = write(&to_proto_with_opset(&g, opset));
            let back = load_onnx(&p).unwrap();
            let got = crate::run_reference(&back, std::slice::from_ref(&x)).unwrap();
            for (a, b) in got[0].data.iter().zip(&want[0].data) {
                assert!(
                    (a - b).abs() < 1e-6,
                    "{axis}..{axis_end} at opset {opset}: {a} vs {b}"
                );
            }
        }
    }
    // The default axis: 1 before opset 13 (all trailing dims), -1 from 13.
    let mut m = ModelProto {
        ir_version: 8,
        graph: Some(GraphProto {
            name: "d".into(),
            node: vec![node_proto("sm", "Softmax", &["x"], &["y"])],
            input: vec![vi_proto("x", &[2, 3, 4])],
            output: vec![vi_proto("y", &[2, 3, 4])],
            ..Default::default()
        }),
        ..Default::default()
    };
    opset_of(&mut m, 11);
    assert_eq!(
        load_model(&m).unwrap().nodes[0].op,
        Op::Softmax {
            axis: 1,
            axis_end: 3
        }
    );
    opset_of(&mut m, 13);
    assert_eq!(
        load_model(&m).unwrap().nodes[0].op,
        Op::Softmax {
            axis: 2,
            axis_end: 3
        }
    );
}
