package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// A Query is one PromQL expression the project ships: a dashboard panel's or variable's, or an
// alert or recording rule's.
type Query struct {
	Source string // file and where in it
	Expr   string // as written, with Grafana's variables
}

// Queries returns every PromQL expression in the committed dashboards and alert rules under root.
func Queries(root string) ([]Query, error) {
	var qs []Query
	files, err := filepath.Glob(filepath.Join(root, Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("reading dashboard %s: %w", f, err)
		}
		walk(doc, filepath.Base(f), &qs)
	}
	rules, err := readRules(root)
	if err != nil {
		return nil, err
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			qs = append(qs, Query{Source: filepath.Base(Rules) + ": " + r.Alert + r.Record, Expr: r.Expr})
		}
	}
	return qs, nil
}

// labelValues matches a Grafana query variable over a metric's label values.
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

// walk collects the "expr" of every target and the selector of every label_values variable.
func walk(v any, source string, qs *[]Query) {
	switch v := v.(type) {
	case map[string]any:
		title, _ := v["title"].(string)
		if title == "" {
			title, _ = v["name"].(string)
		}
		if e, ok := v["expr"].(string); ok {
			*qs = append(*qs, Query{Source: source + ": " + title, Expr: e})
		}
		if v["type"] == "query" {
			if d, ok := v["definition"].(string); ok {
				if m := labelValues.FindStringSubmatch(d); m != nil {
					*qs = append(*qs, Query{Source: source + ": variable " + title, Expr: m[1]})
				}
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(v[k], source, qs)
		}
	case []any:
		for _, e := range v {
			walk(e, source, qs)
		}
	}
}

// grafanaVars are Grafana's built-in interval variables, replaced by a typical value so that the
// expression parses as PromQL; template variables ($stage, …) only occur inside regex matchers.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// Parse parses q's expression with Prometheus' own parser.
func Parse(q Query) (parser.Expr, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(q.Expr))
	if err != nil {
		return nil, fmt.Errorf("%s: %q: %w", q.Source, q.Expr, err)
	}
	return e, nil
}

// MetricNames returns the metric names q selects.
func MetricNames(q Query) ([]string, error) {
	e, err := Parse(q)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
			seen[vs.Name] = true
		}
		return nil
	})
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// ruleFile is the part of a Prometheus rule file Queries and Recorded read.
type ruleFile struct {
	Groups []struct {
		Name  string
		Rules []struct{ Alert, Record, Expr string }
	}
}

func readRules(root string) (ruleFile, error) {
	var rf ruleFile
	b, err := os.ReadFile(filepath.Join(root, Rules))
	if err == nil {
		err = yaml.Unmarshal(b, &rf)
	}
	if err != nil {
		return rf, fmt.Errorf("reading %s: %w", Rules, err)
	}
	return rf, nil
}

// Recorded returns the names the rules file records (alerts select them; no service exports them).
func Recorded(root string) (map[string]bool, error) {
	rf, err := readRules(root)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out[r.Record] = true
			}
		}
	}
	return out, nil
}
