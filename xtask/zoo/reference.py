"""onnxruntime's outputs for the zoo models grim checks itself against.

Usage: python reference.py MODEL.onnx INPUT.npy OUTPUT.npy

Runs MODEL.onnx on the CPU execution provider with graph optimisations
off (so onnxruntime's own fusions cannot hide a difference in the graph
as written) and saves its first output.
"""

import sys

import numpy as np
import onnxruntime


def main() -> None:
    model, input_path, output_path = sys.argv[1], sys.argv[2], sys.argv[3]
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(
        model, options, providers=["CPUExecutionProvider"]
    )
    feeds = {session.get_inputs()[0].name: np.load(input_path)}
    np.save(output_path, session.run(None, feeds)[0])


if __name__ == "__main__":
    main()
