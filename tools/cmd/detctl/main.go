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
	"detect":  {"run a detector on image files and print one JSON object per image", runDetect},
	"version": {"print the version", func(context.Context, []string, io.Writer, io.Writer) int { fmt.Println(version); return 0 }},
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
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'detctl COMMAND --help' for a command's flags.")
}

func numCPU() int { return runtime.GOMAXPROCS(0) }
