package main

import (
	"context"
	"fmt"
	"io"
)

func runDetect(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "detctl detect: the detection engine is not there yet (see the detection-engine issue)")
	return 2
}
