package service

import "context"

// Runner is the one lifecycle of streamdet's long-lived components (the sink's batcher, its
// live view, detect's model manager, the services themselves through their Run functions):
//
//   - Run works until ctx ends, then finishes what it owes (a last flush, closing engines),
//     releases everything it holds and returns; it returns nil after a stop asked by ctx and an
//     error only for a failure that stopped it early.
//   - Run is called once. What a component serves to others (a handler, Resolve, Offer) may be
//     called before Run (answering "not ready" where it must) and after it returned.
//   - Work that must outlive ctx (a drain) is bounded by a context the component was given at
//     construction, never by nothing.
//
// Components that hold connections but do no work of their own (clients, writers, engines)
// instead have Close, safe to call once whatever state they are in.
type Runner interface {
	Run(ctx context.Context) error
}
