package engine

import (
	"os"
	"testing"

	"github.com/streamdet/streamdet/pkg/testenv"
	og "github.com/streamdet/streamdet/services/detect/engine/onnxgraph"
)

func sharedModel(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testenv.Shared(t, "models", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func i64(name string, v ...int64) og.Tensor {
	return og.Tensor{Name: name, Dims: []int64{int64(len(v))}, Ints: v}
}

func f32(name string, dims []int64, v ...float32) og.Tensor {
	return og.Tensor{Name: name, Dims: dims, Floats: v}
}

const cocoNamesPy = "{0: 'person', 1: 'bicycle', 2: 'car', 3: 'motorcycle', 4: 'airplane', 5: 'bus', 6: 'train', 7: 'truck', 8: 'boat', 9: 'traffic light', 10: 'fire hydrant', 11: 'stop sign', 12: 'parking meter', 13: 'bench', 14: 'bird', 15: 'cat', 16: 'dog', 17: 'horse', 18: 'sheep', 19: 'cow', 20: 'elephant', 21: 'bear', 22: 'zebra', 23: 'giraffe', 24: 'backpack', 25: 'umbrella', 26: 'handbag', 27: 'tie', 28: 'suitcase', 29: 'frisbee', 30: 'skis', 31: 'snowboard', 32: 'sports ball', 33: 'kite', 34: 'baseball bat', 35: 'baseball glove', 36: 'skateboard', 37: 'surfboard', 38: 'tennis racket', 39: 'bottle', 40: 'wine glass', 41: 'cup', 42: 'fork', 43: 'knife', 44: 'spoon', 45: 'bowl', 46: 'banana', 47: 'apple', 48: 'sandwich', 49: 'orange', 50: 'broccoli', 51: 'carrot', 52: 'hot dog', 53: 'pizza', 54: 'donut', 55: 'cake', 56: 'chair', 57: 'couch', 58: 'potted plant', 59: 'bed', 60: 'dining table', 61: 'toilet', 62: 'tv', 63: 'laptop', 64: 'cell phone', 65: 'microwave', 66: 'oven', 67: 'bowl2', 68: 'sink', 69: 'refrigerator', 70: 'book', 71: 'clock', 72: 'vase', 73: 'scissors', 74: 'teddy bear', 75: 'hair drier', 76: 'toothbrush', 77: 'x77', 78: 'x78', 79: 'x79'}"

// yolov5Model wraps the shared YOLOv8 model so that its output takes the YOLOv5 layout
// [1, 8400, 85] = cx, cy, w, h, objectness, classes, with objectness 0.5 and class scores
// doubled (so the scores come out right only if the decoder multiplies them), and gives it the
// metadata a YOLOv5 export writes (names and stride, no task).
func yolov5Model(t testing.TB) []byte {
	t.Helper()
	g := og.Graph{
		Nodes: []og.Node{
			{Op: "Transpose", In: []string{"output0"}, Out: []string{"t"}, Attrs: []og.Attr{{Name: "perm", Ints: []int64{0, 2, 1}}}},
			{Op: "Slice", In: []string{"t", "s0", "s4", "ax2"}, Out: []string{"box"}},
			{Op: "Slice", In: []string{"t", "s4", "s84", "ax2"}, Out: []string{"cls"}},
			{Op: "Mul", In: []string{"cls", "two"}, Out: []string{"cls2"}},
			{Op: "Concat", In: []string{"box", "half", "cls2"}, Out: []string{"output"}, Attrs: []og.Attr{{Name: "axis", Int: og.I(2)}}},
		},
		Inits: []og.Tensor{
			i64("s0", 0), i64("s4", 4), i64("s84", 84), i64("ax2", 2),
			f32("two", []int64{1}, 2), f32("half", []int64{1, 8400, 1}, fillF(8400, 0.5)...),
		},
		Outputs: []og.Value{{Name: "output", Elem: og.Float, Dims: []int64{1, 8400, 85}}},
	}
	m, err := og.Wrap(sharedModel(t, "yolov8n_int8.onnx"), g, map[string]string{"stride": "32", "names": cocoNamesPy})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// end2endModel wraps the shared YOLOv8 model with ONNX NonMaxSuppression so that it outputs
// [1, K, 6] = x1, y1, x2, y2, score, class with NMS done inside, and gives it the metadata of an
// Ultralytics nms=True export.
func end2endModel(t testing.TB) []byte {
	t.Helper()
	g := og.Graph{
		Nodes: []og.Node{
			{Op: "Transpose", In: []string{"output0"}, Out: []string{"t"}, Attrs: []og.Attr{{Name: "perm", Ints: []int64{0, 2, 1}}}},
			{Op: "Slice", In: []string{"t", "s0", "s4", "ax2"}, Out: []string{"boxes"}},         // [1,8400,4] cxcywh
			{Op: "Slice", In: []string{"output0", "s4", "s84", "ax1"}, Out: []string{"scores"}}, // [1,80,8400]
			{Op: "NonMaxSuppression", In: []string{"boxes", "scores", "maxout", "iou", "thr"}, Out: []string{"sel"},
				Attrs: []og.Attr{{Name: "center_point_box", Int: og.I(1)}}}, // [K,3] batch, class, box
			{Op: "Slice", In: []string{"sel", "s2", "s3", "ax1"}, Out: []string{"boxIdx2"}},
			{Op: "Reshape", In: []string{"boxIdx2", "flat"}, Out: []string{"boxIdx"}},
			{Op: "Slice", In: []string{"sel", "s1", "s2", "ax1"}, Out: []string{"clsIdx"}},
			{Op: "Reshape", In: []string{"boxes", "rows4"}, Out: []string{"boxes2d"}},
			{Op: "Gather", In: []string{"boxes2d", "boxIdx"}, Out: []string{"selBoxes"}, Attrs: []og.Attr{{Name: "axis", Int: og.I(0)}}},
			{Op: "Slice", In: []string{"selBoxes", "s0", "s2", "ax1"}, Out: []string{"cxcy"}},
			{Op: "Slice", In: []string{"selBoxes", "s2", "s4", "ax1"}, Out: []string{"wh"}},
			{Op: "Mul", In: []string{"wh", "halfc"}, Out: []string{"hwh"}},
			{Op: "Sub", In: []string{"cxcy", "hwh"}, Out: []string{"xy1"}},
			{Op: "Add", In: []string{"cxcy", "hwh"}, Out: []string{"xy2"}},
			{Op: "GatherND", In: []string{"scores", "sel"}, Out: []string{"selScore"}},
			{Op: "Reshape", In: []string{"selScore", "col"}, Out: []string{"score"}},
			{Op: "Cast", In: []string{"clsIdx"}, Out: []string{"clsF"}, Attrs: []og.Attr{{Name: "to", Int: og.I(og.Float)}}},
			{Op: "Concat", In: []string{"xy1", "xy2", "score", "clsF"}, Out: []string{"det"}, Attrs: []og.Attr{{Name: "axis", Int: og.I(1)}}},
			{Op: "Reshape", In: []string{"det", "out3"}, Out: []string{"output"}},
		},
		Inits: []og.Tensor{
			i64("s0", 0), i64("s1", 1), i64("s2", 2), i64("s3", 3), i64("s4", 4), i64("s84", 84),
			i64("ax1", 1), i64("ax2", 2), i64("maxout", 300), f32("iou", []int64{1}, 0.45), f32("thr", []int64{1}, 0.25),
			i64("flat", -1), i64("rows4", -1, 4), i64("col", -1, 1), i64("out3", 1, -1, 6), f32("halfc", []int64{1}, 0.5),
		},
		Outputs: []og.Value{{Name: "output", Elem: og.Float, Dims: []int64{1, -1, 6}, Params: map[int]string{1: "K"}}},
	}
	m, err := og.Wrap(sharedModel(t, "yolov8n_int8.onnx"), g,
		map[string]string{"task": "detect", "end2end": "True", "imgsz": "[640, 640]", "stride": "32", "names": cocoNamesPy})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// batchModel is a tiny end-to-end model with a dynamic batch dimension and a 64×64 input: for
// each image it reports one box [8, 8, 40, 40] of class 3 whose score is the mean of the
// image's input tensor, so a test can tell the images of a batch apart.
func batchModel() []byte {
	g := og.Graph{
		Nodes: []og.Node{
			{Op: "ReduceMean", In: []string{"images"}, Out: []string{"m"}, Attrs: []og.Attr{{Name: "axes", Ints: []int64{1, 2, 3}}, {Name: "keepdims", Int: og.I(1)}}},
			{Op: "Reshape", In: []string{"m", "shape"}, Out: []string{"score"}},
			{Op: "Mul", In: []string{"score", "zero"}, Out: []string{"z"}},
			{Op: "Add", In: []string{"z", "box"}, Out: []string{"boxes"}},
			{Op: "Add", In: []string{"z", "cls"}, Out: []string{"classes"}},
			{Op: "Concat", In: []string{"boxes", "score", "classes"}, Out: []string{"output"}, Attrs: []og.Attr{{Name: "axis", Int: og.I(2)}}},
		},
		Inits: []og.Tensor{
			i64("shape", -1, 1, 1), f32("zero", []int64{1}, 0),
			f32("box", []int64{1, 1, 4}, 8, 8, 40, 40), f32("cls", []int64{1, 1, 1}, 3),
		},
		Inputs:  []og.Value{{Name: "images", Elem: og.Float, Dims: []int64{-1, 3, 64, 64}, Params: map[int]string{0: "batch"}}},
		Outputs: []og.Value{{Name: "output", Elem: og.Float, Dims: []int64{-1, 1, 6}, Params: map[int]string{0: "batch"}}},
	}
	return og.Build(13, g, map[string]string{"task": "detect", "end2end": "True", "names": "{0: 'a', 1: 'b', 2: 'c', 3: 'd'}"})
}

func fillF(n int, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}
