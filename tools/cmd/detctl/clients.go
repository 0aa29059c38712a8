package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
)

// clients are the registry and route store, configured like the services (STREAMDET_MINIO_*,
// STREAMDET_REDIS_*, STREAMDET_MODELS_BUCKET).
type clients struct {
	reg    *registry.Registry
	routes *routing.Store
}

func connect(ctx context.Context, needRoutes bool) (*clients, error) {
	env := envconf.OS()
	oc, rc := objstore.FromEnv(env), routing.RedisFromEnv(env)
	bucket := env.String("STREAMDET_MODELS_BUCKET", "models")
	errs := []error{oc.Validate(), env.Err()}
	if needRoutes {
		errs = append(errs, rc.Validate())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configuration (run `eval \"$(make -s env)\"` for the local stack): %w", err)
	}
	store, err := objstore.New(oc)
	if err != nil {
		return nil, err
	}
	c := &clients{}
	if c.reg, err = registry.New(ctx, store, bucket); err != nil {
		return nil, err
	}
	if rc.Validate() == nil {
		if c.routes, err = routing.NewStore(rc); err != nil {
			return nil, err
		}
		c.reg = c.reg.WithLedger(c.routes) // digests recorded at push, checked at fetch
	}
	return c, nil
}

// usageError is a wrong invocation: its text is printed as is, with exit code 2.
type usageError string

func (u usageError) Error() string { return string(u) }

// withClients is the prologue every registry and route subcommand shares: connect (Redis
// required or not), run body, close, and report a failure as "detctl NAME: …" with exit code 1
// (2 for a usageError).
func withClients(ctx context.Context, name string, needRoutes bool, stderr io.Writer, body func(*clients) error) int {
	c, err := connect(ctx, needRoutes)
	if err == nil {
		defer c.close()
		err = body(c)
	}
	var u usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		fmt.Fprintln(stderr, u)
		return 2
	}
	fmt.Fprintf(stderr, "detctl %s: %v\n", name, err)
	return 1
}

func (c *clients) close() {
	if c != nil && c.routes != nil {
		c.routes.Close()
	}
}

// subcommands dispatches "detctl GROUP SUB ..." to a table of subcommands.
func subcommands(group string, subs map[string]command) func(context.Context, []string, io.Writer, io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintf(stdout, "Usage: detctl %s SUBCOMMAND [flags] [args]\n\n", group)
			for _, n := range sortedKeys(subs) {
				fmt.Fprintf(stdout, "  %-9s %s\n", n, subs[n].summary)
			}
			return 0
		}
		s, ok := subs[args[0]]
		if !ok {
			fmt.Fprintf(stderr, "detctl %s: unknown subcommand %q\n", group, args[0])
			return 2
		}
		return s.run(ctx, args[1:], stdout, stderr)
	}
}

// parse parses flags, allowing them before and after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
