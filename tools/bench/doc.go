// Package bench measures the pipeline as its users feel it: what `detctl bench` reports. It
// accounts CPU per process from /proc (streamdet's own processes and its dependencies), computes
// latency percentiles, finds the knee of a latency/throughput sweep and plots it.
package bench
