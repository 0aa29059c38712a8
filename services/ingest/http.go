package ingest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
)

// uploadResponse is the body of a 202 from POST /v1/frames.
type uploadResponse struct {
	FrameID  string `json:"frame_id"`
	StreamID string `json:"stream_id"`
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	SHA256   string `json:"sha256"`
}

// ServeHTTP handles POST /v1/frames: a raw image body (stream id, frame id, capture time and
// sequence in X-Stream-Id, X-Frame-Id, X-Capture-Time, X-Sequence) or multipart/form-data with
// a file part "frame" and fields stream_id, frame_id, capture_time, sequence. It answers 202
// with the frame id once the reference is durably on the frames topic. A refused frame gets 400,
// 403 (a stream the caller's token may not use), 413 or 415 with a reason code, and nothing is
// stored; 503 means try again. Error bodies carry reason codes, never internal errors.
func (in *Ingester) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := in.stage.Tel.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := in.stage.Tel.Tracer.Start(ctx, "POST /v1/frames", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	in.stage.In.Add(ctx, 1, in.stage.Attrs(attribute.String("topic", "http")))

	f, err := in.readUpload(r)
	if err == nil {
		if p := service.PrincipalFrom(ctx); !p.MayUse(f.StreamID) {
			err = pipeline.Rejectf(contract.ReasonForbidden, "stream %q is outside this token's scope", f.StreamID)
		}
	}
	if err == nil {
		var ref contract.FrameRef
		if ref, err = in.Ingest(ctx, f); err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			json.NewEncoder(w).Encode(uploadResponse{ref.FrameID, ref.StreamID, ref.Bucket, ref.Key, ref.SHA256})
			return
		}
	}
	status, reason, text := http.StatusServiceUnavailable, "unavailable", "the frame could not be stored now; try again"
	var rej *pipeline.Reject
	if errors.As(err, &rej) {
		reason, text = string(rej.Reason), rejectText[rej.Reason]
		switch rej.Reason {
		case contract.ReasonTooLarge, contract.ReasonOversizedMessage:
			status = http.StatusRequestEntityTooLarge
		case contract.ReasonUnsupportedFormat:
			status = http.StatusUnsupportedMediaType
		case contract.ReasonForbidden:
			status = http.StatusForbidden
		default:
			status = http.StatusBadRequest
		}
		if text == "" {
			text = "the frame was refused"
		}
	} else {
		w.Header().Set("Retry-After", "1")
	}
	in.stage.Tel.Logger.InfoContext(ctx, "upload refused", "status", status, "reason", reason, "err", err)
	span.SetStatus(codes.Error, reason)
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	service.WriteError(w, status, reason, text)
}

// rejectText is what a caller is told of each refusal: fixed texts, so that no internal detail
// (object keys, server errors) reaches a client.
var rejectText = map[contract.Reason]string{
	contract.ReasonEmpty:             "the frame is empty",
	contract.ReasonUnsupportedFormat: "the frame is not a JPEG or PNG image",
	contract.ReasonCorruptImage:      "the image header is damaged",
	contract.ReasonTooLarge:          "the frame is over the byte or pixel limit",
	contract.ReasonSchemaViolation:   "a field of the request is malformed",
	contract.ReasonInvalidID:         "stream id and frame id must match " + contract.IDPattern,
	contract.ReasonForbidden:         "this credential may not publish to that stream",
}

func (in *Ingester) readUpload(r *http.Request) (Frame, error) {
	limit := int64(in.cfg.Limits.MaxBytes)
	body := http.MaxBytesReader(nil, r.Body, limit+1<<20)
	f := Frame{
		StreamID: r.Header.Get("X-Stream-Id"), FrameID: r.Header.Get("X-Frame-Id"),
		CaptureTime: in.stage.Now(),
	}
	capture, seq := r.Header.Get("X-Capture-Time"), r.Header.Get("X-Sequence")
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	if mt == "multipart/form-data" {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, perr := mr.NextPart()
			if perr == io.EOF {
				break
			}
			if perr != nil {
				return f, uploadErr(perr, limit)
			}
			v, rerr := io.ReadAll(io.LimitReader(p, limit+1))
			if rerr != nil {
				return f, uploadErr(rerr, limit)
			}
			switch p.FormName() {
			case "frame", "file", "image":
				f.Data = v
			case "stream_id":
				f.StreamID = string(v)
			case "frame_id":
				f.FrameID = string(v)
			case "capture_time":
				capture = string(v)
			case "sequence":
				seq = string(v)
			}
		}
	} else {
		f.Data, err = io.ReadAll(io.LimitReader(body, limit+1))
		if err != nil {
			return f, uploadErr(err, limit)
		}
	}
	if int64(len(f.Data)) > limit {
		return f, pipeline.Rejectf(contract.ReasonTooLarge, "frame over %d bytes", limit)
	}
	if capture != "" {
		t, err := time.Parse(time.RFC3339Nano, capture)
		if err != nil {
			return f, pipeline.Rejectf(contract.ReasonSchemaViolation, "capture time %q: want RFC 3339", capture)
		}
		f.CaptureTime = t
	}
	if seq != "" {
		n, err := strconv.ParseInt(seq, 10, 64)
		if err != nil || n < 0 {
			return f, pipeline.Rejectf(contract.ReasonSchemaViolation, "sequence %q: want a non-negative integer", seq)
		}
		f.Sequence = n
	}
	if f.StreamID == "" {
		f.StreamID = "default"
	}
	if f.FrameID == "" {
		var b [12]byte
		rand.Read(b[:])
		f.FrameID = "h-" + hex.EncodeToString(b[:])
	}
	if err := contract.CheckIDs("stream id", f.StreamID, "frame id", f.FrameID); err != nil {
		return f, &pipeline.Reject{Reason: contract.ReasonInvalidID, Err: err}
	}
	return f, nil
}

func uploadErr(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return pipeline.Rejectf(contract.ReasonTooLarge, "upload over %d bytes", limit)
	}
	return pipeline.Rejectf(contract.ReasonSchemaViolation, "reading the upload: %v", err)
}
