// Command detect runs streamdet's detection service; see package detect and the README for its
// configuration (environment variables).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/services/detect"
	"github.com/streamdet/streamdet/services/detect/engine"
)

func main() { os.Exit(service.Main("detect", run)) }

func run(ctx context.Context, env envconf.Env, tel *telemetry.Telemetry) error {
	cfg, cerr := detect.ConfigFromEnv(env)
	rt, err := pipeline.Start(ctx, "detect", env, tel, cfg.HTTPAddr, cerr)
	if err != nil {
		return err
	}
	defer rt.Close()
	rt.Health.Set("model", errors.New("loading"))
	model, err := detect.LoadModel(ctx, cfg, rt.Store)
	if err != nil {
		return fmt.Errorf("load model: %w", err)
	}
	if cfg.NamesPath != "" {
		b, err := os.ReadFile(cfg.NamesPath)
		if err != nil {
			return fmt.Errorf("class names: %w", err)
		}
		cfg.Engine.Names = engine.ReadNames(b)
	}
	eng, err := engine.New(model, cfg.Engine)
	if err != nil {
		return fmt.Errorf("model %s: %w", cfg.ModelName, err)
	}
	defer eng.Close()
	info := eng.Info()
	tel.Logger.Info("model loaded", "name", cfg.ModelName, "version", cfg.ModelVersion, "format", info.Format,
		"input", fmt.Sprintf("%dx%d", info.InputWidth, info.InputHeight), "sha256", info.SHA256, "onnxruntime", engine.RuntimeVersion())
	rt.Health.Set("model", nil)
	detections, err := rt.Writer(rt.Topics.Detections)
	if err != nil {
		return err
	}
	d := detect.New(eng, detect.ModelOf(cfg.ModelName, cfg.ModelVersion, eng), rt.Stage, rt.Store, detections, cfg.Engine.Limits.MaxBytes)
	if err := rt.Consume(ctx, cfg.Group, rt.Topics.Frames, cfg.Concurrency, d.Handle); err != nil {
		return err
	}
	return rt.Wait()
}
