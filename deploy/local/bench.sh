#!/usr/bin/env bash
# Measures the whole pipeline on the local stack with detctl bench (make bench-pipeline):
# starts the stack if needed and the three services with their default settings (run.sh), sends
# 1920×1080 JPEGs made from the shared images, and compares with bare ONNX Runtime on the same
# model before each step. Arguments go to detctl bench (default: a max-rate step, then 70 % of
# it, 8 streams, 30 s each after 10 s of warm-up).
#   BENCH_OUT        directory for bench.json, bench.png and latencies.csv (default .cache/bench)
#   DETECT_REPLICAS  detect processes sharing the cores (run.sh; default 1)
#   BENCH_PREWARM    an unmeasured max-rate run first, so that the JVM (Kafka) has compiled its
#                    hot paths before anything is measured (default 30s; 0 to skip)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
deploy/local/stack.sh up >&2
eval "$(deploy/local/stack.sh env)"
shared=${STREAMDET_SHARED:-../shared}
model=${STREAMDET_MODEL:-$shared/models/yolox_nano.onnx}
out=${BENCH_OUT:-.cache/bench}
frames=.cache/bench-frames-1080p
mkdir -p "$out" bin
if [[ ! -d $frames ]]; then
  mkdir -p "$frames.tmp"
  for f in "$shared"/images/*.jpg; do
    # scaled to cover 1920×1080 and cropped: a full-HD camera frame, JPEG quality ~90
    ffmpeg -nostdin -loglevel error -i "$f" -vf "scale=1920:1080:force_original_aspect_ratio=increase,crop=1920:1080" \
      -q:v 3 "$frames.tmp/$(basename "$f")"
  done
  mv "$frames.tmp" "$frames"
fi
go build -o bin/detctl ./tools/cmd/detctl
# The services' own defaults: run.sh turns the sink's annotated frames (the live view) on, which
# decodes and re-encodes every frame; a benchmark of the default pipeline leaves it off.
STREAMDET_SINK_ANNOTATE=${STREAMDET_SINK_ANNOTATE:-false} deploy/local/run.sh >"$out/services.log" 2>&1 &
run=$!
trap 'kill -TERM $run 2>/dev/null || true; wait $run 2>/dev/null || true' EXIT
ports=(8081 8082 8083)
for ((i = 1; i < ${DETECT_REPLICAS:-1}; i++)); do ports+=($((8082 + 100 * i))); done
for port in "${ports[@]}"; do
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
    kill -0 $run 2>/dev/null || { tail -20 "$out/services.log" >&2; exit 1; }
    sleep 0.2
  done
done
if [[ ${BENCH_PREWARM:-30s} != 0 ]]; then
  echo "bench: ${BENCH_PREWARM:-30s} unmeasured at max rate first (JIT warm-up of the brokers)" >&2
  bin/detctl bench --rate max --warmup 0s --duration "${BENCH_PREWARM:-30s}" "$frames" >/dev/null
fi
args=("$@")
((${#args[@]})) || args=(--rate max,70% --streams 8 --warmup 10s --duration 30s)
bin/detctl bench --baseline "$model" --baseline-format "${STREAMDET_MODEL_FORMAT:-yolox}" \
  --json "$out/bench.json" --plot "$out/bench.png" --latencies "$out/latencies.csv" "${args[@]}" "$frames"
