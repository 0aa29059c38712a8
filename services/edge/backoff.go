package edge

import (
	"context"
	"math/rand/v2"
	"time"
)

// retryDelay is the edge's reconnect and resend delay: from lo, doubling up to hi, with jitter
// (half to one and a half times the step), back to lo after a success. Not safe for concurrent use.
type retryDelay struct {
	lo, hi, step time.Duration
}

func newRetryDelay(lo, hi time.Duration) *retryDelay { return &retryDelay{lo: lo, hi: hi, step: lo} }

// next is the delay before the next try.
func (d *retryDelay) next() time.Duration {
	s := d.step/2 + time.Duration(rand.Int64N(int64(d.step)))
	d.step = min(2*d.step, d.hi)
	return s
}

// reset starts again from lo.
func (d *retryDelay) reset() { d.step = d.lo }

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
