package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetry(t *testing.T) {
	errT, errP := errors.New("transient"), errors.New("permanent")
	isP := func(err error) bool { return errors.Is(err, errP) }
	for _, tc := range []struct {
		name    string
		results []error
		ctx     time.Duration
		want    error
		calls   int
	}{
		{"succeeds at once", []error{nil}, time.Second, nil, 1},
		{"succeeds after transient failures", []error{errT, errT, nil}, 5 * time.Second, nil, 3},
		{"stops at a permanent failure", []error{errT, errP, nil}, 5 * time.Second, errP, 2},
		{"stops when the context ends", []error{errT, errT, errT, errT, errT, errT, errT, errT, errT, errT}, 250 * time.Millisecond, context.DeadlineExceeded, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.ctx)
			defer cancel()
			calls, retries := 0, 0
			err := Retry(ctx, func() error {
				r := tc.results[min(calls, len(tc.results)-1)]
				calls++
				return r
			}, isP, func(error, time.Duration) { retries++ })
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.calls > 0 && calls != tc.calls {
				t.Fatalf("%d calls, want %d", calls, tc.calls)
			}
			if tc.want == context.DeadlineExceeded && !errors.Is(err, errT) {
				t.Fatalf("the last failure is not reported with the context's end: %v", err)
			}
			if retries != calls-1 && tc.want != context.DeadlineExceeded {
				t.Fatalf("%d retries reported for %d calls", retries, calls)
			}
		})
	}
}
