// Command sink runs streamdet's sink service; see package sink and the README for its
// configuration (environment variables).
package main

import (
	"os"

	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/services/sink"
)

func main() { os.Exit(service.Main("sink", sink.ConfigFromEnv, sink.Run)) }
