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
