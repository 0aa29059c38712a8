package pipeline_test

import (
	"testing"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
)

// TestConfigCPUPolicy: ingest and sink yield the cores to detect's inference by default, detect
// keeps the policy it was started with; STREAMDET_CPU_POLICY overrides either.
func TestConfigCPUPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want service.CPUPolicy
	}{
		{"ingest", nil, service.CPUBatch},
		{"sink", nil, service.CPUBatch},
		{"detect", nil, service.CPUNormal},
		{"ingest", map[string]string{"STREAMDET_CPU_POLICY": "normal"}, service.CPUNormal},
		{"detect", map[string]string{"STREAMDET_CPU_POLICY": "batch"}, service.CPUBatch},
	} {
		if got := pipeline.ConfigFromEnv(envconf.Map(tc.env), tc.name, ":0", false).CPUPolicy; got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.name, tc.env, got, tc.want)
		}
	}
}
