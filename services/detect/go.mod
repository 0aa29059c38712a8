module github.com/streamdet/streamdet/services/detect

go 1.26.8

require (
	github.com/streamdet/streamdet/pkg v0.0.0
	github.com/yalue/onnxruntime_go v1.27.0
	google.golang.org/protobuf v1.36.12
)

replace github.com/streamdet/streamdet/pkg => ../../pkg
