//go:build integration

package e2e

import (
	"github.com/streamdet/streamdet/services/detect/engine/onnxgraph"
)

// swapClasses appends to a YOLOX model (output [1, N, 85]: box, objectness, 80 class scores) a
// Gather that rotates its class scores by one: class k scores what class k+1 did. Boxes,
// objectness and scores stay exactly as they were — only the class ids are wrong, which the
// detections-per-frame band cannot see and agreement must.
func swapClasses(model []byte) ([]byte, error) {
	idx := []int64{0, 1, 2, 3, 4}
	for k := 0; k < 80; k++ {
		idx = append(idx, 5+int64((k+1)%80))
	}
	return onnxgraph.Wrap(model, onnxgraph.Graph{
		Inits: []onnxgraph.Tensor{{Name: "streamdet_swap", Dims: []int64{85}, Ints: idx}},
		Nodes: []onnxgraph.Node{{Op: "Gather", In: []string{"output", "streamdet_swap"}, Out: []string{"output_swapped"},
			Attrs: []onnxgraph.Attr{{Name: "axis", Int: onnxgraph.I(2)}}}},
		Outputs: []onnxgraph.Value{{Name: "output_swapped", Elem: onnxgraph.Float, Dims: []int64{1, 3549, 85}}},
	}, nil)
}
