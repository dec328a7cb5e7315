"""The timing rule every Python peer of `cargo xtask bench` uses."""

import math
import statistics
import time


def measure(fn, budget_s, min_reps, max_reps):
    """Two warm-up calls, one timed call to size the repetitions (budget_s
    / t, clamped to [min_reps, max_reps]), then the median (and min, max)
    of that many timed calls, in ms."""
    fn()
    fn()
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    reps = int(min(max_reps, max(min_reps, math.ceil(budget_s / max(first, 1e-9)))))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "runs": reps}
