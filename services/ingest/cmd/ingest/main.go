// Command ingest runs streamdet's ingest service; see package ingest and the README for its
// configuration (environment variables).
package main

import (
	"context"
	"os"

	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/services/ingest"
)

func main() {
	os.Exit(service.Main("ingest", ingest.DefaultAddr, ingest.ConfigFromEnv, func(ctx context.Context, c ingest.Config, tel *telemetry.Telemetry) error {
		service.ApplyCPUPolicy(c.Config.CPUPolicy, tel.Logger)
		return ingest.Run(ctx, c, ingest.Deps{Deps: pipeline.Deps{Telemetry: tel}})
	}))
}
