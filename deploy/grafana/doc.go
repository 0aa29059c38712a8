// Package grafana builds streamdet's Grafana dashboards as code, with the Grafana Foundation SDK
// (Apache-2.0; Grafana's own modules are AGPL and are not imported). The JSON it renders is
// committed under deploy/grafana/ and copied into the Helm chart; `make dashboards` (go run
// ./deploy/grafana/gen) rewrites both, and TestDashboardsUpToDate fails when they differ from
// what this package renders.
//
// Every query uses only the metric names the services export (tools/e2e TestIntegrationOps
// checks them against a running stack) and the labels they set: stage, topic, reason, step on the
// pipeline metrics; group and topic on consumer lag; model, version and arm on the model metrics;
// service on the scrape targets.
package grafana
