package sink

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/pipeline"
)

func heartbeat(t *testing.T, device, group, state string, at time.Time) kafka.Message {
	b, err := json.Marshal(contract.DeviceStatus{Device: device, Group: group, State: state, At: at})
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Key: []byte(device), Value: b}
}

// gauges collects the fleet's gauges as "device/group" → value.
func gauges(t *testing.T, r *sdkmetric.ManualReader) (seen, stopping map[string]float64) {
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	seen, stopping = map[string]float64{}, map[string]float64{}
	key := func(s attribute.Set) string {
		d, _ := s.Value("device")
		g, _ := s.Value("group")
		return d.AsString() + "/" + g.AsString()
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					seen[key(p.Attributes)] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					stopping[key(p.Attributes)] = float64(p.Value)
				}
			}
		}
	}
	return seen, stopping
}

func TestFleetExportsLastSeen(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f := NewFleet(3, func() time.Time { return now })
	r := sdkmetric.NewManualReader()
	if err := f.Register(sdkmetric.NewMeterProvider(sdkmetric.WithReader(r)).Meter("test")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range []kafka.Message{
		heartbeat(t, "edge-1", "dock", "running", now.Add(-20*time.Second)),
		heartbeat(t, "edge-1", "dock", "running", now.Add(-30*time.Second)), // older, replayed: ignored
		heartbeat(t, "edge-2", "yard", "stopping", now.Add(-time.Minute)),
		heartbeat(t, "edge-3", "yard", "running", now.Add(time.Hour)), // clock ahead: capped at the sink's
	} {
		if err := f.Handle(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	seen, stopping := gauges(t, r)
	want := map[string]float64{
		"edge-1/dock": float64(now.Add(-20 * time.Second).Unix()),
		"edge-2/yard": float64(now.Add(-time.Minute).Unix()),
		"edge-3/yard": float64(now.Unix()),
	}
	for k, v := range want {
		if seen[k] != v {
			t.Errorf("last seen %s = %v, want %v", k, seen[k], v)
		}
	}
	if len(seen) != 3 || stopping["edge-1/dock"] != 0 || stopping["edge-2/yard"] != 1 {
		t.Errorf("seen %v, stopping %v", seen, stopping)
	}

	// A fourth device is over the bound: refused (dead letter), the others kept.
	err := f.Handle(ctx, heartbeat(t, "edge-4", "dock", "running", now))
	if rej, ok := errors.AsType[*pipeline.Reject](err); !ok || rej.Reason != contract.ReasonInvalidRequest {
		t.Errorf("fourth device: %v", err)
	}
	if f.Len() != 3 {
		t.Errorf("%d devices followed", f.Len())
	}
}

func TestFleetRefusesWhatIsNotAHeartbeat(t *testing.T) {
	now := time.Now()
	f := NewFleet(10, nil)
	good := heartbeat(t, "edge-1", "dock", "running", now)
	cases := []struct {
		name   string
		m      kafka.Message
		reason contract.Reason
	}{
		{"not JSON", kafka.Message{Key: []byte("edge-1"), Value: []byte("{nope")}, contract.ReasonSchemaViolation},
		{"too large", kafka.Message{Key: []byte("edge-1"), Value: []byte(strings.Repeat(" ", maxHeartbeatBytes+1))}, contract.ReasonOversizedMessage},
		{"device id breaks the grammar", heartbeat(t, "../etc", "dock", "running", now), contract.ReasonInvalidID},
		{"group id breaks the grammar", heartbeat(t, "edge-1", "a b", "running", now), contract.ReasonInvalidID},
		{"key is another device", kafka.Message{Key: []byte("edge-2"), Value: good.Value}, contract.ReasonSchemaViolation},
		{"no time", heartbeat(t, "edge-1", "dock", "running", time.Time{}), contract.ReasonSchemaViolation},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := f.Handle(context.Background(), c.m)
			rej, ok := errors.AsType[*pipeline.Reject](err)
			if !ok || rej.Reason != c.reason {
				t.Errorf("got %v, want a %s refusal", err, c.reason)
			}
		})
	}
	if f.Len() != 0 {
		t.Errorf("%d devices followed after refusals only", f.Len())
	}
}

func TestConfigDevices(t *testing.T) {
	c := DefaultConfig()
	if c.Devices != "auto" || c.MaxDevices != 10_000 {
		t.Errorf("defaults: %q %d", c.Devices, c.MaxDevices)
	}
	c.Devices, c.MaxDevices = "maybe", 0
	err := c.Validate()
	for _, want := range []string{"STREAMDET_SINK_DEVICES \"maybe\"", "STREAMDET_SINK_MAX_DEVICES 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want %s", err, want)
		}
	}
}
