package contract_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/pkg/testenv"
)

func schemas(t *testing.T) *contract.Schemas {
	t.Helper()
	s, err := contract.LoadSchemas(filepath.Join(testenv.RepoRoot(t), "schemas", contract.SchemaVersion))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExamples validates every example document against its schema, and decodes it into its Go
// type and back without losing a field the schema names.
func TestExamples(t *testing.T) {
	s := schemas(t)
	dir := filepath.Join(testenv.RepoRoot(t), "schemas", contract.SchemaVersion, "examples")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) < 6 {
		t.Fatalf("%d examples in %s", len(files), dir)
	}
	types := map[string]func() any{
		"frame-ref":     func() any { return new(contract.FrameRef) },
		"detections":    func() any { return new(contract.Detections) },
		"dead-letter":   func() any { return new(contract.DeadLetter) },
		"manifest":      func() any { return new(registry.Manifest) },
		"route":         func() any { return new(routing.Route) },
		"device-status": func() any { return new(contract.DeviceStatus) },
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(name, b); err != nil {
			t.Errorf("example %s: %v", name, err)
		}
		if mk, ok := types[name]; ok {
			v := mk()
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("%s into Go: %v", name, err)
			}
			if err := s.ValidateValue(name, v); err != nil {
				t.Errorf("%s after a Go round trip: %v", name, err)
			}
		}
	}
}

func TestSchemasRefuse(t *testing.T) {
	s := schemas(t)
	for _, tc := range []struct{ schema, doc string }{
		{"frame-ref", `{"frame_id":"x"}`},
		{"frame-ref", `not json`},
		{"detections", `{"frame_id":"x","stream_id":"s"}`},
		// Only an edge device's detections may come without the frame.
		{"detections", `{"frame_id":"x","stream_id":"s","capture_time":"2026-11-27T00:00:00Z","width":1,"height":1,"model":{"name":"m","version":"1","digest":"sha256:d39bee73564e338080378b0ad567fbb40e818b55bbfaf971de82a0267ed16b8a"},"route":{"arm":"primary"},"detections":[],"timing_ms":{},"detected_at":"2026-11-27T00:00:00Z"}`},
		{"dead-letter", `{"stage":"nowhere","reason":"corrupt_image","message":"","source":{"topic":"t","partition":0,"offset":0},"at":"2026-11-27T00:00:00Z"}`},
	} {
		if err := s.Validate(tc.schema, []byte(tc.doc)); err == nil {
			t.Errorf("%s accepted %s", tc.schema, tc.doc)
		}
	}
}

// TestConsumersIgnoreUnknownFields: a newer producer's extra fields do not break decoding.
func TestConsumersIgnoreUnknownFields(t *testing.T) {
	var f contract.FrameRef
	if err := json.Unmarshal([]byte(`{"frame_id":"a","stream_id":"b","future_field":{"x":1}}`), &f); err != nil || f.FrameID != "a" {
		t.Fatalf("%v %+v", err, f)
	}
}

func TestDerivedFrameID(t *testing.T) {
	a := contract.DerivedFrameID("streamdet.frames.raw", 3, 1000)
	if a != contract.DerivedFrameID("streamdet.frames.raw", 3, 1000) {
		t.Fatal("not deterministic")
	}
	for _, b := range []string{contract.DerivedFrameID("streamdet.frames.raw", 3, 1001), contract.DerivedFrameID("streamdet.frames.raw", 4, 1000), contract.DerivedFrameID("other", 3, 1000)} {
		if a == b {
			t.Fatalf("collision %s", a)
		}
	}
	_ = time.Now
}
