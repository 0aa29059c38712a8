package engine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// Provider is the ONNX Runtime execution provider a model's sessions run on.
type Provider string

// Execution providers. CPU is built into every ONNX Runtime library; the others need a library
// built with them (for CUDA and TensorRT: the onnxruntime-gpu package and NVIDIA's runtime
// libraries, see docs/optimise.md).
const (
	ProviderCPU      Provider = "cpu"
	ProviderCUDA     Provider = "cuda"
	ProviderTensorRT Provider = "tensorrt"
	ProviderOpenVINO Provider = "openvino"
)

// Providers lists the execution providers the engine can be asked for.
var Providers = []Provider{ProviderCPU, ProviderCUDA, ProviderTensorRT, ProviderOpenVINO}

// ErrProvider means the execution provider asked for cannot be used with the loaded ONNX Runtime
// library (not built in, its libraries or device missing).
var ErrProvider = errors.New("engine: execution provider unavailable")

// ParseProvider reads a provider name (case-insensitive).
func ParseProvider(s string) (Provider, error) {
	p := Provider(strings.ToLower(strings.TrimSpace(s)))
	for _, known := range Providers {
		if p == known {
			return p, nil
		}
	}
	names := make([]string, len(Providers))
	for i, known := range Providers {
		names[i] = string(known)
	}
	return "", fmt.Errorf("execution provider %q: want one of %s", s, strings.Join(names, ", "))
}

// ProviderConfig selects and configures the execution provider.
type ProviderConfig struct {
	// Name is the execution provider. Default cpu.
	Name Provider
	// DeviceID is the GPU the CUDA and TensorRT providers use. Default 0.
	DeviceID int
	// TensorRTFP16 lets TensorRT build fp16 engines. Default false.
	TensorRTFP16 bool
	// TensorRTCacheDir keeps built TensorRT engines across restarts (they take minutes to
	// build). Default none.
	TensorRTCacheDir string
	// OpenVINODevice is OpenVINO's device_type (CPU, GPU, NPU, …). Default CPU.
	OpenVINODevice string
	// FallbackCPU runs on the CPU when the provider cannot be used, instead of refusing to start;
	// the engine reports the fallback (Info.Fallback) for the caller to log. Default false.
	FallbackCPU bool
}

func (p ProviderConfig) withDefaults() ProviderConfig {
	if p.Name == "" {
		p.Name = ProviderCPU
	}
	if p.OpenVINODevice == "" {
		p.OpenVINODevice = "CPU"
	}
	return p
}

// Validate checks the provider settings.
func (p ProviderConfig) Validate() error {
	p = p.withDefaults()
	var errs []error
	if _, err := ParseProvider(string(p.Name)); err != nil {
		errs = append(errs, err)
	}
	if p.DeviceID < 0 || p.DeviceID > 63 {
		errs = append(errs, fmt.Errorf("provider device id %d: must be in [0, 63]", p.DeviceID))
	}
	if strings.ContainsAny(p.OpenVINODevice, " \t\n\x00") || len(p.OpenVINODevice) > 64 {
		errs = append(errs, fmt.Errorf("OpenVINO device %q: want a device name such as CPU, GPU or GPU.0", p.OpenVINODevice))
	}
	if strings.ContainsRune(p.TensorRTCacheDir, 0) {
		errs = append(errs, errors.New("TensorRT cache directory: contains NUL"))
	}
	return errors.Join(errs...)
}

// appendProvider adds p's execution provider to o (nothing for the CPU, which ONNX Runtime
// always has). An error wraps ErrProvider and names the provider and the library.
func appendProvider(o *ort.SessionOptions, p ProviderConfig, lib string) error {
	var err error
	switch p.Name {
	case ProviderCPU, "":
		return nil
	case ProviderCUDA:
		var c *ort.CUDAProviderOptions
		if c, err = ort.NewCUDAProviderOptions(); err == nil {
			defer c.Destroy()
			if err = c.Update(map[string]string{"device_id": strconv.Itoa(p.DeviceID)}); err == nil {
				err = o.AppendExecutionProviderCUDA(c)
			}
		}
	case ProviderTensorRT:
		var t *ort.TensorRTProviderOptions
		if t, err = ort.NewTensorRTProviderOptions(); err == nil {
			defer t.Destroy()
			opts := map[string]string{"device_id": strconv.Itoa(p.DeviceID), "trt_fp16_enable": b2s(p.TensorRTFP16)}
			if p.TensorRTCacheDir != "" {
				opts["trt_engine_cache_enable"], opts["trt_engine_cache_path"] = "1", p.TensorRTCacheDir
			}
			if err = t.Update(opts); err == nil {
				err = o.AppendExecutionProviderTensorRT(t)
			}
		}
	case ProviderOpenVINO:
		err = o.AppendExecutionProviderOpenVINO(map[string]string{"device_type": p.OpenVINODevice})
	default:
		err = fmt.Errorf("unknown provider")
	}
	if err != nil {
		return fmt.Errorf("%w: %s with the ONNX Runtime library %s: %v", ErrProvider, p.Name, lib, err)
	}
	return nil
}

func b2s(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
