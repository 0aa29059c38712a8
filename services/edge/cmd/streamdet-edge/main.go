// Command streamdet-edge runs streamdet on an edge box: cameras in, detections out to the
// central Kafka, queued on disk while the uplink is down; see package edge and docs/edge.md.
package main

import (
	"os"

	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/services/edge"
)

func main() {
	os.Exit(service.Main("edge", edge.DefaultAddr, edge.ConfigFromEnv, edge.Run))
}
