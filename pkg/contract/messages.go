package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// SchemaVersion is the version of every schema under schemas/v1. Within a version only additive
// changes are made; consumers ignore fields they do not know.
const SchemaVersion = "v1"

// CloudEvents types (ce_type) of streamdet's messages.
const (
	TypeRawFrame   = "io.streamdet.frame.raw.v1"
	TypeFrameRef   = "io.streamdet.frame.ref.v1"
	TypeDetections = "io.streamdet.detections.v1"
	TypeDeadLetter = "io.streamdet.deadletter.v1"
	TypeDevice     = "io.streamdet.device.status.v1"
	TypeRollout    = "io.streamdet.rollout.event.v1"
)

// FrameRef is the claim check ingest publishes on the frames topic: the frame's bytes are in
// object storage at Bucket/Key. Schema: schemas/v1/frame-ref.schema.json.
type FrameRef struct {
	FrameID     string    `json:"frame_id"`
	StreamID    string    `json:"stream_id"`
	CaptureTime time.Time `json:"capture_time"`
	Sequence    int64     `json:"sequence"`
	Bucket      string    `json:"bucket"`
	Key         string    `json:"key"`
	ContentType string    `json:"content_type"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
}

// Model names the model version that produced detections.
type Model struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Digest  string `json:"digest"` // "sha256:<hex>" of the ONNX bytes
}

// RouteArm says which arm of a route served a frame ("primary", "canary", "shadow", "pinned").
// (The route itself, a document, is routing.Route.)
type RouteArm struct {
	Arm string `json:"arm"`
}

// Detections is what detect publishes for one frame. Schema: schemas/v1/detections.schema.json.
type Detections struct {
	FrameID     string    `json:"frame_id"`
	StreamID    string    `json:"stream_id"`
	CaptureTime time.Time `json:"capture_time"`
	// Frame is the frame in object storage; absent when the frame was not stored (an edge
	// device detects locally and sends detections only).
	Frame      FrameRef           `json:"frame,omitzero"`
	Width      int                `json:"width"`
	Height     int                `json:"height"`
	Model      Model              `json:"model"`
	Route      RouteArm           `json:"route"`
	Detections []Detection        `json:"detections"`
	TimingMS   map[string]float64 `json:"timing_ms"`
	TraceID    string             `json:"trace_id,omitempty"`
	DetectedAt time.Time          `json:"detected_at"`
	// Edge is set by an edge device: which device, its group, and the frame's number in its
	// stream (1, 2, … with no gaps but those the device's queue dropped).
	Edge *Edge `json:"edge,omitempty"`
}

// AnnotatedKey is where the annotated frame of (stream, frame, model, version) is stored in the
// annotated bucket, by the sink or by the edge device that took the snapshot: one object per row
// identity, so a frame rendered again overwrites itself. Every part is an identifier.
func AnnotatedKey(d Detections) string {
	return d.StreamID + "/" + d.FrameID + "/" + d.Model.Name + "/" + d.Model.Version + ".jpg"
}

// Edge says which edge device detected a frame.
type Edge struct {
	Device   string `json:"device"`
	Group    string `json:"group"`
	Sequence int64  `json:"sequence"`
	// Snapshot names the rule that made the device upload this frame (then Frame references
	// it, and the annotated copy is at AnnotatedKey in the annotated bucket).
	Snapshot string `json:"snapshot,omitempty"`
}

// DeviceStatus is an edge device's heartbeat on the devices topic (key = device id), and its
// /status answer. Schema: schemas/v1/device-status.schema.json.
type DeviceStatus struct {
	Device  string    `json:"device"`
	Group   string    `json:"group"`
	State   string    `json:"state"` // running, stopping
	At      time.Time `json:"at"`
	Started time.Time `json:"started"`
	// Model is the version serving the device's group now (empty while none is loaded).
	Model     Model   `json:"model"`
	Arm       string  `json:"arm,omitempty"`
	FPS       float64 `json:"fps"`            // frames detected per second since the last heartbeat
	Detected  int64   `json:"detected"`       // frames detected since start
	Errors    int64   `json:"errors"`         // frames the model failed on since start
	Unserved  int64   `json:"unserved"`       // frames skipped because no model was ready
	Forwarded int64   `json:"forwarded"`      // messages the uplink acknowledged since start
	Upstream  int64   `json:"upstream_bytes"` // their bytes (key, value, headers)
	Uplink    string  `json:"uplink"`         // ok, or the last error
	Queue     struct {
		Depth   int64 `json:"depth"`
		Bytes   int64 `json:"bytes"`
		Dropped int64 `json:"dropped"`
		Max     int64 `json:"max_bytes"`
	} `json:"queue"`
	Cameras map[string]CameraStatus `json:"cameras"`
	// Snapshots are the event snapshots' counters (absent without snapshot rules).
	Snapshots *SnapshotStatus `json:"snapshots,omitempty"`
	Arch      string          `json:"arch"`
}

// SnapshotStatus counts an edge device's event snapshots.
type SnapshotStatus struct {
	Taken    int64 `json:"taken"`    // frames a rule fired on since start
	Uploaded int64 `json:"uploaded"` // objects stored since start (frame and annotated copy)
	Queued   int64 `json:"queued"`   // objects waiting for object storage
	Bytes    int64 `json:"bytes"`
	Dropped  int64 `json:"dropped"`
}

// CameraStatus is one camera's counters in a DeviceStatus.
type CameraStatus struct {
	State    string `json:"state"`
	Frames   int64  `json:"frames"`
	Skipped  int64  `json:"skipped"`
	Restarts int64  `json:"restarts"`
	// Bytes are the JPEG bytes read: what sending every frame upstream would have cost.
	Bytes   int64  `json:"bytes"`
	LastErr string `json:"last_error,omitempty"`
}

// DeadLetter describes why a message was refused. The dead-letter message keeps the original
// value and headers untouched and carries this, as JSON, in the header HeaderDeadLetter.
// Schema: schemas/v1/dead-letter.schema.json.
type DeadLetter struct {
	Stage   string       `json:"stage"`  // ingest, detect, sink
	Reason  Reason       `json:"reason"` // machine-readable code
	Message string       `json:"message"`
	Source  SourceRecord `json:"source"`
	At      time.Time    `json:"at"`
	// Payload is set when the refused message was too large to dead-letter whole: its value is
	// in object storage there and the dead-letter message's value is empty.
	Payload *ObjectRef `json:"payload,omitempty"`
	// TraceID is the trace of the attempt that refused the message (32 hex digits; empty when
	// untraced): the trace that explains the refusal.
	TraceID string `json:"trace_id,omitempty"`
}

// ObjectRef locates bytes kept in object storage.
type ObjectRef struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// SourceRecord locates the refused message.
type SourceRecord struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Reason is a dead-letter reason code.
type Reason string

// The dead-letter reason codes.
const (
	ReasonEmpty             Reason = "empty"
	ReasonUnsupportedFormat Reason = "unsupported_format"
	ReasonCorruptImage      Reason = "corrupt_image"
	ReasonTooLarge          Reason = "too_large"
	ReasonOversizedMessage  Reason = "oversized_message"
	ReasonMissingObject     Reason = "missing_object"
	ReasonSchemaViolation   Reason = "schema_violation"
	ReasonUnknownSchema     Reason = "unknown_schema"
	ReasonInference         Reason = "inference_failed"
	// ReasonInvalidID: an identifier (stream id, frame id, model name or version) breaks the
	// grammar of IDPattern.
	ReasonInvalidID Reason = "invalid_identifier"
	// ReasonForbidden: a store refused the operation for this service's credentials, or the
	// message names a source (bucket, key) this service may not read.
	ReasonForbidden Reason = "forbidden"
	// ReasonInvalidRequest: a store refused the request itself (an invalid bucket or key, an
	// argument it will never take).
	ReasonInvalidRequest Reason = "invalid_request"
	// ReasonInternal: the handler failed on this message in a way it did not expect (a panic).
	ReasonInternal Reason = "internal_error"
)

// Kafka header names: the CloudEvents Kafka binding (binary mode) plus W3C trace context.
const (
	HeaderSpecVersion = "ce_specversion"
	HeaderID          = "ce_id"
	HeaderSource      = "ce_source"
	HeaderType        = "ce_type"
	HeaderTime        = "ce_time"
	HeaderSubject     = "ce_subject"
	HeaderContentType = "content-type"
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
	// HeaderSequence is an optional CloudEvents extension producers may set on raw frames.
	HeaderSequence = "ce_sequence"
	// HeaderDeadLetter carries a DeadLetter as JSON on dead-letter messages.
	HeaderDeadLetter = "streamdet_deadletter"
)

// DerivedFrameID is the frame id of a raw frame that came without one: a pure function of where
// the message sits in Kafka, so a redelivery yields the same id.
func DerivedFrameID(topic string, partition int, offset int64) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%d", topic, partition, offset)))
	return "f-" + hex.EncodeToString(sum[:12])
}
