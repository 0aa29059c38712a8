// Command detect runs streamdet's detection service; see package detect and the README for its
// configuration (environment variables).
package main

import (
	"os"

	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/services/detect"
)

func main() { os.Exit(service.Main("detect", detect.ConfigFromEnv, detect.Run)) }
