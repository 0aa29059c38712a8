// Command coverreport prints statement coverage per package, and in total, from a Go cover
// profile written with -coverpkg (where each test binary lists every block again): a block
// counts as covered when any test binary ran it. `make cover` runs it.
//
//	coverreport [-skip REGEXP] cover.out
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func main() {
	skip := flag.String("skip", "/cmd/|/testenv$|/onnxgraph$", "packages left out of the report")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: coverreport [-skip REGEXP] cover.out")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), regexp.MustCompile(*skip)); err != nil {
		fmt.Fprintln(os.Stderr, "coverreport:", err)
		os.Exit(1)
	}
}

type block struct {
	stmts   int
	covered bool
}

func run(file string, skip *regexp.Regexp) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	blocks := map[string]*block{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "mode:") || line == "" {
			continue
		}
		// name.go:line.col,line.col stmts count
		fields := strings.Fields(line)
		if len(fields) != 3 {
			return fmt.Errorf("malformed line %q", line)
		}
		n, err1 := strconv.Atoi(fields[1])
		c, err2 := strconv.Atoi(fields[2])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("malformed line %q", line)
		}
		b := blocks[fields[0]]
		if b == nil {
			b = &block{stmts: n}
			blocks[fields[0]] = b
		}
		b.covered = b.covered || c > 0
	}
	if err := sc.Err(); err != nil {
		return err
	}
	total, covered := map[string]int{}, map[string]int{}
	for k, b := range blocks {
		pkg := path.Dir(k[:strings.LastIndex(k, ":")])
		if skip.MatchString(pkg) {
			continue
		}
		total[pkg] += b.stmts
		if b.covered {
			covered[pkg] += b.stmts
		}
	}
	pkgs := make([]string, 0, len(total))
	for p := range total {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	var t, c int
	for _, p := range pkgs {
		fmt.Printf("%-62s %5.1f%%  %5d statements\n", p, 100*float64(covered[p])/float64(total[p]), total[p])
		t += total[p]
		c += covered[p]
	}
	if t > 0 {
		fmt.Printf("%-62s %5.1f%%  %5d statements\n", "total", 100*float64(c)/float64(t), t)
	}
	return nil
}
