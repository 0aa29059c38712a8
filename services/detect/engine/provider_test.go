package engine

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/streamdet/streamdet/pkg/testenv"
)

func TestParseProvider(t *testing.T) {
	for in, want := range map[string]Provider{"cpu": ProviderCPU, "CUDA": ProviderCUDA, " tensorrt ": ProviderTensorRT, "OpenVINO": ProviderOpenVINO} {
		if got, err := ParseProvider(in); err != nil || got != want {
			t.Errorf("ParseProvider(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "gpu", "rocm", "cuda;rm", "directml"} {
		_, err := ParseProvider(bad)
		if err == nil || !strings.Contains(err.Error(), "want one of cpu, cuda, tensorrt, openvino") {
			t.Errorf("ParseProvider(%q): %v", bad, err)
		}
	}
}

func TestProviderConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		p    ProviderConfig
		want string // "" = valid
	}{
		{ProviderConfig{}, ""},
		{ProviderConfig{Name: ProviderTensorRT, DeviceID: 3, TensorRTFP16: true, TensorRTCacheDir: "/var/cache/trt"}, ""},
		{ProviderConfig{Name: "vulkan"}, `execution provider "vulkan"`},
		{ProviderConfig{Name: ProviderCUDA, DeviceID: -1}, "device id -1: must be in [0, 63]"},
		{ProviderConfig{Name: ProviderCUDA, DeviceID: 64}, "device id 64"},
		{ProviderConfig{Name: ProviderOpenVINO, OpenVINODevice: "GPU 0"}, `OpenVINO device "GPU 0"`},
	} {
		err := tc.p.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.p, err, tc.want)
		}
		if err := (Config{Provider: tc.p}).Validate(); (tc.want == "") != (err == nil) {
			t.Errorf("Config with %+v: %v", tc.p, err)
		}
	}
}

// TestProviderUnavailable: the ONNX Runtime library the tests use (onnxruntime-node's) is built
// for the CPU only. Asking it for another provider is refused at start-up with an error naming
// the provider and the library, and runs on the CPU only when the fallback is asked for.
func TestProviderUnavailable(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	model := sharedModel(t, "yolox_nano.onnx")
	for _, p := range []Provider{ProviderCUDA, ProviderTensorRT, ProviderOpenVINO} {
		t.Run(string(p), func(t *testing.T) {
			_, err := New(model, Config{Format: FormatYOLOX, Sessions: 1, LibraryPath: lib, Provider: ProviderConfig{Name: p}})
			if !errors.Is(err, ErrProvider) || !strings.Contains(err.Error(), string(p)) || !strings.Contains(err.Error(), lib) {
				t.Fatalf("provider %s on a CPU-only library: %v; want ErrProvider naming %s and %s", p, err, p, lib)
			}
			t.Log(err)
		})
	}
	t.Run("fallback", func(t *testing.T) {
		e, err := New(model, Config{Format: FormatYOLOX, Names: cocoNames(t), Sessions: 2, LibraryPath: lib, Provider: ProviderConfig{Name: ProviderCUDA, FallbackCPU: true}})
		if err != nil {
			t.Fatalf("with the CPU fallback asked for: %v", err)
		}
		defer e.Close()
		info := e.Info()
		if info.Provider != ProviderCPU || !strings.Contains(info.Fallback, "cuda") {
			t.Fatalf("provider %q, fallback %q; want cpu and the reason naming cuda", info.Provider, info.Fallback)
		}
		cpu := yoloxEngine(t)
		if cpu.Info().Provider != ProviderCPU || cpu.Info().Fallback != "" {
			t.Fatalf("plain CPU engine: provider %q, fallback %q", cpu.Info().Provider, cpu.Info().Fallback)
		}
		img := readImage(t, "dog.jpg")
		got, err := e.Detect(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		want, err := cpu.Detect(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Detections) == 0 || !reflect.DeepEqual(got.Detections, want.Detections) {
			t.Fatalf("fallback engine found %v, the CPU engine %v", got.Detections, want.Detections)
		}
	})
}
