//go:build integration

package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestIntegrationServersSideBySide starts 20 private Kafka brokers, 20 MinIOs and 20 Redises,
// five of a kind at a time (as parallel test packages do), each on its reserved ports, checks
// that each answers, and requires that not one start failed on a taken port.
func TestIntegrationServersSideBySide(t *testing.T) {
	Require(t)
	const total, atOnce = 20, 5
	cache := os.Getenv("STREAMDET_CACHE")
	if cache == "" {
		cache = filepath.Join(RepoRoot(t), ".cache")
	}
	minio := filepath.Join(cache, "bin", "minio")
	kinds := []struct {
		name  string
		start func(t *testing.T) int
	}{
		{"kafka", func(t *testing.T) int {
			k, failures := StartKafkaAux(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := &kafka.Client{Addr: kafka.TCP(k.Addr), Timeout: 20 * time.Second}
			md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"streamdet.frames.raw"}})
			if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
				t.Fatalf("broker %s: metadata of streamdet.frames.raw: %v %+v", k.Addr, err, md)
			}
			return failures
		}},
		{"minio", func(t *testing.T) int {
			_, failures := StartMinIO(t, minio, t.TempDir(), "side-by-side", "side-by-side-secret")
			return failures // StartMinIO waited for /minio/health/ready
		}},
		{"redis", func(t *testing.T) int {
			_, failures := StartRedis(t, "side-by-side-password")
			return failures // StartRedis waited for PONG
		}},
	}
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			var failures, started atomic.Int64
			var wg sync.WaitGroup
			for w := 0; w < atOnce; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < total/atOnce; i++ {
						// Each server lives for its subtest: five run at any time.
						t.Run(fmt.Sprintf("%d-%d", w, i), func(t *testing.T) {
							failures.Add(int64(kind.start(t)))
							started.Add(1)
						})
					}
				}()
			}
			wg.Wait()
			if started.Load() != total || failures.Load() != 0 {
				t.Fatalf("%s: %d of %d started, %d starts failed on a taken port", kind.name, started.Load(), total, failures.Load())
			}
		})
	}
}
