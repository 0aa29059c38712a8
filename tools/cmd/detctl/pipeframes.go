package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/objstore"
)

// pipelinePrefix marks a frame source that samples the pipeline's own frames: "pipeline:N".
const pipelinePrefix = "pipeline:"

// frameStore is what sampling the pipeline's frames needs from object storage.
type frameStore interface {
	List(ctx context.Context, bucket, prefix string) ([]string, error)
	Get(ctx context.Context, bucket, key string, max int64) ([]byte, error)
}

// Bounds on what sampling reads.
const (
	maxDetectionsFile = 64 << 20
	maxFrameBytes     = 32 << 20
)

// pipelineSource parses "pipeline:N" and samples N frames with the environment's object store
// (STREAMDET_MINIO_*, STREAMDET_DETECTIONS_BUCKET, STREAMDET_FRAMES_BUCKET), of streams only
// (nil: every stream).
func pipelineSource(ctx context.Context, spec string, streams map[string]bool) ([]frame, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(spec, pipelinePrefix))
	if err != nil || n < 1 || n > 100000 {
		return nil, fmt.Errorf("%q: want pipeline:N, N in [1, 100000] frames", spec)
	}
	env := envconf.OS()
	oc := objstore.FromEnv(env)
	det, fr := env.String("STREAMDET_DETECTIONS_BUCKET", "detections"), env.String("STREAMDET_FRAMES_BUCKET", "frames")
	if err := errors.Join(oc.Validate(), env.Err()); err != nil {
		return nil, fmt.Errorf("%s: configuration (run `eval \"$(make -s env)\"` for the local stack): %w", spec, err)
	}
	st, err := objstore.New(oc)
	if err != nil {
		return nil, err
	}
	return pipelineFrames(ctx, st, det, fr, n, streams)
}

// pipelineFrames samples n distinct frames the pipeline has stored, spread across streams and
// time: the sink's detections files (dt=<date>/stream=<id>/…ndjson) are grouped by date and
// stream, and the groups give one frame each in turn. Every frame reference is checked as
// hostile input (contract.ValidateFrameRef: only the frames bucket, only the content-addressed
// key) and every frame against its sha256. With streams, only those streams' files are read.
func pipelineFrames(ctx context.Context, st frameStore, detBucket, framesBucket string, n int, streams map[string]bool) ([]frame, error) {
	keys, err := st.List(ctx, detBucket, "dt=")
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", detBucket, err)
	}
	groups := map[string][]string{} // "dt=…/stream=…" → files, in key order
	for _, k := range keys {
		parts := strings.SplitN(k, "/", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[1], "stream=") || !strings.HasSuffix(k, ".ndjson") {
			continue
		}
		if streams != nil && !streams[strings.TrimPrefix(parts[1], "stream=")] {
			continue
		}
		g := parts[0] + "/" + parts[1]
		groups[g] = append(groups[g], k)
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		sort.Strings(groups[g])
		names = append(names, g)
	}
	sort.Strings(names)
	// Each group's frame references, read lazily file by file.
	type cursor struct {
		files []string
		refs  []contract.FrameRef
	}
	cur := map[string]*cursor{}
	for _, g := range names {
		cur[g] = &cursor{files: groups[g]}
	}
	next := func(c *cursor) (contract.FrameRef, bool, error) {
		for len(c.refs) == 0 && len(c.files) > 0 {
			b, err := st.Get(ctx, detBucket, c.files[0], maxDetectionsFile)
			if err != nil {
				return contract.FrameRef{}, false, fmt.Errorf("reading %s/%s: %w", detBucket, c.files[0], err)
			}
			c.files = c.files[1:]
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(nil, 4<<20)
			for sc.Scan() {
				var d contract.Detections
				if json.Unmarshal(sc.Bytes(), &d) == nil && contract.ValidateFrameRef(d.Frame, framesBucket) == nil && (streams == nil || streams[d.Frame.StreamID]) {
					c.refs = append(c.refs, d.Frame)
				}
			}
		}
		if len(c.refs) == 0 {
			return contract.FrameRef{}, false, nil
		}
		r := c.refs[0]
		c.refs = c.refs[1:]
		return r, true, nil
	}
	var out []frame
	seen := map[string]bool{}
	for len(out) < n {
		progress := false
		for _, g := range names {
			if len(out) == n {
				break
			}
			for {
				ref, ok, err := next(cur[g])
				if err != nil {
					return nil, err
				}
				if !ok {
					break
				}
				if seen[ref.SHA256] {
					continue // the same frame twice (a duplicate, or another model's detections)
				}
				seen[ref.SHA256] = true
				data, err := st.Get(ctx, ref.Bucket, ref.Key, maxFrameBytes)
				if err != nil {
					return nil, fmt.Errorf("frame %s of stream %s: %w", ref.FrameID, ref.StreamID, err)
				}
				if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != ref.SHA256 {
					return nil, fmt.Errorf("frame %s of stream %s: does not match its sha256", ref.FrameID, ref.StreamID)
				}
				ext := ".jpg"
				if ref.ContentType == "image/png" {
					ext = ".png"
				}
				out = append(out, frame{name: ref.StreamID + "_" + ref.FrameID + ext, data: data})
				progress = true
				break
			}
		}
		if !progress {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no frames: %s has no detections files of frames in %s", detBucket, framesBucket)
	}
	return out, nil
}
