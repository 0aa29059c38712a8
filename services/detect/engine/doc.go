// Package engine runs ONNX object detectors through ONNX Runtime with the pre- and
// post-processing each detector family's reference implementation uses, so that a frame yields
// the boxes a user of that model expects, in pixels of the original frame.
//
// # Families
//
// The family comes from Config.Format or, with FormatAuto, from the model's ONNX metadata.
// Models that say nothing about themselves are refused with an error naming the formats; the
// engine never guesses from shapes alone.
//
//   - yolox (Megvii YOLOX): input BGR, 0..255 (no scaling, no normalisation), resized by
//     r = min(W/w, H/h) to (int(w·r), int(h·r)) and placed top-left on a canvas of 114.
//     Output [1, N, 5+C], N = Σ over strides 8, 16, 32 of (H/s)·(W/s), grid-encoded per cell in
//     row-major order: cx = (x + gx)·s, cy = (y + gy)·s, w = exp(w)·s, h = exp(h)·s, then
//     objectness and C class scores; score = objectness × class score. Boxes map back by /r.
//   - yolov8 (Ultralytics YOLOv8, YOLO11): input RGB, /255, letterboxed centred: resized to
//     (round(w·r), round(h·r)), padding split with top = round(dh/2 − 0.1), left likewise, pad
//     114. Output [1, 4+C, N]: rows cx, cy, w, h in input pixels, then C class scores (no
//     objectness). Boxes map back by subtracting the pad and dividing by r (Ultralytics
//     scale_boxes). Detected automatically from Ultralytics metadata (task=detect).
//   - yolov5 (Ultralytics YOLOv5): preprocessing as yolov8. Output [1, N, 5+C] already decoded:
//     cx, cy, w, h, objectness, C class scores; score = objectness × class score. Detected
//     automatically from YOLOv5 export metadata (names and stride, no task).
//   - end2end (Ultralytics exports with nms=True, YOLOv10): preprocessing as yolov8. Output
//     [1, K, 6] = x1, y1, x2, y2, score, class in input pixels; NMS already applied inside the
//     model. Detected automatically from Ultralytics metadata (end2end=True, or task=detect with
//     a [1, K, 6] output).
//
// Resizing is bilinear with OpenCV's INTER_LINEAR conventions (half-pixel centres, clamped
// edges, 11-bit fixed-point weights, result rounded to 8 bits) fused with the letterbox, the
// channel order, the scaling and the NCHW layout in one pass into a reused float32 tensor.
//
// # Post-processing
//
// Each anchor keeps its best class; candidates at or below Config.Conf are dropped; NMS is
// class-aware unless Config.ClassAgnostic (a box is suppressed by a better one of IoU above
// Config.IoU); at most Config.MaxDetections are kept; boxes are mapped back to the original
// frame and clipped to it.
//
// # Runtime
//
// An Engine owns a pool of Config.Sessions ONNX Runtime sessions, each with its own reused
// input and output tensors, decoder and scratch buffers, so Detect is safe for concurrent use
// and allocates little per frame. Intra-op spinning is off by default (it burns the cores
// another stage or session needs). Models with a dynamic batch dimension run DetectBatch as
// one inference over several frames.
package engine
