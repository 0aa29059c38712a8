// Package e2e holds the end-to-end tests of the streaming pipeline: the real ingest, detect and
// sink binaries run as separate processes against the local stack (Kafka, MinIO), fed by kafka-go
// and kcat, with poison messages, a detect process killed mid-run, and an OTLP receiver that
// checks each frame's trace. Run with `make integration` (build tag `integration`).
package e2e
