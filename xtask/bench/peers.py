"""Peer timings for `cargo xtask bench kernels` (run by xtask in target/bench/venv).

usage: python peers.py CASES.json OUT.json

CASES.json (written by xtask):
  {"threads": [1, 2], "budget_s": 0.5, "min_reps": 10, "max_reps": 5000,
   "x_seed": 1, "unavailable": {"peer": "why"},
   "cases": [{"id": "...", "kind": "dense" | "sparse", "layer": "...",
              "M": 256, "K": 1152, "N": 3136, "sparsity": "8x" | null,
              "block": "8x16" | null, "seed": 123, "weight": "/path/W.npy"}]}

Every peer computes Y = W @ X with W the exact M x K matrix grim compiled
(read from the .npy xtask wrote) and X a K x N float32 matrix of fixed-seed
values in [-1, 1). Dense cases run the dense peers (numpy/OpenBLAS sgemm,
onnxruntime MatMul); sparse cases run the CSR peers (scipy, Intel MKL via
sparse_dot_mkl) on the same nonzeros. Each timing: two warm-up calls, one
timed call to size the repetitions (budget_s / t, clamped to
[min_reps, max_reps]), then the median of that many timed calls.

OUT.json: {"versions": {...}, "unavailable": {...}, "results": [...],
           "numpy_sgemm_peak": [...], "checks": [...]}
"""

import json
import os
import platform
import sys
import traceback

from timing import measure  # xtask/bench/timing.py, beside this script


def log(text):
    print(text, flush=True)


def main():
    cases_path, out_path = sys.argv[1], sys.argv[2]
    with open(cases_path) as f:
        spec = json.load(f)
    budget, min_reps, max_reps = spec["budget_s"], spec["min_reps"], spec["max_reps"]
    thread_counts = spec["threads"]
    unavailable = dict(spec.get("unavailable", {}))
    versions = {"python": platform.python_version()}
    results, checks, peak = [], [], []

    def unavailable_because(peer, error):
        unavailable[peer] = error
        log(f"peer {peer}: unavailable: {error.strip().splitlines()[-1] if error.strip() else error}")

    # --- imports (each peer independently) ---------------------------------
    try:
        import numpy as np
        versions["numpy"] = np.__version__
    except Exception:
        for peer in ["numpy-openblas", "onnxruntime", "scipy-csr", "mkl-csr"]:
            unavailable_because(peer, traceback.format_exc())
        write(out_path, versions, unavailable, results, peak, checks)
        return
    try:
        import threadpoolctl
        versions["threadpoolctl"] = threadpoolctl.__version__
        for info in threadpoolctl.threadpool_info():
            if info.get("internal_api") == "openblas":
                versions["openblas"] = f"{info.get('version')} ({info.get('threading_layer')}, {info.get('architecture')})"
    except Exception:
        threadpoolctl = None
        versions["threadpoolctl"] = "unavailable: " + traceback.format_exc().strip().splitlines()[-1]

    def blas_threads(n):
        if threadpoolctl is None:
            raise RuntimeError("threadpoolctl is unavailable, cannot set the OpenBLAS thread count")
        return threadpoolctl.threadpool_limits(limits=n, user_api="blas")

    ort = onnx = None
    if "onnxruntime" not in unavailable:
        try:
            import onnx
            import onnxruntime as ort
            from onnx import TensorProto, helper, numpy_helper
            versions["onnxruntime"] = ort.__version__
            versions["onnx"] = onnx.__version__
        except Exception:
            unavailable_because("onnxruntime", traceback.format_exc())
    sp = None
    if "scipy-csr" not in unavailable or "mkl-csr" not in unavailable:
        try:
            import scipy
            import scipy.sparse as sp
            versions["scipy"] = scipy.__version__
        except Exception:
            for peer in ["scipy-csr", "mkl-csr"]:
                unavailable_because(peer, traceback.format_exc())
    mkl = None
    if "mkl-csr" not in unavailable and sp is not None:
        try:
            import sparse_dot_mkl as mkl
            versions["sparse_dot_mkl"] = mkl.__version__
            versions["mkl"] = mkl.mkl_get_version_string()
            versions["MKL_RT"] = os.environ.get("MKL_RT", "")
        except Exception:
            unavailable_because("mkl-csr", traceback.format_exc())
            mkl = None
    for name, version in versions.items():
        log(f"version: {name} {version}")

    rng = np.random.default_rng(spec.get("x_seed", 1))

    def x_for(K, N):
        return (rng.random((K, N), dtype=np.float32) * 2 - 1).astype(np.float32)

    def record(case, peer, threads, timing):
        row = {"case": case["id"], "layer": case["layer"], "peer": peer, "threads": threads,
               "sparsity": case.get("sparsity"), "block": case.get("block")}
        row.update(timing)
        results.append(row)
        log(f"{case['layer']:<24} {str(case.get('sparsity') or 'dense'):<5} {str(case.get('block') or ''):<6} "
            f"{peer:<15} T={threads}  median {timing['median_ms']:.4f} ms  ({timing['runs']} runs)")

    def guarded(peer, fn):
        if peer in unavailable:
            return
        try:
            fn()
        except Exception:
            unavailable_because(peer, traceback.format_exc())

    # --- practical peak: a large numpy sgemm ---------------------------------
    size = spec.get("peak_size", 2048)
    a = x_for(size, size)
    b = x_for(size, size)
    for threads in thread_counts:
        def run_peak(threads=threads):
            with blas_threads(threads):
                t = measure(lambda: a @ b, budget_s=max(budget, 0.5), min_reps=3, max_reps=50)
            t["gflops"] = 2 * size ** 3 / (t["median_ms"] * 1e6)
            t.update({"threads": threads, "size": size})
            peak.append(t)
            log(f"numpy sgemm {size}^3 T={threads}: {t['gflops']:.1f} GFLOP/s (median {t['median_ms']:.2f} ms)")
        guarded("numpy-openblas", run_peak)
    del a, b

    # --- cases ---------------------------------------------------------------
    for case in spec["cases"]:
        W = np.load(case["weight"]).astype(np.float32, copy=False)
        M, K, N = case["M"], case["K"], case["N"]
        assert W.shape == (M, K), (case["id"], W.shape)
        X = x_for(K, N)
        if case["kind"] == "dense":
            for threads in thread_counts:
                def run_numpy(threads=threads):
                    with blas_threads(threads):
                        record(case, "numpy-openblas", threads, measure(lambda: W @ X, budget, min_reps, max_reps))
                guarded("numpy-openblas", run_numpy)

                def run_ort(threads=threads):
                    w_init = numpy_helper.from_array(W, name="W")
                    graph = helper.make_graph(
                        [helper.make_node("MatMul", ["W", "X"], ["Y"])], "matmul",
                        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [K, N])],
                        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [M, N])],
                        initializer=[w_init])
                    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                    model.ir_version = min(model.ir_version, 9)
                    options = ort.SessionOptions()
                    options.intra_op_num_threads = threads
                    options.inter_op_num_threads = 1
                    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
                    feed = {"X": X}
                    y = session.run(None, feed)[0]
                    checks.append({"case": case["id"], "peer": "onnxruntime", "max_abs_diff_vs_numpy": float(np.max(np.abs(y - W @ X)))})
                    record(case, "onnxruntime", threads, measure(lambda: session.run(None, feed), budget, min_reps, max_reps))
                    del session
                guarded("onnxruntime", run_ort)
        else:
            with blas_threads(1) if threadpoolctl else _null():
                ref = W @ X
            if sp is not None:
                csr = sp.csr_matrix(W)
                csr.sort_indices()
                nnz = int(csr.nnz)

                def run_scipy():
                    y = csr @ X
                    checks.append({"case": case["id"], "peer": "scipy-csr", "max_abs_diff_vs_numpy": float(np.max(np.abs(y - ref)))})
                    # scipy's sparse x dense product is single-threaded.
                    record(case, "scipy-csr", 1, dict(measure(lambda: csr @ X, budget, min_reps, max_reps), nnz=nnz))
                guarded("scipy-csr", run_scipy)

                for threads in thread_counts:
                    def run_mkl(threads=threads):
                        mkl.mkl_set_num_threads(threads)
                        y = mkl.dot_product_mkl(csr, X)
                        if threads == thread_counts[0]:
                            checks.append({"case": case["id"], "peer": "mkl-csr", "max_abs_diff_vs_numpy": float(np.max(np.abs(y - ref))),
                                           "dtype": str(y.dtype)})
                        record(case, "mkl-csr", threads, dict(measure(lambda: mkl.dot_product_mkl(csr, X), budget, min_reps, max_reps), nnz=nnz))
                    if mkl is not None:
                        guarded("mkl-csr", run_mkl)
    write(out_path, versions, unavailable, results, peak, checks)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def write(path, versions, unavailable, results, peak, checks):
    with open(path + ".partial", "w") as f:
        json.dump({"versions": versions, "unavailable": unavailable, "results": results,
                   "numpy_sgemm_peak": peak, "checks": checks}, f, indent=1)
    os.replace(path + ".partial", path)


if __name__ == "__main__":
    main()
