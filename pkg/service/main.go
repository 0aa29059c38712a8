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

// Main runs a service from its configuration in the environment and returns its exit code:
// read and validate the configuration (load), set up telemetry, run until a signal, then flush
// telemetry. Only main calls os.Exit.
//
// `<binary> healthcheck` instead asks the running service whether it is ready (Healthcheck);
// defAddr is the data listener's default address.
func Main[C any](name, defAddr string, load func(envconf.Env) (C, error), run func(context.Context, C, *telemetry.Telemetry) error) int {
	if len(os.Args) == 2 && os.Args[1] == "healthcheck" {
		return Healthcheck(context.Background(), envconf.OS(), name, defAddr)
	}
	cfg, err := load(envconf.OS())
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: configuration: %v\n", name, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	tel, err := telemetry.Setup(ctx, name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: telemetry: %v\n", name, err)
		return 1
	}
	tel.InstallGlobal() // one service per process: its telemetry may be the globals too
	err = run(ctx, cfg, tel)
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
