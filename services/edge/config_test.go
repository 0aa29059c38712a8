package edge

import (
	"strings"
	"testing"

	"github.com/streamdet/streamdet/pkg/envconf"
)

func TestConfig(t *testing.T) {
	base := map[string]string{"STREAMDET_KAFKA_BROKERS": "k:9092", "STREAMDET_EDGE_DEVICE_ID": "box1",
		"STREAMDET_EDGE_CAMERAS": "gate=rtsp://10.0.0.2/s, dock=/dev/video0", "STREAMDET_MODEL_PATH": "/m/yolox_nano.onnx"}
	c, err := ConfigFromEnv(envconf.Map(base))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Cameras) != 2 || c.Cameras[1] != (Camera{ID: "dock", Source: "/dev/video0"}) || c.StreamID(c.Cameras[0]) != "box1.gate" ||
		c.ModelName != "yolox_nano" || c.Routed() || c.FPS != 5 || c.DropPolicy != DropOldest || c.QueueMaxBytes != 256<<20 {
		t.Fatalf("config %+v", c)
	}
	for _, tc := range []struct{ key, val, want string }{
		{"STREAMDET_EDGE_CAMERAS", "", "STREAMDET_EDGE_CAMERAS: 0 cameras"},
		{"STREAMDET_EDGE_CAMERAS", "a=x,a=y", "camera a twice"},
		{"STREAMDET_EDGE_CAMERAS", "../a=x", "camera id"},
		{"STREAMDET_EDGE_CAMERAS", "a=", "camera a has no source"},
		{"STREAMDET_EDGE_DEVICE_ID", "box 1", "STREAMDET_EDGE_DEVICE_ID"},
		{"STREAMDET_EDGE_FPS", "0", "STREAMDET_EDGE_FPS 0: must be in (0, 120]"},
		{"STREAMDET_EDGE_QUEUE_MAX_BYTES", "1000", "must be at least 65536"},
		{"STREAMDET_EDGE_QUEUE_DROP", "random", "want oldest or newest"},
		{"STREAMDET_EDGE_HEARTBEAT", "10ms", "STREAMDET_EDGE_HEARTBEAT"},
		{"STREAMDET_MODEL_PATH", "", "STREAMDET_REDIS_ADDR is required"},
		{"STREAMDET_ENGINE_PROVIDER_FALLBACK", "gpu", "want cpu or nothing"},
	} {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		env[tc.key] = tc.val
		if _, err := ConfigFromEnv(envconf.Map(env)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: %v, want %q", tc.key, tc.val, err, tc.want)
		}
	}
}
