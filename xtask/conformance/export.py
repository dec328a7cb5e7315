"""Exports the ONNX project's node tests for the ops grim claims.

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
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(
            {"onnx": onnx.__version__, "cases": described}, f, indent=1, sort_keys=True
        )
    print(f"exported {len(described)} node test cases for {len(claimed)} ops (onnx {onnx.__version__})")


if __name__ == "__main__":
    main()
