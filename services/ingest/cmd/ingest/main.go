// Command ingest runs streamdet's ingest service; see package ingest and the README for its
// configuration (environment variables).
package main

import (
	"os"

	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/services/ingest"
)

func main() { os.Exit(service.Main("ingest", ingest.ConfigFromEnv, ingest.Run)) }
