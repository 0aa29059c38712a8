module github.com/streamdet/streamdet/services/ingest

go 1.26.8

require github.com/streamdet/streamdet/pkg v0.0.0

replace github.com/streamdet/streamdet/pkg => ../../pkg
