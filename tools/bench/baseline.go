package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Inferer runs bare inferences: engine.Engine's InferOnly with its session options.
type Inferer interface {
	InferOnly(ctx context.Context) (time.Duration, error)
	Sessions() int
}

// Baseline is bare ONNX Runtime on the same model and thread budget: every session busy with
// back-to-back inferences on a fixed tensor, no decode, no pre- or postprocessing, no pipeline.
type Baseline struct {
	// Layout is sessions×intra-op threads, e.g. "2x1" (a session per core, detect's default)
	// or "1x2" (one session with every thread: ONNX Runtime as its own perf tools run it).
	Layout    string  `json:"layout,omitempty"`
	FPS       float64 `json:"fps"`
	CPUms     float64 `json:"cpu_ms_per_frame"`
	LatencyMS float64 `json:"latency_ms"` // median time of one inference
}

// MeasureBaseline keeps every session of e busy for d and reports throughput, CPU per inference
// (this process's CPU time from procDir/self/stat) and the median inference time.
func MeasureBaseline(ctx context.Context, e Inferer, d time.Duration, procDir string) (Baseline, error) {
	if procDir == "" {
		procDir = "/proc"
	}
	cpu0, err := selfCPU(procDir)
	if err != nil {
		return Baseline{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < e.Sessions(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t, err := e.InferOnly(ctx)
				mu.Lock()
				if err != nil {
					if ctx.Err() == nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				lat = append(lat, t)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := selfCPU(procDir)
	if err != nil {
		return Baseline{}, err
	}
	if firstErr != nil {
		return Baseline{}, fmt.Errorf("bare inference: %w", firstErr)
	}
	if len(lat) == 0 {
		return Baseline{}, fmt.Errorf("no inference finished in %s", d)
	}
	return Baseline{
		FPS:       float64(len(lat)) / elapsed.Seconds(),
		CPUms:     (cpu1 - cpu0) * 1000 / float64(len(lat)),
		LatencyMS: float64(Percentile(lat, 50)) / float64(time.Millisecond),
	}, nil
}

func selfCPU(procDir string) (float64, error) {
	b, err := readFile(procDir + "/self/stat")
	if err != nil {
		return 0, err
	}
	return ParseStat(b)
}
