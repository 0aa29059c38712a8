package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/telemetry"
)

// Run is a service's body: it starts its work and returns when ctx ends (SIGTERM or SIGINT)
// after draining, or earlier with an error.
type Run func(ctx context.Context, env envconf.Env, tel *telemetry.Telemetry) error

// Main runs a service and returns its exit code: set up telemetry, run until a signal, then
// flush telemetry. Only main calls os.Exit.
func Main(name string, run Run) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	tel, err := telemetry.Setup(ctx, name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: telemetry: %v\n", name, err)
		return 1
	}
	tel.InstallGlobal() // one service per process: its telemetry may be the globals too
	err = run(ctx, envconf.OS(), tel)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := tel.Shutdown(sctx); serr != nil {
		tel.Logger.Warn("flushing telemetry", "err", serr)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		tel.Logger.Error("stopped", "err", err)
		return 1
	}
	tel.Logger.Info("stopped")
	return 0
}
