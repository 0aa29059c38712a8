//go:build integration

package smoke

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	ort "github.com/yalue/onnxruntime_go"

	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestIntegrationKafkaConsumerGroup produces 1,000 keyed messages to a fresh 3-partition topic and
// consumes them through a consumer group, committing each: none may be lost and each key's
// messages must arrive in the order they were produced.
func TestIntegrationKafkaConsumerGroup(t *testing.T) {
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	topic := fmt.Sprintf("smoke.cg.%d", time.Now().UnixNano())
	client := testenv.Topics(t, st.KafkaBrokers, 3, topic)

	const n, keys = 1000, 17
	w := &kafka.Writer{
		Addr: kafka.TCP(st.KafkaBrokers...), Topic: topic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchSize: 100, BatchTimeout: 5 * time.Millisecond,
	}
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("key-%d", i%keys)), Value: []byte(fmt.Sprint(i))}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: st.KafkaBrokers, GroupID: topic + ".group", Topic: topic,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	seen := make(map[int]bool, n)
	last := map[string]int{}
	partitions := map[int]bool{}
	for len(seen) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch after %d messages: %v", len(seen), err)
		}
		var v int
		fmt.Sscan(string(m.Value), &v)
		if prev, ok := last[string(m.Key)]; ok && v <= prev {
			t.Fatalf("key %s: message %d after %d: per-key order broken", m.Key, v, prev)
		}
		last[string(m.Key)] = v
		seen[v] = true
		partitions[m.Partition] = true
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	if len(partitions) != 3 {
		t.Errorf("messages came from %d partitions, want 3", len(partitions))
	}
	// Everything is committed: the group's lag is zero on every partition.
	off, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: topic + ".group", Topics: map[string][]int{topic: {0, 1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	for _, p := range off.Topics[topic] {
		committed += p.CommittedOffset
	}
	if committed != n {
		t.Errorf("committed offsets add up to %d, want %d", committed, n)
	}
}

// TestIntegrationMinIO puts, gets and deletes a 2 MB object.
func TestIntegrationMinIO(t *testing.T) {
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mc, err := minio.New(st.MinIOEndpoint, &minio.Options{Creds: credentials.NewStaticV4(st.MinIOAccessKey, st.MinIOSecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	bucket := fmt.Sprintf("smoke-%d", time.Now().UnixNano())
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	defer mc.RemoveBucket(context.Background(), bucket)

	data := make([]byte, 2<<20)
	rand.Read(data)
	if _, err := mc.PutObject(ctx, bucket, "blob", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}
	obj, err := mc.GetObject(ctx, bucket, "blob", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes back, not the 2 MB put", len(got))
	}
	if err := mc.RemoveObject(ctx, bucket, "blob", minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := mc.StatObject(ctx, bucket, "blob", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Fatalf("stat after delete: %v, want NoSuchKey", err)
	}

	// The default credentials are refused.
	def, _ := minio.New(st.MinIOEndpoint, &minio.Options{Creds: credentials.NewStaticV4("minioadmin", "minioadmin", "")})
	if _, err := def.ListBuckets(ctx); err == nil {
		t.Fatal("minioadmin/minioadmin accepted: the stack must not run with default credentials")
	}
}

// TestIntegrationRedisAuth sets and gets a key with the password and checks that a client
// without it is refused.
func TestIntegrationRedisAuth(t *testing.T) {
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: st.RedisAddr, Password: st.RedisPassword})
	defer rdb.Close()
	key := fmt.Sprintf("smoke:%d", time.Now().UnixNano())
	if err := rdb.Set(ctx, key, "v1", time.Minute).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "v1" {
		t.Fatalf("get = %q, %v", v, err)
	}
	anon := redis.NewClient(&redis.Options{Addr: st.RedisAddr})
	defer anon.Close()
	err := anon.Get(ctx, key).Err()
	if err == nil || errors.Is(err, redis.Nil) || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("unauthenticated GET: %v, want a NOAUTH refusal", err)
	}
}

// TestIntegrationONNXRuntime loads the shared YOLOX-Nano model and checks its output shape.
func TestIntegrationONNXRuntime(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	model := testenv.Shared(t, "models", "yolox_nano.onnx")
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(); err != nil {
		t.Fatalf("initialize ONNX Runtime from %s: %v", lib, err)
	}
	defer ort.DestroyEnvironment()
	t.Logf("ONNX Runtime %s", ort.GetVersion())

	in, err := ort.NewTensor(ort.NewShape(1, 3, 416, 416), make([]float32, 3*416*416))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	for i, v := range in.GetData() {
		in.GetData()[i] = v + 114
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 3549, 85))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	s, err := ort.NewAdvancedSession(model, []string{"images"}, []string{"output"}, []ort.Value{in}, []ort.Value{out}, nil)
	if err != nil {
		t.Fatalf("load %s: %v", model, err)
	}
	defer s.Destroy()
	if err := s.Run(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := out.GetShape(); !got.Equals(ort.NewShape(1, 3549, 85)) {
		t.Fatalf("output shape %v, want [1 3549 85]", got)
	}
	for i, v := range out.GetData() {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("output[%d] = %v, not finite", i, v)
		}
	}
}
