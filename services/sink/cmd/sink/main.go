// Command sink runs streamdet's sink service; see package sink and the README for its
// configuration (environment variables).
package main

import (
	"context"
	"os"

	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/services/sink"
)

func main() {
	os.Exit(service.Main("sink", sink.DefaultAddr, sink.ConfigFromEnv, func(ctx context.Context, c sink.Config, tel *telemetry.Telemetry) error {
		service.ApplyCPUPolicy(c.Config.CPUPolicy, tel.Logger)
		return sink.Run(ctx, c, sink.Deps{Deps: pipeline.Deps{Telemetry: tel}})
	}))
}
