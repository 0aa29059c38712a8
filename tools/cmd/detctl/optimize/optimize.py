"""Makes an optimised copy of an ONNX model with ONNX Runtime's own tooling; driven by
`detctl optimize`, which prepares the calibration tensors, evaluates the result against its parent
and decides whether it is kept. Run in the private virtual environment detctl creates from
requirements.txt beside this file.

  optimize.py --method int8-static --input parent.onnx --output child.onnx --calib DIR \
              [--calibrate minmax|entropy|percentile] [--per-tensor]
  optimize.py --method int8-dynamic|fp16|graph --input parent.onnx --output child.onnx

DIR holds meta.json ({"input": name, "shape": [1, 3, H, W], "count": N}) and N files
000000.f32 … of little-endian float32 tensors in that shape. Prints one JSON object: the tool
versions and the parameters used.
"""
import argparse
import json
import os
import platform
import sys
import tempfile

import numpy as np
import onnx
import onnx.version_converter
import onnxruntime
from onnxruntime.quantization.calibrate import HistogramCalibrater
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_dynamic, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process


class Tensors(CalibrationDataReader):
    def __init__(self, directory):
        with open(os.path.join(directory, "meta.json")) as f:
            meta = json.load(f)
        self.name, self.shape, self.count = meta["input"], [int(d) for d in meta["shape"]], int(meta["count"])
        if self.count < 1 or len(self.shape) != 4:
            raise SystemExit("calibration: want at least one tensor of rank 4")
        self.dir, self.i = directory, 0

    def get_next(self):
        if self.i >= self.count:
            return None
        path = os.path.join(self.dir, "%06d.f32" % self.i)
        self.i += 1
        data = np.fromfile(path, dtype="<f4")
        if data.size != int(np.prod(self.shape)):
            raise SystemExit("calibration: %s has %d values, want %s" % (path, data.size, self.shape))
        return {self.name: data.reshape(self.shape)}

    def rewind(self):
        self.i = 0


def head_tail(model):
    """The nodes after the last convolutions (they lead to no Conv): a detector's head decoding,
    where box regressions (tens to hundreds) are concatenated with sigmoid scores (0..1). One
    uint8 scale for both erases the scores, so these stay in float."""
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    leads = {}

    def leads_to_conv(n):
        if n.name not in leads:
            leads[n.name] = False
            leads[n.name] = any(c.op_type == "Conv" or leads_to_conv(c) for o in n.output for c in consumers.get(o, []))
        return leads[n.name]

    tail = {n.name for n in model.graph.node if n.op_type != "Conv" and not leads_to_conv(n)}
    # ... and the prediction convolutions that feed only the decoding: their outputs are the
    # logits and offsets every score and box is made of, the layers post-training quantization
    # hurts most.
    for n in model.graph.node:
        if n.op_type == "Conv" and all(c.name in tail for o in n.output for c in consumers.get(o, [])):
            tail.add(n.name)
    return sorted(tail)


# Calibration memory. ONNX Runtime's histogram calibrator (entropy, percentile) keeps every
# activation of every calibration frame before it builds its histograms (onnxruntime#10503; the
# fix, #14183, was never merged): 200 frames of YOLOX-Nano at 416 need over 24 GB and are killed.
# Its own collect_data is run here on chunks of CHUNK frames instead — the histograms merge
# across calls — so memory is bounded by a chunk. Min-max keeps only each tensor's minimum and
# maximum per frame (and its CalibMaxIntermediateOutputs option must not be used: in 1.30 it
# clears the collected frames without computing their ranges, keeping only the last chunk's).
CHUNK = 8
_collect_all = HistogramCalibrater.collect_data


class _Frames(CalibrationDataReader):
    def __init__(self, items):
        self.items = iter(items)

    def get_next(self):
        return next(self.items, None)


def _collect_in_chunks(self, data_reader):
    while True:
        items = []
        while len(items) < CHUNK:
            x = data_reader.get_next()
            if not x:
                break
            items.append(x)
        if not items:
            return
        _collect_all(self, _Frames(items))


HistogramCalibrater.collect_data = _collect_in_chunks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", required=True, choices=["int8-static", "int8-dynamic", "fp16", "graph"])
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--calib")
    ap.add_argument("--calibrate", default="minmax", choices=["minmax", "entropy", "percentile"])
    ap.add_argument("--per-tensor", action="store_true")
    ap.add_argument("--quant-format", default="qdq", choices=["qdq", "qoperator"])
    ap.add_argument("--op-types", default="", help="operator types to quantize (default: all)")
    ap.add_argument("--quantize-tail", action="store_true", help="also quantize the nodes after the last Conv")
    ap.add_argument("--float-nodes", default="", help="comma-separated node name prefixes kept in float")
    a = ap.parse_args()
    params = {"method": a.method}
    with tempfile.TemporaryDirectory() as tmp:
        if a.method == "int8-static":
            if not a.calib:
                raise SystemExit("int8-static needs --calib")
            src = a.input
            model = onnx.load(src)
            opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
            if opset < 13:  # per-channel QDQ (DequantizeLinear's axis) needs opset 13
                src = os.path.join(tmp, "opset13.onnx")
                onnx.save(onnx.version_converter.convert_version(model, 13), src)
                params["opset_from"] = opset
            pre = os.path.join(tmp, "pre.onnx")
            quant_pre_process(src, pre)  # shape inference and graph clean-up, as ORT recommends
            calib = Tensors(a.calib)
            method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                      "percentile": CalibrationMethod.Percentile}[a.calibrate]
            ops = [o for o in a.op_types.split(",") if o]
            tail = head_tail(onnx.load(pre)) if not a.quantize_tail else []
            prefixes = [x for x in a.float_nodes.split(",") if x]
            kept = [n.name for n in onnx.load(pre).graph.node if any(n.name.startswith(x) for x in prefixes)]
            tail = sorted(set(tail) | set(kept))
            fmt = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[a.quant_format]
            quantize_static(pre, a.output, calib, quant_format=fmt, per_channel=not a.per_tensor,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method,
                            op_types_to_quantize=ops or None, nodes_to_exclude=tail)
            params.update({"format": {"qdq": "QDQ", "qoperator": "QOperator"}[a.quant_format], "activations": "uint8", "weights": "int8", "op_types": ops or "all",
                           "float_nodes": len(tail), "float_node_prefixes": prefixes,
                           "per_channel": not a.per_tensor, "calibrate": a.calibrate, "calibration_tensors": calib.count})
        elif a.method == "int8-dynamic":
            quantize_dynamic(a.input, a.output, weight_type=QuantType.QUInt8)
            params.update({"weights": "uint8"})
        elif a.method == "fp16":
            from onnxconverter_common import float16
            model = float16.convert_float_to_float16(onnx.load(a.input), keep_io_types=True)
            onnx.save(model, a.output)
            params.update({"keep_io_types": True})
        else:
            so = onnxruntime.SessionOptions()
            so.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            so.optimized_model_filepath = a.output
            onnxruntime.InferenceSession(a.input, so, providers=["CPUExecutionProvider"])
            params.update({"level": "extended"})
    json.dump({"params": params, "tools": {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
               "numpy": np.__version__, "python": platform.python_version()}}, sys.stdout, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
