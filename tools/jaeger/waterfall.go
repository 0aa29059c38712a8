package jaeger

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Waterfall writes t as a terminal waterfall: one line per span in tree order (children under
// their parent, by start time), its service, its name indented by depth, a bar placed on the
// trace's time line, and its duration. width is the bar's width in characters.
func (t Trace) Waterfall(w io.Writer, width int) {
	if width < 10 {
		width = 10
	}
	start := t.Start()
	var end time.Time
	for _, s := range t.Spans {
		if e := s.Start.Add(s.Duration); e.After(end) {
			end = e
		}
	}
	total := end.Sub(start)
	fmt.Fprintf(w, "trace %s  %d spans  %s  %s\n", t.ID, len(t.Spans), strings.Join(t.Services(), " → "), fmtDur(total))

	children := map[string][]Span{}
	var roots []Span
	for _, s := range t.Spans {
		if _, ok := t.Span(s.Parent); s.Parent == "" || !ok {
			roots = append(roots, s) // a root, or a span whose parent Jaeger did not keep
			continue
		}
		children[s.Parent] = append(children[s.Parent], s)
	}
	byStart := func(ss []Span) {
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].Start.Before(ss[j].Start) })
	}
	byStart(roots)
	type row struct {
		s     Span
		depth int
	}
	var rows []row
	var visit func(s Span, depth int)
	visit = func(s Span, depth int) {
		if depth > len(t.Spans) {
			return // a cycle in hostile input
		}
		rows = append(rows, row{s, depth})
		cs := children[s.ID]
		byStart(cs)
		for _, c := range cs {
			visit(c, depth+1)
		}
	}
	for _, r := range roots {
		visit(r, 0)
	}

	names := make([]string, len(rows))
	nameW, svcW := 0, 0
	for i, r := range rows {
		names[i] = strings.Repeat("  ", r.depth) + label(r.s)
		nameW = max(nameW, len(names[i]))
		svcW = max(svcW, len(r.s.Service))
	}
	nameW = min(nameW, 56)
	for i, r := range rows {
		name := names[i]
		if len(name) > nameW {
			name = name[:nameW-1] + "…"
		}
		bar := []rune(strings.Repeat(" ", width))
		from, to := 0, 0
		if total > 0 {
			from = int(float64(r.s.Start.Sub(start)) / float64(total) * float64(width))
			to = int(float64(r.s.Start.Add(r.s.Duration).Sub(start)) / float64(total) * float64(width))
		}
		from = min(max(from, 0), width-1)
		to = min(max(to, from+1), width)
		for i := from; i < to; i++ {
			bar[i] = '█'
		}
		mark := " "
		if r.s.Error {
			mark = "!"
		}
		fmt.Fprintf(w, "%-*s  %-*s %s|%s| %9s  +%s\n", svcW, r.s.Service, nameW, name, mark, string(bar), fmtDur(r.s.Duration), fmtDur(r.s.Start.Sub(start)))
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

// label is the span's name, with the model version and routing arm when it has them (the
// primary's and the shadow's inference steps side by side).
func label(s Span) string {
	arm, v := s.Tags["streamdet.route.arm"], s.Tags["streamdet.model.version"]
	switch {
	case arm != "" && v != "":
		return s.Name + " [" + arm + " v" + v + "]"
	case v != "":
		return s.Name + " [v" + v + "]"
	}
	return s.Name
}
