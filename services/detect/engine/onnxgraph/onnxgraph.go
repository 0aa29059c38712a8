// Package onnxgraph writes and edits ONNX models at the protobuf level, for tests that need
// models of a given layout or behaviour: a tiny model built from a few operators, or an existing
// model with operators appended to its graph (for example the shared YOLOv8 model wrapped so
// that its output takes the YOLOv5 or the end-to-end layout, or YOLOX with its classes rotated
// as the end-to-end tests' bad candidate). Only the fields those uses need are written;
// everything else in an edited model is kept byte for byte.
package onnxgraph

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Element types (onnx.TensorProto.DataType).
const (
	Float = 1
	Int64 = 7
)

// Attr is a node attribute; set exactly one of the value fields.
type Attr struct {
	Name  string
	Int   *int64
	Ints  []int64
	Float *float32
}

// I and F make attribute values.
func I(v int64) *int64     { return &v }
func F(v float32) *float32 { return &v }

// Node is one operator.
type Node struct {
	Op      string
	In, Out []string
	Attrs   []Attr
}

// Tensor is an initializer.
type Tensor struct {
	Name   string
	Dims   []int64
	Floats []float32 // for Float
	Ints   []int64   // for Int64
}

// Value is a graph input or output: name, element type and shape (a negative dimension or one
// with Param set is symbolic).
type Value struct {
	Name   string
	Elem   int
	Dims   []int64
	Params map[int]string // dimension index → symbolic name
}

// Graph is what Build writes or Wrap appends.
type Graph struct {
	Nodes   []Node
	Inits   []Tensor
	Inputs  []Value // Build only
	Outputs []Value
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func (n Node) marshal(i int) []byte {
	var b []byte
	for _, s := range n.In {
		b = appendString(b, 1, s)
	}
	for _, s := range n.Out {
		b = appendString(b, 2, s)
	}
	b = appendString(b, 3, fmt.Sprintf("sd_%s_%d", n.Op, i))
	b = appendString(b, 4, n.Op)
	for _, a := range n.Attrs {
		var ab []byte
		ab = appendString(ab, 1, a.Name)
		switch {
		case a.Int != nil:
			ab = appendVarint(ab, 3, uint64(*a.Int))
			ab = appendVarint(ab, 20, 2)
		case a.Float != nil:
			ab = protowire.AppendTag(ab, 2, protowire.Fixed32Type)
			ab = protowire.AppendFixed32(ab, math.Float32bits(*a.Float))
			ab = appendVarint(ab, 20, 1)
		default:
			for _, v := range a.Ints {
				ab = appendVarint(ab, 8, uint64(v))
			}
			ab = appendVarint(ab, 20, 7)
		}
		b = appendBytes(b, 5, ab)
	}
	return b
}

func (t Tensor) marshal() []byte {
	var b []byte
	for _, d := range t.Dims {
		b = appendVarint(b, 1, uint64(d))
	}
	var raw []byte
	if t.Ints != nil {
		b = appendVarint(b, 2, Int64)
		for _, v := range t.Ints {
			raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
		}
	} else {
		b = appendVarint(b, 2, Float)
		for _, v := range t.Floats {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
	}
	b = appendString(b, 8, t.Name)
	return appendBytes(b, 9, raw)
}

func (v Value) marshal() []byte {
	var shape []byte
	for i, d := range v.Dims {
		var dim []byte
		if p, ok := v.Params[i]; ok || d < 0 {
			if p == "" {
				p = fmt.Sprintf("d%d", i)
			}
			dim = appendString(dim, 2, p)
		} else {
			dim = appendVarint(dim, 1, uint64(d))
		}
		shape = appendBytes(shape, 1, dim)
	}
	var tt []byte
	tt = appendVarint(tt, 1, uint64(v.Elem))
	tt = appendBytes(tt, 2, shape)
	var typ []byte
	typ = appendBytes(typ, 1, tt)
	var b []byte
	b = appendString(b, 1, v.Name)
	return appendBytes(b, 2, typ)
}

// appendGraph appends g's nodes, initializers, inputs and outputs as GraphProto fields.
func appendGraph(b []byte, g Graph) []byte {
	for i, n := range g.Nodes {
		b = appendBytes(b, 1, n.marshal(i))
	}
	for _, t := range g.Inits {
		b = appendBytes(b, 5, t.marshal())
	}
	for _, v := range g.Inputs {
		b = appendBytes(b, 11, v.marshal())
	}
	for _, v := range g.Outputs {
		b = appendBytes(b, 12, v.marshal())
	}
	return b
}

func metadataProps(md map[string]string) []byte {
	var b []byte
	for k, v := range md {
		var e []byte
		e = appendString(e, 1, k)
		e = appendString(e, 2, v)
		b = appendBytes(b, 14, e)
	}
	return b
}

// Build writes a model of one graph at the given default-domain opset.
func Build(opset int, g Graph, md map[string]string) []byte {
	var b []byte
	b = appendVarint(b, 1, 8) // ir_version 8
	b = appendString(b, 2, "streamdet-onnxgraph")
	graph := appendString(appendGraph(nil, g), 2, "g")
	b = appendBytes(b, 7, graph)
	var op []byte
	op = appendString(op, 1, "")
	op = appendVarint(op, 2, uint64(opset))
	b = appendBytes(b, 8, op)
	return append(b, metadataProps(md)...)
}

// Wrap appends g to model's graph, replaces the graph's outputs with g.Outputs and, when md is
// not nil, replaces the model's metadata with md.
func Wrap(model []byte, g Graph, md map[string]string) ([]byte, error) {
	var out []byte
	found := false
	err := fields(model, func(num protowire.Number, typ protowire.Type, raw, val []byte) error {
		switch {
		case num == 7 && typ == protowire.BytesType:
			found = true
			var graph []byte
			if err := fields(val, func(n protowire.Number, _ protowire.Type, r, _ []byte) error {
				if n != 12 { // drop the old outputs
					graph = append(graph, r...)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("graph: %w", err)
			}
			out = appendBytes(out, 7, appendGraph(graph, g))
		case num == 14 && md != nil: // old metadata dropped
		default:
			out = append(out, raw...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("onnxgraph: model has no graph")
	}
	return append(out, metadataProps(md)...), nil
}

// fields calls fn for each top-level field of a protobuf message with its raw encoding and,
// for length-delimited fields, its payload.
func fields(b []byte, fn func(protowire.Number, protowire.Type, []byte, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		var val []byte
		if typ == protowire.BytesType {
			val, _ = protowire.ConsumeBytes(b[n:])
		}
		if err := fn(num, typ, b[:n+m], val); err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}
