"""Peer timings for `cargo xtask bench models` (run by xtask in
target/bench/models-venv).

usage: python models_peers.py SPEC.json OUT.json

SPEC.json (written by xtask):
  {"threads": [1, 2], "budget_s": 3.0, "min_reps": 5, "max_reps": 200,
   "work_dir": "...",
   "models": [{"id": "resnet18_bcr", "path": ".../model.onnx",
               "input": ".../input.npy"}],
   "peers": ["onnxruntime", "tract", "mnn"]}   (optional; the default is all three)

Every peer runs the very ONNX file grim compiles, on the same input, batch
1. Per model and thread count: onnxruntime (CPU provider, all graph
optimisations, intra-op threads = T), tract (single-threaded: its Python
bindings have no thread pool; run at T = 1 only) and MNN (the model
converted with MNN's converter core, a session with numThread = T). Each
timing: two warm-up runs, one timed run to size the repetitions (budget_s /
t, clamped to [min_reps, max_reps]), then the median of that many. Each
peer's output is checked against onnxruntime's (max |y - ref| / max |ref|),
so a peer that computes something else shows up in OUT.json's checks.

OUT.json: {"versions": {...}, "unavailable": {peer: why},
           "results": [{"model", "peer", "threads", "median_ms", "min_ms",
                        "max_ms", "runs"}],
           "checks": [{"model", "peer", "relative_error"}]}
"""

import json
import os
import platform
import sys
import traceback

from timing import measure  # xtask/bench/timing.py, beside this script

import numpy as np


def relative_error(y, ref):
    y = np.asarray(y, dtype=np.float32).reshape(ref.shape)
    return float(np.abs(y - ref).max() / max(np.abs(ref).max(), 1e-30))


def onnxruntime_runner(path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def tract_runner(path, threads):
    import tract

    runnable = tract.onnx().load(path).into_model().into_runnable()
    return lambda x: runnable.run([x])[0].to_numpy()


def mnn_runner(path, threads, work_dir):
    import MNN
    import _tools

    mnn_path = os.path.join(work_dir, os.path.splitext(os.path.basename(path))[0] + ".mnn")
    if not os.path.exists(mnn_path):
        # The converter core, not the `mnnconvert` console script (which
        # pip-installs packages at run time).
        _tools.mnnconvert(
            ["mnnconvert", "-f", "ONNX", "--modelFile", path, "--MNNModel", mnn_path, "--bizCode", "grim"]
        )
    interpreter = MNN.Interpreter(mnn_path)
    session = interpreter.createSession({"numThread": threads})
    given = interpreter.getSessionInput(session)
    result = interpreter.getSessionOutput(session)
    shape = result.getShape()

    def run(x):
        host = MNN.Tensor(x.shape, MNN.Halide_Type_Float, x, MNN.Tensor_DimensionType_Caffe)
        given.copyFrom(host)
        interpreter.runSession(session)
        out = MNN.Tensor(shape, MNN.Halide_Type_Float, np.zeros(shape, np.float32), MNN.Tensor_DimensionType_Caffe)
        result.copyToHostTensor(out)
        return np.array(out.getData(), dtype=np.float32)

    return run


def main():
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    budget, min_reps, max_reps = spec["budget_s"], spec["min_reps"], spec["max_reps"]
    work_dir = spec["work_dir"]
    versions = {"python": platform.python_version()}
    unavailable = {}
    peers = {}
    wanted = spec.get("peers", ["onnxruntime", "tract", "mnn"])
    for peer, module in [("onnxruntime", "onnxruntime"), ("tract", "tract"), ("mnn", "MNN")]:
        if peer not in wanted:
            continue
        try:
            imported = __import__(module)
            versions[peer] = getattr(imported, "__version__", None) or getattr(imported, "version", lambda: "?")()
            peers[peer] = True
        except Exception as error:  # noqa: BLE001 - any import failure makes the peer unavailable
            unavailable[peer] = f"import failed: {error}"
    results, checks = [], []
    for model in spec["models"]:
        x = np.load(model["input"])
        reference = None
        for peer in ["onnxruntime", "tract", "mnn"]:
            if peer not in peers:
                continue
            for threads in spec["threads"]:
                if peer == "tract" and threads != 1:
                    continue
                try:
                    if peer == "onnxruntime":
                        run = onnxruntime_runner(model["path"], threads)
                    elif peer == "tract":
                        run = tract_runner(model["path"], threads)
                    else:
                        run = mnn_runner(model["path"], threads, work_dir)
                    y = np.asarray(run(x))
                    if reference is None:
                        reference = y
                    if threads == spec["threads"][0]:
                        checks.append(
                            {"model": model["id"], "peer": peer, "relative_error": relative_error(y, reference)}
                        )
                    timing = measure(lambda: run(x), budget, min_reps, max_reps)
                except Exception:  # noqa: BLE001 - a failing peer is reported, not fatal
                    unavailable[f"{peer}:{model['id']}"] = traceback.format_exc(limit=2).strip().splitlines()[-1]
                    continue
                timing.update({"model": model["id"], "peer": peer, "threads": threads})
                print(f"models_peers: {model['id']:<20} {peer:<12} {threads} thread(s) {timing['median_ms']:9.2f} ms", flush=True)
                results.append(timing)
    with open(out_path, "w") as f:
        json.dump({"versions": versions, "unavailable": unavailable, "results": results, "checks": checks}, f, indent=1)


if __name__ == "__main__":
    main()
