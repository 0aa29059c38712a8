package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamdet/streamdet/pkg/testenv"
)

func TestDetectCommand(t *testing.T) {
	testenv.ONNXRuntimeLib(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jpg")
	if err := os.WriteFile(bad, []byte("not a jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}
	dog, person := testenv.Shared(t, "images", "dog.jpg"), testenv.Shared(t, "images", "person.jpg")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"detect",
		"--model", testenv.Shared(t, "models", "yolox_nano.onnx"), "--format", "yolox",
		"--names", testenv.Shared(t, "models", "coco.names"),
		dog, bad, person, filepath.Join(dir, "missing.jpg")}, &stdout, &stderr)
	if code == 0 {
		t.Errorf("exit code 0 with bad images")
	}
	var lines []detectOutput
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var o detectOutput
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("stdout line %q: %v", sc.Text(), err)
		}
		lines = append(lines, o)
	}
	if len(lines) != 2 || lines[0].Image != dog || lines[1].Image != person {
		t.Fatalf("stdout has %d objects (%+v), want dog then person", len(lines), lines)
	}
	if lines[0].Width != 768 || lines[0].Height != 576 {
		t.Errorf("dog size %d×%d", lines[0].Width, lines[0].Height)
	}
	labels := map[string]bool{}
	for _, d := range lines[0].Detections {
		labels[d.Label] = true
	}
	for _, want := range []string{"dog", "bicycle", "car"} {
		if !labels[want] {
			t.Errorf("dog.jpg: no %s in %+v", want, lines[0].Detections)
		}
	}
	errLines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(errLines) != 2 || !strings.Contains(errLines[0], "bad.jpg") || !strings.Contains(errLines[1], "missing.jpg") {
		t.Errorf("stderr = %q, want one line for bad.jpg then one for missing.jpg", stderr.String())
	}
}

func TestDetectCommandRefusesUnknownFormat(t *testing.T) {
	testenv.ONNXRuntimeLib(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"detect", "--model", testenv.Shared(t, "models", "yolox_nano.onnx"),
		testenv.Shared(t, "images", "dog.jpg")}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "yolox, yolov5, yolov8, end2end") {
		t.Errorf("exit %d, stderr %q: want a refusal naming the formats", code, stderr.String())
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "detect") {
		t.Errorf("--help: exit %d, %q", code, stdout.String())
	}
}
