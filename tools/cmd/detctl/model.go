package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/services/detect/engine"
)

var modelCommands = map[string]command{
	"push": {"validate a model (load, family check, test inference) and upload it as a new version", runModelPush},
	"ls":   {"list models and versions: detctl model ls [NAME]", runModelLs},
	"show": {"show a version's manifest and load status: detctl model show NAME VERSION", runModelShow},
	"rm":   {"remove a version no route uses: detctl model rm NAME VERSION", runModelRm},
}

func runModelPush(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("model push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "model name (required)")
	version := fs.String("version", "", "version (required; never overwritten)")
	format := fs.String("format", "auto", "auto, yolox, yolov5, yolov8 or end2end")
	namesFile := fs.String("names", "", "class names file (default: the model's metadata)")
	imgsz := fs.Int("imgsz", 0, "input size for models with a dynamic input shape")
	notes := fs.String("notes", "", "free text kept in the manifest")
	source := fs.String("source", "", "where the model came from, e.g. \"int8 of version 3\"")
	pos, err := parse(fs, args)
	if err != nil || *name == "" || *version == "" || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: detctl model push --name NAME --version V [--format F] [--names FILE] MODEL.onnx")
		return 2
	}
	f, err := engine.ParseFormat(*format)
	if err != nil {
		fmt.Fprintln(stderr, "detctl model push:", err)
		return 2
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, "detctl model push:", err)
		return 1
	}
	cfg := engine.Config{Format: f, Sessions: 1, IntraOpThreads: numCPU(), InputWidth: *imgsz, InputHeight: *imgsz}
	if *namesFile != "" {
		b, err := os.ReadFile(*namesFile)
		if err != nil {
			fmt.Fprintln(stderr, "detctl model push:", err)
			return 2
		}
		cfg.Names = engine.ReadNames(b)
	}
	// Redis is required: the digest is recorded there, out of the bucket's reach.
	return withClients(ctx, "model push", true, stderr, func(c *clients) error {
		m, err := pushModel(ctx, c.reg, registry.Manifest{Name: *name, Version: *version, Notes: *notes, Source: *source}, data, cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		fmt.Fprintf(stdout, "pushed %s/%s: %s %dx%d, %d classes, sha256 %s, %d bytes\n", m.Name, m.Version, m.Format, m.InputWidth, m.InputHeight, len(m.Names), m.SHA256, m.Size)
		return nil
	})
}

func runModelLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := ""
	if len(args) > 0 {
		name = args[0]
	}
	return withClients(ctx, "model ls", false, stderr, func(c *clients) error { return listModels(ctx, c, name, stdout) })
}

func listModels(ctx context.Context, c *clients, name string, stdout io.Writer) error {
	ms, err := c.reg.List(ctx, name)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tFORMAT\tINPUT\tCLASSES\tSIZE\tSHA256\tCREATED\tMADE BY\tNOTES")
	for _, r := range lineageTree(ms) {
		m := r.m
		made := ""
		if l := m.Lineage; l != nil {
			made = l.Method + " of " + l.Parent
		}
		fmt.Fprintf(tw, "%s\t%s%s\t%s\t%dx%d\t%d\t%d\t%.12s\t%s\t%s\t%s\n", m.Name, strings.Repeat("  ", r.depth)+treeMark(r.depth), m.Version,
			m.Format, m.InputWidth, m.InputHeight, len(m.Names), m.Size, m.SHA256, m.Created.Format(time.RFC3339), made, m.Notes)
	}
	return tw.Flush()
}

func runModelShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: detctl model show NAME VERSION")
		return 2
	}
	return withClients(ctx, "model show", false, stderr, func(c *clients) error {
		m, err := c.reg.Manifest(ctx, args[0], args[1])
		if err != nil {
			return err
		}
		out := map[string]any{"manifest": m}
		if rep, err := c.reg.Report(ctx, args[0], args[1]); err == nil {
			out["report"] = json.RawMessage(rep)
		} else if !errors.Is(err, registry.ErrNotFound) {
			return err
		}
		if c.routes != nil {
			if st, err := c.routes.Statuses(ctx, args[0]); err == nil {
				if s, ok := st[args[1]]; ok {
					out["status"] = s
				}
			}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	})
}

func runModelRm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: detctl model rm NAME VERSION")
		return 2
	}
	return withClients(ctx, "model rm", true, stderr, func(c *clients) error {
		r, err := c.routes.Get(ctx, args[0])
		switch {
		case err == nil && r.Uses(args[1], time.Now()):
			return fmt.Errorf("%s/%s is used by the route of %s (revision %d); change the route first", args[0], args[1], args[0], r.Revision)
		case err != nil && !isNoRoute(err):
			return fmt.Errorf("cannot check the route: %w", err)
		}
		if err := c.reg.Delete(ctx, args[0], args[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s/%s\n", args[0], args[1])
		return nil
	})
}

func isNoRoute(err error) bool { return errors.Is(err, routingErrNoRoute) }

// pushModel validates a model — ONNX Runtime loads it, its outputs fit the family, a test
// inference runs — and uploads it as a new version with what the engine learned about it.
func pushModel(ctx context.Context, reg *registry.Registry, m registry.Manifest, data []byte, cfg engine.Config) (registry.Manifest, error) {
	eng, err := engine.New(data, cfg)
	if err != nil {
		return m, fmt.Errorf("refused: %w", err)
	}
	defer eng.Close()
	if err := eng.Warm(ctx); err != nil {
		return m, fmt.Errorf("refused: %w", err)
	}
	info := eng.Info()
	m.Format, m.InputWidth, m.InputHeight, m.Names = string(info.Format), info.InputWidth, info.InputHeight, info.Names
	return reg.Push(ctx, m, data)
}

type treeRow struct {
	m     registry.Manifest
	depth int
}

func treeMark(depth int) string {
	if depth == 0 {
		return ""
	}
	return "└ "
}

// lineageTree orders each model's versions as a tree: a version made from another (its
// lineage's parent, same model) is listed under it, indented; the rest keep the registry's order.
func lineageTree(ms []registry.Manifest) []treeRow {
	type key struct{ name, version string }
	have := map[key]bool{}
	for _, m := range ms {
		have[key{m.Name, m.Version}] = true
	}
	children := map[key][]registry.Manifest{}
	var roots []registry.Manifest
	for _, m := range ms {
		if l := m.Lineage; l != nil && have[key{m.Name, l.Parent}] && l.Parent != m.Version {
			children[key{m.Name, l.Parent}] = append(children[key{m.Name, l.Parent}], m)
			continue
		}
		roots = append(roots, m)
	}
	var out []treeRow
	seen := map[key]bool{}
	var walk func(m registry.Manifest, depth int)
	walk = func(m registry.Manifest, depth int) {
		k := key{m.Name, m.Version}
		if seen[k] {
			return
		}
		seen[k] = true
		out = append(out, treeRow{m, depth})
		for _, c := range children[k] {
			walk(c, depth+1)
		}
	}
	for _, m := range roots {
		walk(m, 0)
	}
	for _, m := range ms { // a cycle of parents: list what is left flat
		if !seen[key{m.Name, m.Version}] {
			walk(m, 0)
		}
	}
	return out
}
