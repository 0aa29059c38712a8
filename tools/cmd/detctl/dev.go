package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/services/detect/engine"
	"github.com/streamdet/streamdet/tools/embedded"
)

// devOptions say which model the embedded pipeline serves and on which ports.
type devOptions struct {
	model, format, names, name string
	ports                      embedded.Options
}

func devFlags(fs *flag.FlagSet) *devOptions {
	o := &devOptions{}
	fs.StringVar(&o.model, "model", os.Getenv("STREAMDET_MODEL"), "ONNX model to serve as version 1 (default $STREAMDET_MODEL, else the YOLOX-Nano release, downloaded once)")
	fs.StringVar(&o.format, "format", os.Getenv("STREAMDET_MODEL_FORMAT"), "model format (default $STREAMDET_MODEL_FORMAT, else auto; yolox for the default model)")
	fs.StringVar(&o.names, "names", os.Getenv("STREAMDET_NAMES"), "class names file (default $STREAMDET_NAMES, else the model's metadata; COCO for the default model)")
	fs.StringVar(&o.name, "name", "demo", "model name (route) to register it under")
	fs.IntVar(&o.ports.KafkaPort, "kafka-port", 0, "Kafka port (0: any free port)")
	fs.IntVar(&o.ports.S3Port, "s3-port", 0, "S3 port")
	fs.IntVar(&o.ports.RedisPort, "redis-port", 0, "Redis port")
	fs.IntVar(&o.ports.IngestPort, "ingest-port", 0, "ingest HTTP port")
	fs.IntVar(&o.ports.DetectPort, "detect-port", 0, "detect HTTP port")
	fs.IntVar(&o.ports.SinkPort, "sink-port", 0, "sink HTTP port (live view)")
	return o
}

func cacheDir() string {
	if d := os.Getenv("STREAMDET_CACHE"); d != "" {
		return filepath.Join(d, "demo")
	}
	return userCache()
}

// userCache is the machine's streamdet cache, shared by every checkout: the user's cache
// directory (XDG_CACHE_HOME, else ~/.cache) with streamdet under it, as deploy/local/lib.sh's
// MACHINE_CACHE; STREAMDET_MACHINE_CACHE overrides both.
func userCache() string {
	if d := os.Getenv("STREAMDET_MACHINE_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "streamdet")
	}
	return filepath.Join(os.TempDir(), "streamdet")
}

// startEmbedded starts the embedded servers, registers the model as version 1 routed at 100%,
// and runs the three services. The caller closes the stack.
func startEmbedded(ctx context.Context, o *devOptions, stderr io.Writer) (*embedded.Stack, error) {
	if o.model == "" {
		p, err := fetch(ctx, defaultModel, cacheDir())
		if err != nil {
			return nil, fmt.Errorf("no model: the default could not be downloaded (%v); set STREAMDET_MODEL to an ONNX detector", err)
		}
		o.model = p
		if o.format == "" {
			o.format = "yolox"
		}
		if o.names == "" {
			o.names = "coco"
		}
	}
	format, err := engine.ParseFormat(o.format)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(o.model)
	if err != nil {
		return nil, err
	}
	cfg := engine.Config{Format: format, Sessions: 1, IntraOpThreads: numCPU()}
	switch {
	case o.names == "coco":
		cfg.Names = cocoNames
	case o.names != "":
		b, err := os.ReadFile(o.names)
		if err != nil {
			return nil, err
		}
		cfg.Names = engine.ReadNames(b)
	}
	o.ports.ModelName = o.name
	st, err := embedded.StartServers(o.ports)
	if err != nil {
		return nil, err
	}
	env := envconf.Map(st.Env)
	store, err := objstore.New(objstore.FromEnv(env))
	var routes *routing.Store
	if err == nil {
		routes, err = routing.NewStore(routing.RedisFromEnv(env))
	}
	if err == nil {
		defer routes.Close()
		var reg *registry.Registry
		if reg, err = registry.New(ctx, store, "models"); err == nil {
			_, err = pushModel(ctx, reg.WithLedger(routes), registry.Manifest{Name: o.name, Version: "1", Source: filepath.Base(o.model)}, data, cfg)
		}
	}
	if err == nil {
		err = routes.Set(ctx, &routing.Route{Model: o.name, Arms: []routing.Arm{{Version: "1", Weight: 100}}})
	}
	if err == nil {
		fmt.Fprintf(stderr, "streamdet: %s registered as %s/1 and routed; starting ingest, detect, sink…\n", filepath.Base(o.model), o.name)
		err = st.RunServices(ctx)
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := devFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	quietServices()
	st, err := startEmbedded(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "detctl dev:", err)
		return 1
	}
	fmt.Fprintf(stdout, "# streamdet dev: embedded Kafka, S3 and Redis with ingest, detect and sink. Ctrl-C stops.\n")
	fmt.Fprintf(stdout, "# live view:  http://%s/\n# upload:     curl -H 'X-Stream-Id: cam-1' --data-binary @frame.jpg http://%s/v1/frames\n",
		st.Env["STREAMDET_SINK_ADDR"], st.Env["STREAMDET_INGEST_ADDR"])
	fmt.Fprintf(stdout, "# kcat:       kcat -P -b %s -t streamdet.frames.raw -k cam-1 frame.jpg\n", strings.Split(st.Env["STREAMDET_KAFKA_BROKERS"], ",")[0])
	fmt.Fprint(stdout, st.Exports())
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	<-ctx.Done()
	fmt.Fprintln(stderr, "detctl dev: stopping")
	done := make(chan error, 1)
	go func() { done <- st.Close() }()
	select {
	case err = <-done:
	case <-time.After(45 * time.Second):
		err = fmt.Errorf("services did not stop within 45s")
	}
	if err != nil {
		fmt.Fprintln(stderr, "detctl dev:", err)
		return 1
	}
	return 0
}

// quietServices keeps the in-process services' logs to warnings unless asked otherwise.
func quietServices() {
	if os.Getenv("STREAMDET_LOG_LEVEL") == "" {
		os.Setenv("STREAMDET_LOG_LEVEL", "warn")
	}
}
