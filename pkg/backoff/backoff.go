// Package backoff retries an operation with exponential backoff and jitter, bounded by a
// context: the one retry loop every streamdet stage uses for transient failures.
package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Retry calls fn until it succeeds, returns a permanent error (one for which permanent returns
// true), or ctx ends, sleeping with exponential backoff and jitter between tries. onRetry, when
// set, is told of each transient failure (for readiness and metrics).
func Retry(ctx context.Context, fn func() error, permanent func(error) bool, onRetry func(error, time.Duration)) error {
	wait := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil || permanent(err) {
			return err
		}
		sleep := wait/2 + time.Duration(rand.Int64N(int64(wait)))
		if onRetry != nil {
			onRetry(err, sleep)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(sleep):
		}
		wait = min(2*wait, 10*time.Second)
	}
}
