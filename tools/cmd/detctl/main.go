// Command detctl is streamdet's command-line tool: offline detection on image files, and (as
// the pipeline grows) model registry, routing, producers and the embedded all-in-one mode.
//
//	detctl detect --model PATH [--format auto|yolox|yolov5|yolov8|end2end] IMAGE...
//	detctl version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"syscall"
)

// command is one detctl subcommand. run gets the arguments after the subcommand's name and
// returns the process exit code; only main exits.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"detect":   {"run a detector on image files and print one JSON object per image", runDetect},
	"optimize": {"make an optimised version (int8, fp16, graph) with ONNX Runtime's tooling, kept only if it passes the gates", runOptimize},
	"dataset":  {"datasets for training elsewhere: export (teacher labels in YOLO and COCO formats)", subcommands("dataset", datasetCommands)},
	"eval":     {"compare model versions on frames: latency, throughput, size, memory, agreement with a baseline, COCO mAP", runEval},
	"plan":     {"size a deployment (partitions, replicas, cores) for N cameras at F fps, measuring the model here", runPlan},
	"model":    {"the model registry: push, ls, show, rm", subcommands("model", modelCommands)},
	"dev":      {"run the whole pipeline in-process on embedded Kafka, S3 and Redis", runDev},
	"produce":  {"publish images, folders or a sampled video as raw frames", runProduce},
	"tail":     {"follow the detections topic, one readable line (or --json) per frame, with its trace id", runTail},
	"trace":    {"print a frame's trace (ingest → detect → sink) from Jaeger as a waterfall", runTrace},
	"dlq":      {"dead letters: ls, replay", subcommands("dlq", dlqCommands)},
	"devices":  {"the edge fleet: ls (version, last seen, fps, queue, dropped)", subcommands("devices", devicesCommands)},
	"demo":     {"run the pipeline in-process, send it frames, print what it found", runDemo},
	"bench":    {"drive the running pipeline with frames: throughput, end-to-end latency, loss, CPU per frame per process", runBench},
	"route":    {"model routing: set, get, promote, rollback, stats", subcommands("route", routeCommands)},
	"drift":    {"how far each stream's recent frames moved from those a version first served (PSI per feature)", runDrift},
	"rollout":  {"progressive delivery: start, run (the controller), status, pause, resume, abort", subcommands("rollout", rolloutCommands)},
	"version":  {"print the version", func(context.Context, []string, io.Writer, io.Writer) int { fmt.Println(version); return 0 }},
}

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "detctl: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "detctl: streamdet's command-line tool\n\nUsage: detctl COMMAND [flags] [args]\n\nCommands:")
	for _, n := range sortedKeys(commands) {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'detctl COMMAND --help' for a command's flags.")
}

func numCPU() int { return runtime.GOMAXPROCS(0) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
