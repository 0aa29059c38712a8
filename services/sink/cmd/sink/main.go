// Command sink consumes detections and writes them durably to MinIO (files analytics tools read,
// annotated frames, per-version comparison). The service itself
// lands with the streaming-pipeline issue; until then this binary only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "sink: the streaming service is not implemented yet (see the streaming-pipeline issue)")
	os.Exit(2)
}
