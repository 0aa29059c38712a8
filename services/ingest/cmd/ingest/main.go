// Command ingest accepts frames (raw image bytes on Kafka, HTTP upload, MinIO bucket events),
// validates them, stores the bytes in MinIO and publishes a frame reference. The service itself
// lands with the streaming-pipeline issue; until then this binary only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "ingest: the streaming service is not implemented yet (see the streaming-pipeline issue)")
	os.Exit(2)
}
