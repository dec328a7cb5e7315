"""Test accuracy of a digits model with onnxruntime (an engine other than
grim's, so the pruned ONNX file itself is what is measured).

usage: pruning_eval.py MODEL.onnx TEST.npz AXIS
Samples lie along AXIS of x; the model's input has batch 1 there, so
samples run one at a time. Prints {"accuracy": a, "samples": n} as JSON.
"""
import json
import sys

import numpy as np
import onnxruntime as ort

model, data, axis = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = np.load(data)
x, y = d["x"], d["y"]
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
name = s.get_inputs()[0].name
correct = 0
n = x.shape[axis]
for i in range(n):
    xi = np.take(x, [i], axis=axis)
    out = s.run(None, {name: xi})[0]
    correct += int(np.argmax(out.reshape(-1)) == y[i])
print(json.dumps({"accuracy": correct / n, "samples": n}))
