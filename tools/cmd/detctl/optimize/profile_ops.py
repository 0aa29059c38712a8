"""Per-operator kernel times of ONNX models on ONNX Runtime's CPU provider (one thread).

Not part of detctl: a measuring aid for docs/optimise.md ("Why int8 does not pay"). Run it with
the interpreter of the private environment `detctl optimize` creates on first use:

    .cache/optimize-*/bin/python tools/cmd/detctl/optimize/profile_ops.py parent.onnx child.onnx

Each model runs 10 warm-up and 60 profiled inferences of one fixed random tensor (shape from the
model's first input, batch 1); kernel times are summed per operator type and averaged per run.
"""
import collections
import json
import os
import sys

import numpy as np
import onnxruntime as ort


def profile(path, runs=60, warmup=10):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.enable_profiling = True
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = (np.random.default_rng(1).random(shape) * 255).astype(np.float32)
    for _ in range(warmup + runs):
        sess.run(None, {inp.name: x})
    trace = sess.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            total[e["args"]["op_name"]] += e["dur"]
            count[e["args"]["op_name"]] += 1
    n = warmup + runs
    return {op: (us / n / 1000, count[op] // n) for op, us in total.items()}


def main(paths):
    for path in paths:
        ops = profile(path)
        print(f"== {path}: all kernels {sum(ms for ms, _ in ops.values()):.2f} ms")
        for op, (ms, n) in sorted(ops.items(), key=lambda kv: -kv[1][0]):
            if ms >= 0.05:
                print(f"  {op:<22} {ms:6.2f} ms  ×{n}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: profile_ops.py MODEL.onnx [MODEL.onnx ...]")
    main(sys.argv[1:])
