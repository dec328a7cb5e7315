"""scikit-learn's 8x8 digits as .npz splits for grimc prune and its tests.

Pixels scaled to [0, 1] as float32, labels int64. A seeded permutation
splits 1797 samples into train (1257), validation (180) and test (360);
each split is written in the three input layouts the digits examples
take: flat [N, 64], image [N, 1, 8, 8], rows [8, N, 8] (8 steps of 8
pixels, samples along axis 1 as a layout-0 GRU expects).
"""
import os
import sys

import numpy as np
from sklearn.datasets import load_digits

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
d = load_digits()
x = (d.data / 16.0).astype(np.float32)
y = d.target.astype(np.int64)
idx = np.random.default_rng(0).permutation(len(x))
splits = {"test": idx[:360], "val": idx[360:540], "train": idx[540:]}
for name, ids in splits.items():
    xs, ys = x[ids], y[ids]
    layouts = {
        "flat": xs,
        "image": xs.reshape(-1, 1, 8, 8),
        "rows": xs.reshape(-1, 8, 8).transpose(1, 0, 2).copy(),
    }
    for layout, data in layouts.items():
        path = os.path.join(out, f"{name}-{layout}.npz")
        tmp = path + ".tmp.npz"
        np.savez(tmp, x=data, y=ys)
        os.replace(tmp, path)
print(f"digits: wrote {out}")
