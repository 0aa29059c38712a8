package engine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Format names a detector family: how its input is prepared and its output decoded.
type Format string

// The supported formats; see the package documentation for each family's conventions.
const (
	FormatAuto    Format = "auto"
	FormatYOLOX   Format = "yolox"
	FormatYOLOv5  Format = "yolov5"
	FormatYOLOv8  Format = "yolov8"
	FormatEnd2End Format = "end2end"
)

// Formats lists the concrete formats, for flags and error messages.
var Formats = []Format{FormatYOLOX, FormatYOLOv5, FormatYOLOv8, FormatEnd2End}

func formatList() string {
	s := make([]string, len(Formats))
	for i, f := range Formats {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// ParseFormat accepts a format name ("" means auto).
func ParseFormat(s string) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(s)))
	if f == "" || f == FormatAuto {
		return FormatAuto, nil
	}
	for _, k := range Formats {
		if f == k {
			return f, nil
		}
	}
	return "", fmt.Errorf("%w: %q (formats: auto, %s)", ErrUnknownFormat, s, formatList())
}

// Sentinel errors returned (wrapped) by the engine.
var (
	// ErrUnknownFormat: the format is not one of Formats, or auto-detection found nothing to go by.
	ErrUnknownFormat = errors.New("engine: unknown model format")
	// ErrModel: the model could not be loaded (malformed, truncated) or its inputs and outputs
	// fit no supported family.
	ErrModel = errors.New("engine: unusable model")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("engine: closed")
)

// family is how a format prepares its input.
type family struct {
	bgr    bool    // channel order B, G, R (else R, G, B)
	scale  float32 // multiply 0..255 by this
	center bool    // Ultralytics centred letterbox (else YOLOX top-left)
}

func (f Format) family() family {
	if f == FormatYOLOX {
		return family{bgr: true, scale: 1, center: false}
	}
	return family{bgr: false, scale: 1.0 / 255, center: true}
}

// metadata is what a model's ONNX metadata says about itself (Ultralytics and YOLOv5 exports).
type metadata struct {
	task    string
	names   []string
	imgsz   [2]int // h, w
	stride  int
	end2end bool
}

// parseMetadata reads the custom metadata map an Ultralytics or YOLOv5 export writes.
func parseMetadata(m map[string]string) (metadata, error) {
	var md metadata
	md.task = strings.TrimSpace(m["task"])
	if s, ok := m["names"]; ok {
		names, err := parsePyNames(s)
		if err != nil {
			return md, fmt.Errorf("metadata names: %w", err)
		}
		md.names = names
	}
	if s, ok := m["imgsz"]; ok {
		var v []int
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '[' || r == ']' || r == ',' || r == ' ' || r == '(' || r == ')' }) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return md, fmt.Errorf("metadata imgsz %q: %w", s, err)
			}
			v = append(v, n)
		}
		switch len(v) {
		case 1:
			md.imgsz = [2]int{v[0], v[0]}
		case 2:
			md.imgsz = [2]int{v[0], v[1]}
		default:
			return md, fmt.Errorf("metadata imgsz %q: want one or two sizes", s)
		}
	}
	if s, ok := m["stride"]; ok {
		md.stride, _ = strconv.Atoi(strings.TrimSpace(s))
	}
	md.end2end = strings.EqualFold(strings.TrimSpace(m["end2end"]), "true")
	return md, nil
}

// parsePyNames parses the Python dict literal Ultralytics writes for class names, e.g.
// "{0: 'person', 1: 'bicycle'}", or a JSON-ish list. Indices must be 0..n-1.
func parsePyNames(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || !(s[0] == '{' && s[len(s)-1] == '}' || s[0] == '[' && s[len(s)-1] == ']') {
		return nil, fmt.Errorf("not a dict or list: %.40q", s)
	}
	isDict := s[0] == '{'
	body := s[1 : len(s)-1]
	byIndex := map[int]string{}
	next := 0
	for i := 0; i < len(body); {
		for i < len(body) && (body[i] == ' ' || body[i] == ',' || body[i] == '\n') {
			i++
		}
		if i >= len(body) {
			break
		}
		idx := next
		if isDict {
			j := strings.IndexByte(body[i:], ':')
			if j < 0 {
				return nil, fmt.Errorf("missing ':' near %.20q", body[i:])
			}
			n, err := strconv.Atoi(strings.TrimSpace(body[i : i+j]))
			if err != nil {
				return nil, fmt.Errorf("class index %q: %w", body[i:i+j], err)
			}
			idx = n
			i += j + 1
			for i < len(body) && body[i] == ' ' {
				i++
			}
		}
		if i >= len(body) || (body[i] != '\'' && body[i] != '"') {
			return nil, fmt.Errorf("expected a quoted name near %.20q", body[i:])
		}
		q := body[i]
		var b strings.Builder
		i++
		for ; i < len(body) && body[i] != q; i++ {
			if body[i] == '\\' && i+1 < len(body) {
				i++
			}
			b.WriteByte(body[i])
		}
		if i >= len(body) {
			return nil, errors.New("unterminated name")
		}
		i++
		byIndex[idx] = b.String()
		next = idx + 1
	}
	names := make([]string, len(byIndex))
	for k, v := range byIndex {
		if k < 0 || k >= len(names) {
			return nil, fmt.Errorf("class indices are not 0..%d", len(names)-1)
		}
		names[k] = v
	}
	return names, nil
}

// ReadNames reads a names file: one class name per line, line i = class i; blank trailing
// lines are ignored.
func ReadNames(data []byte) []string {
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}
