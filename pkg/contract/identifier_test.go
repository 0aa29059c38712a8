package contract_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/streamdet/streamdet/pkg/contract"
)

func TestIDGrammar(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"cam-1", true}, {"f-5f0e8c6a1b2d3e4f5a6b7c8d", true}, {"site:gate.north_2", true}, {"0", true},
		{strings.Repeat("a", 128), true},
		{"", false}, {strings.Repeat("a", 129), false}, {strings.Repeat("a", 1024), false},
		{"a/../b", false}, {"cam/", false}, {"/cam", false}, {".", false}, {"..", false}, {".hidden", false},
		{"-flag", false}, {"_x", false}, {"a b", false}, {"a\nb", false}, {"a\x00b", false}, {"a\x7fb", false},
		{"caméra", false}, {"a\xffb", false}, {"<script>alert(1)</script>", false}, {"a%2F..", false}, {"a\\b", false},
	} {
		err := contract.CheckID("stream id", tc.id)
		if (err == nil) != tc.ok || contract.ValidID(tc.id) != tc.ok {
			t.Errorf("%q: err %v, want valid=%v", tc.id, err, tc.ok)
		}
		if err != nil && !errors.Is(err, contract.ErrInvalidID) {
			t.Errorf("%q: %v does not wrap ErrInvalidID", tc.id, err)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("%q: error of %d bytes echoes the value", tc.id[:10], len(err.Error()))
		}
	}
}

func TestValidateFrameRef(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	good := contract.FrameRef{FrameID: "f-1", StreamID: "cam-1", Bucket: "frames", Key: contract.FrameKey(sum, ".jpg"),
		ContentType: "image/jpeg", Width: 10, Height: 10, SHA256: sum}
	if err := contract.ValidateFrameRef(good, "frames"); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mut  func(*contract.FrameRef)
		want error
	}{
		"stream traversal": {func(r *contract.FrameRef) { r.StreamID = "a/../b" }, contract.ErrInvalidID},
		"frame id 1 KiB":   {func(r *contract.FrameRef) { r.FrameID = strings.Repeat("f", 1024) }, contract.ErrInvalidID},
		"other bucket":     {func(r *contract.FrameRef) { r.Bucket = "models" }, contract.ErrForbiddenObject},
		"other key":        {func(r *contract.FrameRef) { r.Key = "coco/1/model.onnx" }, contract.ErrForbiddenObject},
		"key of another sum": {func(r *contract.FrameRef) {
			r.Key = contract.FrameKey(strings.Repeat("cd", 32), ".jpg")
		}, contract.ErrForbiddenObject},
		"bad sha":    {func(r *contract.FrameRef) { r.SHA256 = "xyz" }, contract.ErrSchema},
		"zero width": {func(r *contract.FrameRef) { r.Width = 0 }, contract.ErrSchema},
	} {
		r := good
		tc.mut(&r)
		if err := contract.ValidateFrameRef(r, "frames"); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// FuzzCheckID holds the grammar's promises for any input: a valid identifier is one object-key
// segment (no '/', not "." or ".."), at most MaxIDLen bytes of printable ASCII; the error for an
// invalid one is short and does not carry the raw bytes.
func FuzzCheckID(f *testing.F) {
	for _, s := range []string{"cam-1", "a/../b", "..", "", strings.Repeat("x", 200), "a\x00b", "\xff", "<script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := contract.CheckID("id", s)
		if err == nil {
			if strings.ContainsAny(s, "/\\\x00") || s == "." || s == ".." || len(s) > contract.MaxIDLen || len(s) == 0 {
				t.Fatalf("%q accepted", s)
			}
			for _, r := range s {
				if r < 0x21 || r > 0x7e {
					t.Fatalf("%q accepted with byte %q", s, r)
				}
			}
			return
		}
		if len(err.Error()) > 400 {
			t.Fatalf("error of %d bytes", len(err.Error()))
		}
	})
}
