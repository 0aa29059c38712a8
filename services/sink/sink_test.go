package sink

import (
	"fmt"
	"testing"
)

func TestFIFOSetForgetsOldest(t *testing.T) {
	s := newFIFOSet(3)
	for i := 0; i < 5; i++ {
		s.add(fmt.Sprint(i))
		s.add(fmt.Sprint(i)) // adding twice keeps one slot
	}
	for i, want := range []bool{false, false, true, true, true} {
		if s.has(fmt.Sprint(i)) != want {
			t.Errorf("has(%d) = %v, want %v", i, !want, want)
		}
	}
}

func TestObjectKeyIsStableAndPartitioned(t *testing.T) {
	a := objectKey("2026-11-27", "cam-1", 2, 1234)
	if a != "dt=2026-11-27/stream=cam-1/p002-000000001234.ndjson" || a != objectKey("2026-11-27", "cam-1", 2, 1234) {
		t.Fatalf("key %q", a)
	}
}
