package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// asset is a file the demo downloads once when the user points it at nothing of their own.
type asset struct {
	name   string
	url    string
	sha256 string // pinned; "" records whatever the first download had
}

// The demo's defaults: YOLOX-Nano from its official release (Apache-2.0) and a sample frame.
var (
	defaultModel = asset{"yolox_nano.onnx", "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx",
		"d39bee73564e338080378b0ad567fbb40e818b55bbfaf971de82a0267ed16b8a"}
	defaultFrames = []asset{{"dog.jpg", "https://raw.githubusercontent.com/Megvii-BaseDetection/YOLOX/main/assets/dog.jpg", ""}}
)

// fetch returns the cached path of a, downloading it first if needed and checking its sha256.
func fetch(ctx context.Context, a asset, cacheDir string) (string, error) {
	path := filepath.Join(cacheDir, a.name)
	if b, err := os.ReadFile(path); err == nil {
		if a.sha256 == "" || digest(b) == a.sha256 {
			return path, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", a.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download %s: %s", a.url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return "", fmt.Errorf("download %s: %w", a.url, err)
	}
	if a.sha256 != "" && digest(b) != a.sha256 {
		return "", fmt.Errorf("download %s: sha256 %s, want %s", a.url, digest(b), a.sha256)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp := path + ".part"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
