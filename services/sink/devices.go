package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/pipeline"
)

// maxHeartbeatBytes bounds a heartbeat read from the devices topic (a device with many cameras
// sends a few kilobytes).
const maxHeartbeatBytes = 256 << 10

// Fleet follows the edge devices' heartbeats on the devices topic and exports when each was last
// seen (streamdet_device_last_seen_timestamp_seconds{device, group}) and whether its last
// heartbeat said it was stopping (streamdet_device_stopping), so that an alert can tell a device
// that went silent from one that was shut down. A heartbeat's time is the device's clock, capped
// at the sink's: a device whose clock runs ahead cannot look alive for ever.
//
// Devices are forgotten when the process restarts: the consumer group resumes after its
// committed offset, so a device silent since then is not listed again — the alert rule keeps
// it in view with max_over_time over a day.
type Fleet struct {
	max int
	now func() time.Time

	mu   sync.Mutex
	devs map[string]deviceSeen
}

type deviceSeen struct {
	group    string
	at       time.Time
	stopping bool
}

// NewFleet follows at most max devices (more are dead-lettered, reason invalid_request).
func NewFleet(max int, now func() time.Time) *Fleet {
	if now == nil {
		now = time.Now
	}
	return &Fleet{max: max, now: now, devs: map[string]deviceSeen{}}
}

// Handle takes one heartbeat: a message that is not one (too large, not JSON, identifiers that
// break the grammar, a key that is not its device) is refused for the dead-letter topic.
func (f *Fleet) Handle(_ context.Context, m kafka.Message) error {
	if len(m.Value) > maxHeartbeatBytes {
		return &pipeline.Reject{Reason: contract.ReasonOversizedMessage, Err: fmt.Errorf("heartbeat of %d bytes, limit %d", len(m.Value), maxHeartbeatBytes)}
	}
	var st contract.DeviceStatus
	if err := json.Unmarshal(m.Value, &st); err != nil {
		return &pipeline.Reject{Reason: contract.ReasonSchemaViolation, Err: fmt.Errorf("heartbeat: %w", err)}
	}
	if err := contract.CheckIDs("device", st.Device, "group", st.Group); err != nil {
		return &pipeline.Reject{Reason: contract.ReasonInvalidID, Err: fmt.Errorf("heartbeat: %w", err)}
	}
	if string(m.Key) != st.Device {
		return &pipeline.Reject{Reason: contract.ReasonSchemaViolation, Err: fmt.Errorf("heartbeat of device %q under the key %q", st.Device, m.Key)}
	}
	if st.At.IsZero() {
		return &pipeline.Reject{Reason: contract.ReasonSchemaViolation, Err: fmt.Errorf("heartbeat of device %q without a time", st.Device)}
	}
	at := st.At
	if now := f.now(); at.After(now) {
		at = now
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old, known := f.devs[st.Device]
	if !known && len(f.devs) >= f.max {
		return &pipeline.Reject{Reason: contract.ReasonInvalidRequest, Err: fmt.Errorf("device %q: already following %d devices (STREAMDET_SINK_MAX_DEVICES)", st.Device, f.max)}
	}
	if known && at.Before(old.at) {
		return nil // an older heartbeat replayed
	}
	f.devs[st.Device] = deviceSeen{group: st.Group, at: at, stopping: st.State == "stopping"}
	return nil
}

// Register exports the fleet's gauges on m.
func (f *Fleet) Register(m metric.Meter) error {
	seen, err := m.Float64ObservableGauge("streamdet_device_last_seen_timestamp_seconds",
		metric.WithDescription("time of each edge device's last heartbeat (its clock, capped at the sink's), by device and group"), metric.WithUnit("s"))
	if err != nil {
		return err
	}
	stopping, err := m.Int64ObservableGauge("streamdet_device_stopping",
		metric.WithDescription("1 when an edge device's last heartbeat said it was stopping (shut down on purpose), else 0"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		for id, d := range f.devs {
			attrs := metric.WithAttributes(attribute.String("device", id), attribute.String("group", d.group))
			o.ObserveFloat64(seen, float64(d.at.UnixNano())/1e9, attrs)
			s := int64(0)
			if d.stopping {
				s = 1
			}
			o.ObserveInt64(stopping, s, attrs)
		}
		return nil
	}, seen, stopping)
	return err
}

// Len is how many devices are followed.
func (f *Fleet) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.devs)
}
