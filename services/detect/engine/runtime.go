package engine

import (
	"fmt"
	"os"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ONNX Runtime's environment is process-wide: it is created once, from the first library path
// an engine asks for, and never destroyed while the process runs.
var (
	ortMu   sync.Mutex
	ortPath string
)

// DefaultLibraryPath is the ONNX Runtime shared library used when Config.LibraryPath is empty:
// $ONNXRUNTIME_LIB, or the library's soname for the dynamic loader to find.
func DefaultLibraryPath() string {
	if p := os.Getenv("ONNXRUNTIME_LIB"); p != "" {
		return p
	}
	return "libonnxruntime.so.1"
}

func initRuntime(path string) error {
	ortMu.Lock()
	defer ortMu.Unlock()
	if ort.IsInitialized() {
		if path != ortPath {
			return fmt.Errorf("engine: ONNX Runtime already loaded from %s, cannot also load %s", ortPath, path)
		}
		return nil
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("engine: load ONNX Runtime from %s (set ONNXRUNTIME_LIB): %w", path, err)
	}
	ortPath = path
	return nil
}

// RuntimeVersion is the loaded ONNX Runtime's version, or "" before any engine was created.
func RuntimeVersion() string {
	if !ort.IsInitialized() {
		return ""
	}
	return ort.GetVersion()
}
