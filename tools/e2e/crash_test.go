//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestIntegrationCrashes kills the sink (kill -9) three times and ingest twice while 500 frames
// flow, restarting each at once, and then accounts for every frame: none lost, none twice in the
// sink's files, no annotated frame twice.
func TestIntegrationCrashes(t *testing.T) {
	longRunning(t)
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const frames = 500
	run := fmt.Sprintf("crash%d", time.Now().UnixNano()%1e9)
	testenv.Topics(t, st.KafkaBrokers, 3, runTopics(run, "frames.raw", "frames", "detections", "detections.shadow", "dlq", "frames.events")...)
	env := []string{
		"STREAMDET_TOPIC_PREFIX=" + run, "STREAMDET_FRAMES_BUCKET=" + run + "-frames", "STREAMDET_DETECTIONS_BUCKET=" + run + "-detections",
		"STREAMDET_DEADLETTER_BUCKET=" + run + "-deadletters", "STREAMDET_ANNOTATED_BUCKET=" + run + "-annotated", "STREAMDET_SINK_ANNOTATE=true",
		"STREAMDET_INGEST_GROUP=" + run + "-ingest", "STREAMDET_DETECT_GROUP=" + run + "-detect", "STREAMDET_SINK_GROUP=" + run + "-sink",
		"STREAMDET_SINK_FLUSH_INTERVAL=400ms", "STREAMDET_SINK_BATCH_ROWS=32", "OTEL_TRACES_EXPORTER=none", "STREAMDET_LOG_LEVEL=warn",
	}
	ingest := startService(t, "ingest", env)
	startService(t, "detect", append(append([]string(nil), env...), "STREAMDET_MODEL_PATH="+testenv.Shared(t, "models", "yolox_nano.onnx"),
		"STREAMDET_MODEL_FORMAT=yolox", "STREAMDET_MODEL_NAMES_PATH="+testenv.Shared(t, "models", "coco.names"), "STREAMDET_MODEL_NAME=coco",
		"STREAMDET_ENGINE_SESSIONS=2", "STREAMDET_DETECT_CONCURRENCY=4"))
	procs := map[string]*proc{"ingest": ingest, "sink": startService(t, "sink", env)}
	mc, _ := minio.New(st.MinIOEndpoint, &minio.Options{Creds: credentials.NewStaticV4(st.MinIOAccessKey, st.MinIOSecretKey, "")})
	dlq := follow(ctx, t, st.KafkaBrokers, run+".dlq")

	images := [][]byte{}
	for _, n := range []string{"dog.jpg", "horses.jpg", "person.jpg"} {
		b, _ := os.ReadFile(testenv.Shared(t, "images", n))
		images = append(images, b)
	}
	w := &kafka.Writer{Addr: kafka.TCP(st.KafkaBrokers...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	produced := make(chan error, 1)
	go func() {
		produced <- func() error {
			for i := 0; i < frames; i++ {
				stream := fmt.Sprintf("cam-%d", i%8)
				if err := w.WriteMessages(ctx, kafka.Message{Topic: run + ".frames.raw", Key: []byte(stream), Value: images[i%3],
					Headers: []kafka.Header{{Key: "ce_id", Value: []byte(fmt.Sprintf("c-%d", i))}}}); err != nil {
					return err
				}
				time.Sleep(40 * time.Millisecond) // ~25 frames/s for 20 s
			}
			return nil
		}()
	}()

	// Kills at spread-out moments, each restart at once: sink, ingest, sink, ingest, sink.
	written := func() map[string]int { return sinkRows(ctx, t, mc, run+"-detections") }
	for i, name := range []string{"sink", "ingest", "sink", "ingest", "sink"} {
		target := (i + 1) * frames / 7
		for len(written()) < target {
			if ctx.Err() != nil {
				t.Fatalf("only %d frames written before kill %d", len(written()), i+1)
			}
			time.Sleep(150 * time.Millisecond)
		}
		procs[name].kill()
		t.Logf("kill -9 %s at %d frames written", name, len(written()))
		procs[name] = startService(t, name, env)
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(4 * time.Minute)
	for len(written()) < frames {
		if time.Now().After(deadline) {
			t.Fatalf("after 4 minutes %d of %d frames in the sink's files", len(written()), frames)
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // let any duplicate land, if one were coming

	rows := written()
	lost, dups := 0, 0
	for i := 0; i < frames; i++ {
		k := fmt.Sprintf("cam-%d/c-%d", i%8, i)
		switch n := rows[k]; {
		case n == 0:
			lost++
		case n > 1:
			dups += n - 1
			t.Errorf("frame %s: %d rows in the files", k, n)
		}
	}
	if lost > 0 || len(rows) != frames {
		t.Errorf("%d frames lost; %d distinct rows for %d frames", lost, len(rows), frames)
	}
	if n := len(dlq.snapshot()); n != 0 {
		t.Errorf("%d dead letters for good frames", n)
	}
	annotated := map[string]int{}
	for o := range mc.ListObjects(ctx, run+"-annotated", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		parts := strings.Split(o.Key, "/") // stream/frame/model/version.jpg
		if len(parts) != 4 {
			t.Errorf("annotated object %s", o.Key)
			continue
		}
		annotated[parts[0]+"/"+parts[1]]++
	}
	for k, n := range annotated {
		if n != 1 {
			t.Errorf("annotated frame %s stored %d times", k, n)
		}
		if rows[k] != 1 {
			t.Errorf("annotated frame %s has no row", k)
		}
	}
	t.Logf("%d frames, 3 sink and 2 ingest kills: %d lost, %d duplicate rows, %d annotated frames (each once)", frames, lost, dups, len(annotated))
}
