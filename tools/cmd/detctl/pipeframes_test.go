package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestPipelineFrames: frames sampled from what the sink stored come from every date and stream
// in turn, each once, checked against its sha256; references that name another bucket or key
// are skipped, a frame whose bytes changed is an error.
func TestPipelineFrames(t *testing.T) {
	ctx := context.Background()
	st, _ := testenv.FakeS3(t, "detections", "frames", "secrets")
	if err := st.Put(ctx, "secrets", "key.pem", []byte("secret"), "text/plain"); err != nil {
		t.Fatal(err)
	}
	ref := func(stream string, i int) contract.FrameRef {
		data := []byte(fmt.Sprintf("frame %s %d", stream, i))
		s := sha256.Sum256(data)
		h := hex.EncodeToString(s[:])
		if err := st.Put(ctx, "frames", contract.FrameKey(h, ".jpg"), data, "image/jpeg"); err != nil {
			t.Fatal(err)
		}
		return contract.FrameRef{FrameID: fmt.Sprintf("f%d", i), StreamID: stream, Bucket: "frames", Key: contract.FrameKey(h, ".jpg"),
			ContentType: "image/jpeg", Width: 4, Height: 4, SHA256: h}
	}
	file := func(key string, refs ...contract.FrameRef) {
		var b strings.Builder
		for _, r := range refs {
			line, _ := json.Marshal(contract.Detections{FrameID: r.FrameID, StreamID: r.StreamID, Frame: r})
			b.Write(append(line, '\n'))
		}
		if err := st.Put(ctx, "detections", key, []byte(b.String()), "application/x-ndjson"); err != nil {
			t.Fatal(err)
		}
	}
	evil := ref("cam-a", 99)
	evil.Bucket, evil.Key = "secrets", "key.pem"
	a1, a2 := ref("cam-a", 1), ref("cam-a", 2)
	file("dt=2026-11-30/stream=cam-a/p000-00000000000000000001.ndjson", evil, a1, a1, a2) // a1 twice: a duplicate
	file("dt=2026-11-30/stream=cam-b/p001-00000000000000000001.ndjson", ref("cam-b", 1))
	file("dt=2026-12-01/stream=cam-a/p000-00000000000000000009.ndjson", ref("cam-a", 3))
	file("dt=2026-12-01/stream=cam-c/p002-00000000000000000001.ndjson", ref("cam-c", 1), ref("cam-c", 2))
	file("_streamdet/journal.ndjson", ref("cam-z", 1)) // not a detections file

	got, err := pipelineFrames(ctx, st, "detections", "frames", 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range got {
		names = append(names, f.name)
	}
	// One frame from each date/stream group in turn, then around again.
	if want := "cam-a_f1.jpg cam-b_f1.jpg cam-a_f3.jpg cam-c_f1.jpg cam-a_f2.jpg"; strings.Join(names, " ") != want {
		t.Errorf("sampled %v, want %s", names, want)
	}
	all, err := pipelineFrames(ctx, st, "detections", "frames", 100, nil)
	if err != nil || len(all) != 6 {
		t.Errorf("all frames: %d, %v; want 6 (each once, none from another bucket)", len(all), err)
	}
	// Only the streams asked for (the drifting ones).
	some, err := pipelineFrames(ctx, st, "detections", "frames", 100, map[string]bool{"cam-c": true, "cam-b": true})
	names = nil
	for _, f := range some {
		names = append(names, f.name)
	}
	if err != nil || strings.Join(names, " ") != "cam-b_f1.jpg cam-c_f1.jpg cam-c_f2.jpg" {
		t.Errorf("frames of cam-b and cam-c: %v, %v", names, err)
	}
	// A frame changed in the bucket: refused.
	if err := st.Put(ctx, "frames", a1.Key, []byte("tampered"), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	if _, err := pipelineFrames(ctx, st, "detections", "frames", 1, nil); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("tampered frame: %v", err)
	}
	if _, err := pipelineFrames(ctx, st, "frames", "frames", 1, nil); err == nil {
		t.Error("a bucket without detections files gave frames")
	}
	if _, err := pipelineSource(ctx, "pipeline:0", nil); err == nil {
		t.Error("pipeline:0 accepted")
	}
}
