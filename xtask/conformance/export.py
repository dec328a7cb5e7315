"""Exports the ONNX project's node tests for the ops grim claims, and the
onnx package's light models whose ops it claims (with random weights,
against onnxruntime).

Usage: python export.py MANIFEST.json OUT_DIR

For every node test case (onnx.backend.test.case.node.collect_testcases)
whose graph uses only ops listed under "ops" in the manifest, writes
OUT_DIR/<case>/model.onnx, input_<i>.npy and output_<i>.npy (its first data
set), and OUT_DIR/cases.json describing them. grim compiles for static
shapes, so a graph input that is not float32 (shapes, axes, pads, indices)
is baked into an initializer with the case's value, and the case's model
then takes only its float32 inputs; cases.json records what was baked.
"""

import json
import os
import sys
import warnings

import numpy as np
import onnx
from onnx import numpy_helper


def main() -> None:
    manifest_path, out_dir = sys.argv[1], sys.argv[2]
    with open(manifest_path) as f:
        manifest = json.load(f)
    claimed = set(manifest["ops"])
    with warnings.catch_warnings():
        # Some generators (Cast, ReduceLogSum...) warn while making their data.
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        cases = collect_testcases(None)
    os.makedirs(out_dir, exist_ok=True)
    described = []
    for case in sorted(cases, key=lambda c: c.name):
        ops = sorted({node.op_type for node in case.model.graph.node})
        if not ops or not set(ops) <= claimed or not case.data_sets:
            continue
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        inputs, outputs = case.data_sets[0]
        graph = model.graph
        kept_inputs, kept_values, baked = [], [], []
        for value_info, value in zip(list(graph.input), inputs):
            array = np.asarray(value)
            if array.dtype == np.float32:
                kept_inputs.append(value_info)
                kept_values.append(array)
            else:
                graph.initializer.append(numpy_helper.from_array(array, value_info.name))
                baked.append(value_info.name)
        del graph.input[:]
        graph.input.extend(kept_inputs)
        case_dir = os.path.join(out_dir, case.name)
        os.makedirs(case_dir, exist_ok=True)
        onnx.save(model, os.path.join(case_dir, "model.onnx"))
        for i, array in enumerate(kept_values):
            np.save(os.path.join(case_dir, f"input_{i}.npy"), array)
        output_dtypes = []
        for i, value in enumerate(outputs):
            array = np.asarray(value)
            output_dtypes.append(str(array.dtype))
            np.save(os.path.join(case_dir, f"output_{i}.npy"), array)
        opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        described.append(
            {
                "name": case.name,
                "kind": "node",
                "ops": ops,
                "opset": opsets.get("ai.onnx", 0),
                "inputs": len(kept_values),
                "outputs": len(outputs),
                "output_dtypes": output_dtypes,
                "baked": baked,
                "rtol": float(case.rtol),
                "atol": float(case.atol),
            }
        )
    described.extend(variants(cases, claimed, out_dir))
    described.extend(light_models(claimed, out_dir))
    described.extend(recurrent_cases(claimed, out_dir))
    described.extend(batch_first_cases(claimed, out_dir))
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(
            {"onnx": onnx.__version__, "cases": described}, f, indent=1, sort_keys=True
        )
    print(f"exported {len(described)} node test cases for {len(claimed)} ops (onnx {onnx.__version__})")


# Node tests whose data is not float32 only because of how the generator
# wrote them, or whose op parameter is a graph input where exporters write
# an initializer; each also runs as a variant grim can compile (kind
# "variant"), so the op's semantics are checked against onnx's own
# reference. "float": integer data and outputs as float32, the expected
# output recomputed by onnx.reference.ReferenceEvaluator; "baked": every
# input after the first baked into an initializer, the expected output the
# case's own.
VARIANTS = {
    "test_edge_pad": "float",
    "test_reflect_pad": "float",
    "test_wrap_pad": "float",
    "test_constant_pad": "baked",
    "test_constant_pad_axes": "baked",
    "test_constant_pad_negative_axes": "baked",
}


def variants(cases, claimed: set, out_dir: str) -> list:
    from onnx import TensorProto
    from onnx.reference import ReferenceEvaluator

    described = []
    for case in sorted(cases, key=lambda c: c.name):
        how = VARIANTS.get(case.name)
        ops = sorted({node.op_type for node in case.model.graph.node})
        if how is None or not set(ops) <= claimed or not case.data_sets:
            continue
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        graph = model.graph
        inputs, outputs = case.data_sets[0]
        inputs = [np.asarray(v) for v in inputs]
        if how == "float":
            graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
            for value_info in graph.output:
                if value_info.type.tensor_type.elem_type in (TensorProto.INT32, TensorProto.INT64):
                    value_info.type.tensor_type.elem_type = TensorProto.FLOAT
            inputs[0] = inputs[0].astype(np.float32)
        first = onnx.ValueInfoProto()
        first.CopyFrom(graph.input[0])
        baked = []
        for value_info, value in zip(list(graph.input)[1:], inputs[1:]):
            graph.initializer.append(numpy_helper.from_array(value, value_info.name))
            baked.append(value_info.name)
        del graph.input[:]
        graph.input.append(first)
        kept = [inputs[0]]
        if how == "float":
            outputs = ReferenceEvaluator(model).run(None, {first.name: inputs[0]})
        name = f"{case.name}_{how}"
        case_dir = os.path.join(out_dir, name)
        os.makedirs(case_dir, exist_ok=True)
        onnx.save(model, os.path.join(case_dir, "model.onnx"))
        for i, array in enumerate(kept):
            np.save(os.path.join(case_dir, f"input_{i}.npy"), array)
        for i, value in enumerate(outputs):
            np.save(os.path.join(case_dir, f"output_{i}.npy"), np.asarray(value))
        opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        described.append(
            {
                "name": name,
                "kind": "variant",
                "ops": ops,
                "opset": opsets.get("ai.onnx", 0),
                "inputs": len(kept),
                "outputs": len(outputs),
                "output_dtypes": [str(np.asarray(v).dtype) for v in outputs],
                "baked": baked,
                "rtol": float(case.rtol),
                "atol": float(case.atol),
            }
        )
    return described


def light_models(claimed: set, out_dir: str) -> list:
    """The onnx package's light models (AlexNet, ResNet-50, VGG-19, ...:
    opset 9 graphs, initializers listed as inputs) whose ops grim claims.

    Their weights are made by ConstantOfShape, one value per tensor, which
    hides any indexing mistake (every output channel computes the same), and
    their shipped expected outputs come from onnx's ReferenceEvaluator, whose
    LRN sums over the batch dim instead of the channels. So each weight is
    replaced by seeded random values (He-scaled by its fan-in, 1-D tensors
    in [0.5, 1.5] so variances stay positive) and the expected output is
    onnxruntime's; the input is arange(n)/n, as the ONNX backend runner
    feeds these models."""
    import onnxruntime
    from onnx.backend.test.case.model import collect_testcases

    root = os.path.dirname(os.path.dirname(onnx.__file__))
    described = []
    for case in collect_testcases():
        if case.kind != "real" or not case.url:
            continue
        path = os.path.join(root, case.url)
        if not os.path.exists(path):
            continue
        model = onnx.load(path)
        ops = sorted({node.op_type for node in model.graph.node})
        if not set(ops) <= claimed:
            continue
        randomize_weights(model, seed=len(described))
        case_dir = os.path.join(out_dir, case.name)
        os.makedirs(case_dir, exist_ok=True)
        model_path = os.path.join(case_dir, "model.onnx")
        onnx.save(model, model_path)
        initializers = {t.name for t in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initializers]
        feeds = {}
        for i, value_info in enumerate(inputs):
            shape = tuple(
                d.dim_value if d.HasField("dim_value") else 1
                for d in value_info.type.tensor_type.shape.dim
            )
            n = int(np.prod(shape))
            array = (np.arange(n).reshape(shape) / n).astype(np.float32)
            feeds[value_info.name] = array
            np.save(os.path.join(case_dir, f"input_{i}.npy"), array)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = onnxruntime.InferenceSession(
            model_path, options, providers=["CPUExecutionProvider"]
        )
        outputs = session.run(None, feeds)
        for i, array in enumerate(outputs):
            np.save(os.path.join(case_dir, f"output_{i}.npy"), array)
        opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        described.append(
            {
                "name": case.name,
                "kind": "model",
                "ops": ops,
                "opset": opsets.get("ai.onnx", 0),
                "inputs": len(inputs),
                "outputs": len(outputs),
                "output_dtypes": [str(a.dtype) for a in outputs],
                "baked": [],
                "rtol": 1e-3,
                "atol": 1e-5,
            }
        )
    return described


# What the node tests of GRU, LSTM and RNN barely cover (sequence_lens,
# clip, input_forget, bidirectional with initial states, batch-major
# layout, non-default activations), each as a small model with seeded
# random weights as initializers and onnxruntime's outputs as the expected
# ones, since grim's own reference cannot catch a misreading of the spec.
# (op, name, attributes, seq, batch, input, hidden, sequence_lens, optional inputs)
RECURRENT = [
    ("GRU", "sequence_lens", {}, 4, 3, 3, 5, [4, 2, 1], ["B", "initial_h"]),
    ("GRU", "sequence_lens_bidirectional_lbr", {"direction": "bidirectional", "linear_before_reset": 1}, 4, 3, 3, 5, [1, 4, 3], ["B", "initial_h"]),
    ("GRU", "clip_reverse", {"clip": 0.5, "direction": "reverse"}, 3, 2, 4, 6, None, ["B"]),
    ("GRU", "activations", {"activations": ["HardSigmoid", "LeakyRelu"], "activation_alpha": [0.3, 0.2], "activation_beta": [0.4]}, 3, 2, 3, 4, None, ["B"]),
    ("GRU", "layout1_bidirectional", {"direction": "bidirectional", "layout": 1, "linear_before_reset": 1}, 3, 2, 3, 4, None, ["B", "initial_h"]),
    ("LSTM", "input_forget", {"input_forget": 1}, 4, 2, 3, 5, None, ["B", "initial_h", "initial_c"]),
    ("LSTM", "clip_peepholes", {"clip": 0.3}, 3, 2, 3, 4, None, ["B", "initial_h", "initial_c", "P"]),
    ("LSTM", "sequence_lens_reverse_peepholes", {"direction": "reverse"}, 4, 3, 2, 4, [2, 4, 3], ["B", "initial_h", "initial_c", "P"]),
    ("LSTM", "bidirectional_batch", {"direction": "bidirectional"}, 3, 4, 3, 8, None, ["B", "initial_h", "initial_c"]),
    ("LSTM", "layout1", {"layout": 1}, 3, 2, 3, 4, None, ["B", "initial_h", "initial_c"]),
    ("RNN", "relu_bidirectional_sequence_lens", {"direction": "bidirectional", "activations": ["Relu", "Relu"]}, 4, 2, 3, 5, [3, 4], ["B", "initial_h"]),
    ("RNN", "clip_layout1", {"clip": 0.8, "layout": 1}, 3, 2, 2, 4, None, ["B", "initial_h"]),
]


def recurrent_cases(claimed: set, out_dir: str) -> list:
    """RECURRENT's models, expected outputs by onnxruntime. onnxruntime
    has no batch-major (layout 1) kernels, so such a case's expected
    outputs are the layout-0 model's, transposed."""
    import onnxruntime
    from onnx import TensorProto, helper

    described = []
    for index, (op, label, attrs, seq, batch, inp, hidden, lens, optional) in enumerate(RECURRENT):
        if op not in claimed:
            continue
        rng = np.random.default_rng(1000 + index)
        gates = {"GRU": 3, "LSTM": 4, "RNN": 1}[op]
        dirs = 2 if attrs.get("direction") == "bidirectional" else 1
        layout = attrs.get("layout", 0)
        arrays = {
            "W": rng.standard_normal((dirs, gates * hidden, inp)) * 0.6,
            "R": rng.standard_normal((dirs, gates * hidden, hidden)) * 0.6,
            "B": rng.standard_normal((dirs, 2 * gates * hidden)) * 0.3,
            "initial_h": rng.standard_normal((dirs, batch, hidden)),
            "initial_c": rng.standard_normal((dirs, batch, hidden)),
            "P": rng.standard_normal((dirs, 3 * hidden)) * 0.5,
        }
        x = rng.standard_normal((seq, batch, inp)).astype(np.float32)
        outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])

        def model(layout: int):
            inits = []
            names = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
            inputs = []
            for name in names[: {"GRU": 6, "RNN": 6, "LSTM": 8}[op]]:
                if name == "X":
                    inputs.append("X")
                elif name == "sequence_lens":
                    if lens is None:
                        inputs.append("")
                    else:
                        inits.append(numpy_helper.from_array(np.array(lens, np.int32), "sequence_lens"))
                        inputs.append("sequence_lens")
                elif name in ("W", "R") or name in optional:
                    value = arrays[name].astype(np.float32)
                    if layout == 1 and name in ("initial_h", "initial_c"):
                        value = np.swapaxes(value, 0, 1).copy()
                    inits.append(numpy_helper.from_array(value, name))
                    inputs.append(name)
                else:
                    inputs.append("")
            while inputs and inputs[-1] == "":
                inputs.pop()
            node_attrs = dict(attrs, hidden_size=hidden)
            node_attrs["layout"] = layout
            node = helper.make_node(op, inputs, outputs, name=f"{op.lower()}_{label}", **node_attrs)
            x_shape = list(x.shape) if layout == 0 else [batch, seq, inp]
            graph = helper.make_graph(
                [node],
                label,
                [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
                [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                inits,
            )
            return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])

        reference = model(0)
        session = onnxruntime.InferenceSession(
            reference.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        expected = session.run(None, {"X": x})
        feed = x
        if layout == 1:
            feed = np.swapaxes(x, 0, 1).copy()
            expected = [np.transpose(expected[0], (2, 0, 1, 3)).copy()] + [
                np.swapaxes(e, 0, 1).copy() for e in expected[1:]
            ]
        name = f"grim_{op.lower()}_{label}"
        case_dir = os.path.join(out_dir, name)
        os.makedirs(case_dir, exist_ok=True)
        onnx.save(model(layout), os.path.join(case_dir, "model.onnx"))
        np.save(os.path.join(case_dir, "input_0.npy"), feed)
        for i, array in enumerate(expected):
            np.save(os.path.join(case_dir, f"output_{i}.npy"), array)
        described.append(
            {
                "name": name,
                "kind": "onnxruntime",
                "ops": [op],
                "opset": 14,
                "inputs": 1,
                "outputs": len(expected),
                "output_dtypes": [str(a.dtype) for a in expected],
                "baked": [],
                "rtol": 1e-4,
                "atol": 1e-6,
            }
        )
    return described


# PyTorch's export of `nn.GRU(batch_first=True)` (a Transpose around the
# GRU, the direction axis squeezed: Squeeze's axes an attribute before
# opset 13, an input from 13), at the oldest opset grim reads and a recent
# one; expected outputs by onnxruntime.
BATCH_FIRST_OPSETS = [7, 13]


def batch_first_cases(claimed: set, out_dir: str) -> list:
    import onnxruntime
    from onnx import TensorProto, helper

    if not {"GRU", "Transpose", "Squeeze"} <= claimed:
        return []
    described = []
    batch, seq, inp, hidden = 2, 5, 4, 6
    for opset in BATCH_FIRST_OPSETS:
        rng = np.random.default_rng(2000 + opset)
        inits = [
            numpy_helper.from_array((rng.standard_normal((1, 3 * hidden, inp)) * 0.5).astype(np.float32), "W"),
            numpy_helper.from_array((rng.standard_normal((1, 3 * hidden, hidden)) * 0.5).astype(np.float32), "R"),
            numpy_helper.from_array((rng.standard_normal((1, 6 * hidden)) * 0.5).astype(np.float32), "B"),
        ]
        nodes = [
            helper.make_node("Transpose", ["input"], ["/Transpose_output_0"], perm=[1, 0, 2], name="/Transpose"),
            helper.make_node(
                "GRU",
                ["/Transpose_output_0", "W", "R", "B"],
                ["/gru/GRU_output_0", "/gru/GRU_output_1"],
                hidden_size=hidden,
                linear_before_reset=1,
                name="/gru/GRU",
            ),
        ]
        if opset < 13:
            nodes.append(helper.make_node("Squeeze", ["/gru/GRU_output_0"], ["/gru/Squeeze_output_0"], axes=[1], name="/gru/Squeeze"))
        else:
            inits.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
            nodes.append(helper.make_node("Squeeze", ["/gru/GRU_output_0", "axes"], ["/gru/Squeeze_output_0"], name="/gru/Squeeze"))
        nodes.append(helper.make_node("Transpose", ["/gru/Squeeze_output_0"], ["output"], perm=[1, 0, 2], name="/Transpose_1"))
        graph = helper.make_graph(
            nodes,
            "batch_first",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, seq, inp])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, seq, hidden])],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 7
        x = rng.standard_normal((batch, seq, inp)).astype(np.float32)
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        expected = session.run(None, {"input": x})
        name = f"grim_gru_batch_first_opset{opset}"
        case_dir = os.path.join(out_dir, name)
        os.makedirs(case_dir, exist_ok=True)
        onnx.save(model, os.path.join(case_dir, "model.onnx"))
        np.save(os.path.join(case_dir, "input_0.npy"), x)
        for i, array in enumerate(expected):
            np.save(os.path.join(case_dir, f"output_{i}.npy"), array)
        described.append(
            {
                "name": name,
                "kind": "onnxruntime",
                "ops": ["GRU", "Squeeze", "Transpose"],
                "opset": opset,
                "inputs": 1,
                "outputs": len(expected),
                "output_dtypes": [str(a.dtype) for a in expected],
                "baked": [],
                "rtol": 1e-4,
                "atol": 1e-6,
            }
        )
    return described


def randomize_weights(model: onnx.ModelProto, seed: int) -> None:
    """Replaces each ConstantOfShape that makes a float weight from a
    constant shape by a seeded random initializer of that shape."""
    rng = np.random.default_rng(seed)
    graph = model.graph
    shapes = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            shape = tuple(int(d) for d in shapes[node.input[0]])
            if len(shape) >= 2:
                fan_in = int(np.prod(shape[1:]))
                values = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
            else:
                values = rng.uniform(0.5, 1.5, shape)
            graph.initializer.append(
                numpy_helper.from_array(values.astype(np.float32), node.output[0])
            )
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


if __name__ == "__main__":
    main()
