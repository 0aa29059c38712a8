"""pycocotools' COCOeval (bbox) on gt.json and dt.json: the reference eval's Go code is tested
against (reference.json). Run by `make coco-reference` in a private virtual environment."""
import contextlib
import json
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

with contextlib.redirect_stdout(sys.stderr):  # pycocotools prints its progress
    gt = COCO(sys.argv[1])
    dt = gt.loadRes(sys.argv[2])
    ev = COCOeval(gt, dt, "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
prec = ev.eval["precision"]  # [T, R, K, A, M]
per = {}
for k, cat in enumerate(ev.params.catIds):
    s = prec[:, :, k, 0, 2]
    if (s > -1).any():
        per[str(cat)] = float(np.mean(s[s > -1]))
json.dump({"map": float(ev.stats[0]), "map50": float(ev.stats[1]), "ap_per_category": per}, sys.stdout, indent=2, sort_keys=True)
print()
