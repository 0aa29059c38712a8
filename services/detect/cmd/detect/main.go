// Command detect runs streamdet's detection service; see package detect and the README for its
// configuration (environment variables).
package main

import (
	"context"
	"os"

	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/services/detect"
)

func main() {
	os.Exit(service.Main("detect", detect.DefaultAddr, detect.ConfigFromEnv, func(ctx context.Context, c detect.Config, tel *telemetry.Telemetry) error {
		service.ApplyCPUPolicy(c.Config.CPUPolicy, tel.Logger)
		return detect.Run(ctx, c, detect.Deps{Deps: pipeline.Deps{Telemetry: tel}})
	}))
}
