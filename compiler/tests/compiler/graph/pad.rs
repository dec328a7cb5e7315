//! ONNX Pad in every mode, as a model's input padding before a conv
//! (PyTorch's `nn.ReflectionPad2d` and `padding_mode="replicate"` export
//! as Pad + Conv), through ONNX files of both forms (attributes before
//! opset 11, constant inputs after) and compiled for the host and aarch64
//! (qemu), against the reference.

use crate::common::*;
use grim_model::{
    conv_layer, load_onnx, pad::PadMode, run_reference, save_onnx_with_opset, Graph, Node, Op,
};

/// `x[1, 2, 5, 9] -> Pad(mode, pads, value) -> conv 3x3 (no padding) -> y`.
fn pad_then_conv(mode: PadMode, pads: [usize; 8], value: f32) -> Graph {
    let (h, w) = (5 + pads[2] + pads[6], 9 + pads[3] + pads[7]);
    let mut graph = conv_layer(
        1,
        2,
        h,
        w,
        4,
        [3, 3],
        [1, 1],
        [0; 4],
        [1, 1],
        true,
        lcg_input(vec![4, 2 * 9], 3).data,
    )
    .unwrap();
    let x = graph.inputs[0].name.clone();
    graph.nodes.insert(
        0,
        Node {
            name: "pad".into(),
            op: Op::Pad {
                mode,
                pads: pads.to_vec(),
                value,
            },
            inputs: vec![x.clone()],
            outputs: vec!["padded".into()],
        },
    );
    graph.nodes[1].inputs[0] = "padded".into();
    graph.inputs[0].shape = vec![1, 2, 5, 9];
    graph
}

#[test]
fn pads_of_every_mode_match_the_reference_through_onnx_on_host_and_aarch64() {
    let dir = tempfile::tempdir().unwrap();
    let x = lcg_input(vec![1, 2, 5, 9], 17);
    for (mode, pads, value) in [
        (PadMode::Constant, [0, 0, 1, 2, 0, 0, 2, 1], 0.75),
        (PadMode::Reflect, [0, 0, 2, 3, 0, 0, 1, 4], 0.0),
        (PadMode::Edge, [0, 0, 3, 1, 0, 0, 0, 5], 0.0),
        (PadMode::Wrap, [0, 0, 1, 11, 0, 0, 2, 0], 0.0),
    ] {
        let graph = pad_then_conv(mode, pads, value);
        let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
        // Both ONNX forms load back to the same graph.
        for opset in [10, 18] {
            let path = dir.path().join(format!("{mode}-{opset}.onnx"));
            save_onnx_with_opset(&graph, &path, opset).unwrap();
            assert_eq!(load_onnx(&path).unwrap(), graph, "{mode} at opset {opset}");
        }
        for target in ["host", "aarch64-linux-gnu"] {
            let actual = compile_and_run(&graph, target, (4, 8), true, 1, std::slice::from_ref(&x));
            assert_close(&actual, &expected);
        }
    }
}
