package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/imageinfo"
	"github.com/streamdet/streamdet/pkg/objstore"
)

// s3Error serves every request with an S3 error document, as MinIO or S3 answer.
func s3Error(t *testing.T, status int, code string) *minio.Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>m</Message><Resource>/b/k</Resource><RequestId>1</RequestId></Error>`, code)
	}))
	t.Cleanup(srv.Close)
	mc, err := minio.New(strings.TrimPrefix(srv.URL, "http://"), &minio.Options{Creds: credentials.NewStaticV4("access-key", "secret-key-123", ""), Region: "us-east-1", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func putErr(mc *minio.Client, bucket, key string) error {
	_, err := mc.PutObject(context.Background(), bucket, key, bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
	return fmt.Errorf("objstore: put: %w", err) // wrapped, as objstore does
}

func storePut(t *testing.T, bucket, key string) error {
	st, err := objstore.New(objstore.Config{Endpoint: "127.0.0.1:1", AccessKey: "access-key", SecretKey: "secret-key-123"})
	if err != nil {
		t.Fatal(err)
	}
	return st.Put(context.Background(), bucket, key, []byte("x"), "")
}

func redisErr(t *testing.T, user, pass string) error {
	mr := miniredis.RunT(t)
	mr.RequireUserAuth("detect", "right-password")
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), Username: user, Password: pass, MaxRetries: 0})
	defer rdb.Close()
	return rdb.Get(context.Background(), "k").Err()
}

func kafkaTooLarge(t *testing.T) error {
	w := &kafka.Writer{Addr: kafka.TCP("127.0.0.1:1"), Topic: "t", BatchBytes: 1024}
	defer w.Close()
	return w.WriteMessages(context.Background(), kafka.Message{Value: make([]byte, 4096)})
}

// TestClassify holds the one classification to the real error values of kafka-go, minio-go and
// go-redis (from their clients, against servers answering as the real ones do).
func TestClassify(t *testing.T) {
	refused := func() error {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		mc, _ := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4("a", "b", ""), MaxRetries: 1})
		return putErr(mc, "frames", "k")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
		reason    contract.Reason
	}{
		{"reject", Rejectf(contract.ReasonCorruptImage, "bad"), true, contract.ReasonCorruptImage},
		{"invalid id", fmt.Errorf("ingest: %w", contract.CheckID("stream id", "a/../b")), true, contract.ReasonInvalidID},
		{"forbidden frame ref", contract.ValidateFrameRef(contract.FrameRef{StreamID: "a", FrameID: "b", SHA256: strings.Repeat("a", 64), ContentType: "image/jpeg", Width: 1, Height: 1, Bucket: "models", Key: "x"}, "frames"), true, contract.ReasonForbidden},
		{"imageinfo", fmt.Errorf("x: %w", imageinfo.ErrUnsupportedFormat), true, contract.ReasonUnsupportedFormat},
		{"object over the limit", fmt.Errorf("%w: b/k", objstore.ErrTooLarge), true, contract.ReasonTooLarge},
		{"context canceled", errors.Join(ctx.Err(), io.EOF), false, ""},
		{"kafka-go message too large (client)", kafkaTooLarge(t), true, contract.ReasonOversizedMessage},
		{"kafka MESSAGE_TOO_LARGE in WriteErrors", kafka.WriteErrors{kafka.MessageSizeTooLarge}, true, contract.ReasonOversizedMessage},
		{"kafka topic authorization", fmt.Errorf("publish: %w", kafka.WriteErrors{kafka.TopicAuthorizationFailed}), true, contract.ReasonForbidden},
		{"kafka SASL authentication", kafka.SASLAuthenticationFailed, true, contract.ReasonForbidden},
		{"kafka leader not available", kafka.WriteErrors{kafka.LeaderNotAvailable}, false, ""},
		{"kafka not enough replicas", kafka.NotEnoughReplicas, false, ""},
		{"kafka invalid topic", kafka.InvalidTopic, true, contract.ReasonInvalidRequest},
		{"kafka broker unreachable", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, false, ""},
		{"s3 AccessDenied", putErr(s3Error(t, 403, "AccessDenied"), "frames", "k"), true, contract.ReasonForbidden},
		{"s3 InvalidAccessKeyId", putErr(s3Error(t, 403, "InvalidAccessKeyId"), "frames", "k"), true, contract.ReasonForbidden},
		{"s3 NoSuchBucket", putErr(s3Error(t, 404, "NoSuchBucket"), "frames", "k"), true, contract.ReasonMissingObject},
		{"s3 EntityTooLarge", putErr(s3Error(t, 400, "EntityTooLarge"), "frames", "k"), true, contract.ReasonTooLarge},
		{"s3 invalid bucket name", storePut(t, "Bad_Bucket..", "k"), true, contract.ReasonInvalidRequest},
		{"s3 invalid key", storePut(t, "frames", ""), true, contract.ReasonInvalidRequest},
		{"s3 InternalError", putErr(s3Error(t, 500, "InternalError"), "frames", "k"), false, ""},
		{"s3 SlowDown", putErr(s3Error(t, 503, "SlowDown"), "frames", "k"), false, ""},
		{"s3 unreachable", refused(), false, ""},
		{"redis WRONGPASS", redisErr(t, "detect", "wrong-password"), true, contract.ReasonForbidden},
		{"redis NOAUTH", redisErr(t, "", ""), true, contract.ReasonForbidden},
		{"redis nil", redis.Nil, false, ""},
		{"unknown", errors.New("something else"), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("the case produced no error")
			}
			c := Classify(tc.err)
			if c.Permanent != tc.permanent || c.Reason != tc.reason {
				t.Errorf("Classify(%v) = %+v, want permanent %v reason %q", tc.err, c, tc.permanent, tc.reason)
			}
		})
	}
}
