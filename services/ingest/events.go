package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/pipeline"
)

// s3Event is the part of an S3 event notification (as MinIO publishes to Kafka) ingest reads.
type s3Event struct {
	Records []struct {
		EventName string    `json:"eventName"`
		EventTime time.Time `json:"eventTime"`
		S3        struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key  string `json:"key"`
				Size int64  `json:"size"`
				ETag string `json:"eTag"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
}

// HandleEvent is the handler of the bucket-notification topic: for each object created it
// fetches the object and ingests it. The stream id is the first segment of the object key
// (cam-1/0001.jpg → cam-1); the frame id is derived from bucket, key and ETag, so a repeated
// notification yields the same frame.
func (in *Ingester) HandleEvent(ctx context.Context, m kafka.Message) error {
	var ev s3Event
	if err := json.Unmarshal(m.Value, &ev); err != nil {
		return pipeline.Rejectf(contract.ReasonSchemaViolation, "bucket notification: %v", err)
	}
	if len(ev.Records) == 0 {
		return pipeline.Rejectf(contract.ReasonSchemaViolation, "bucket notification without Records")
	}
	for _, rec := range ev.Records {
		if !strings.Contains(rec.EventName, "ObjectCreated") {
			continue
		}
		bucket := rec.S3.Bucket.Name
		key, err := url.QueryUnescape(rec.S3.Object.Key) // S3 notifications URL-encode keys
		if err != nil || bucket == "" || key == "" {
			return pipeline.Rejectf(contract.ReasonSchemaViolation, "bucket notification: bucket %q key %q", bucket, rec.S3.Object.Key)
		}
		if !slices.Contains(in.cfg.EventBuckets, bucket) {
			return pipeline.Rejectf(contract.ReasonForbidden, "bucket notification from bucket %q, which is not in STREAMDET_INGEST_EVENT_BUCKETS", bucket)
		}
		// The stream id is the key's first segment; the rest of the key is not used in any
		// key or path of ours.
		stream, _, found := strings.Cut(key, "/")
		if !found {
			stream = "default"
		}
		if err := contract.CheckID("stream id (first segment of the object key)", stream); err != nil {
			return &pipeline.Reject{Reason: contract.ReasonInvalidID, Err: err}
		}
		if rec.S3.Object.Size > int64(in.cfg.Limits.MaxBytes) {
			return pipeline.Rejectf(contract.ReasonTooLarge, "object %s/%s is %d bytes, over %d", bucket, key, rec.S3.Object.Size, in.cfg.Limits.MaxBytes)
		}
		var data []byte
		err = in.stage.Retry(ctx, "minio", func() error {
			var gerr error
			data, gerr = in.store.Get(ctx, bucket, key, int64(in.cfg.Limits.MaxBytes))
			return gerr
		}, nil)
		if err != nil {
			return err // permanent ones (missing, forbidden, over the limit) are dead-lettered
		}
		sum := sha256.Sum256([]byte(bucket + "/" + key + "/" + rec.S3.Object.ETag))
		f := Frame{Data: data, StreamID: stream, FrameID: "s3-" + hex.EncodeToString(sum[:12]), CaptureTime: rec.EventTime, Sequence: m.Offset}
		if f.CaptureTime.IsZero() {
			f.CaptureTime = m.Time
		}
		if _, err := in.Ingest(ctx, f); err != nil {
			return err
		}
	}
	return nil
}
