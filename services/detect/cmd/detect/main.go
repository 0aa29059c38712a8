// Command detect consumes frame references, runs the ONNX detector chosen by the Redis route
// and publishes detections. The service itself
// lands with the streaming-pipeline issue; until then this binary only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "detect: the streaming service is not implemented yet (see the streaming-pipeline issue)")
	os.Exit(2)
}
