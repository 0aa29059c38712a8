// Command gen writes streamdet's Grafana dashboards (package grafana) into deploy/grafana and
// the Helm chart, and copies the Prometheus alert rules into the chart: run from the repository
// root as `make dashboards`.
package main

import (
	"fmt"
	"os"

	"github.com/streamdet/streamdet/deploy/grafana"
)

func main() {
	if err := grafana.Sync("."); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
