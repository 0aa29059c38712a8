package engine

import (
	"context"
	"os"
	"os/exec"
	"testing"
)

// TestGPUProvider runs the shared model on the GPU providers when the machine has an NVIDIA GPU
// and ONNXRUNTIME_LIB is the onnxruntime-gpu library (make test-gpu); elsewhere it is skipped
// with the reason.
func TestGPUProvider(t *testing.T) {
	if os.Getenv("STREAMDET_TEST_GPU") == "" {
		t.Skip("GPU test: set STREAMDET_TEST_GPU=1 (make test-gpu) on a machine with an NVIDIA GPU")
	}
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		t.Skip("GPU test: no NVIDIA GPU here (nvidia-smi not found)")
	}
	model := sharedModel(t, "yolox_nano.onnx")
	cpu := yoloxEngine(t)
	img := readImage(t, "dog.jpg")
	want, err := cpu.Detect(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Provider{ProviderCUDA, ProviderTensorRT} {
		t.Run(string(p), func(t *testing.T) {
			e, err := New(model, Config{Format: FormatYOLOX, Names: cocoNames(t), Sessions: 1, LibraryPath: os.Getenv("ONNXRUNTIME_LIB"),
				Provider: ProviderConfig{Name: p, TensorRTCacheDir: t.TempDir()}})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			got, err := e.Detect(context.Background(), img)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Detections) != len(want.Detections) {
				t.Fatalf("%s found %d objects, the CPU %d", p, len(got.Detections), len(want.Detections))
			}
		})
	}
}
