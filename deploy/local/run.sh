#!/usr/bin/env bash
# Runs ingest, detect and sink against the local stack (make up) in the foreground, their JSON
# logs prefixed with the service's name. Ctrl-C (or SIGTERM) stops all three gracefully.
#   STREAMDET_MODEL         ONNX model for detect   (default ../shared/models/yolox_nano.onnx)
#   STREAMDET_MODEL_FORMAT  its format               (default yolox; auto for Ultralytics exports)
#   STREAMDET_NAMES         class names file         (default ../shared/models/coco.names if present)
#   DETECT_REPLICAS         detect processes in one consumer group (default 1); with N, each gets
#                           GOMAXPROCS = cores ÷ N (so one session per core in all) and the
#                           address 127.0.0.1:8082+100·i — the scale-out measurement of docs/benchmarks.md
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
eval "$(deploy/local/stack.sh env)"
export STREAMDET_MODEL_PATH=${STREAMDET_MODEL:-${STREAMDET_SHARED:-../shared}/models/yolox_nano.onnx}
export STREAMDET_MODEL_FORMAT=${STREAMDET_MODEL_FORMAT:-yolox}
export STREAMDET_MODEL_NAME=${STREAMDET_MODEL_NAME:-coco}
names=${STREAMDET_NAMES:-${STREAMDET_SHARED:-../shared}/models/coco.names}
[[ -f $names ]] && export STREAMDET_MODEL_NAMES_PATH=$names
[[ -f $STREAMDET_MODEL_PATH ]] || { echo "run: set STREAMDET_MODEL to an ONNX detector" >&2; exit 1; }
export STREAMDET_INGEST_ADDR=${STREAMDET_INGEST_ADDR:-127.0.0.1:8081}
export STREAMDET_DETECT_ADDR=${STREAMDET_DETECT_ADDR:-127.0.0.1:8082}
export STREAMDET_SINK_ADDR=${STREAMDET_SINK_ADDR:-127.0.0.1:8083}
export STREAMDET_SINK_ANNOTATE=${STREAMDET_SINK_ANNOTATE:-true} # live view on the sink's address
export STREAMDET_INGEST_EVENT_BUCKETS=${STREAMDET_INGEST_EVENT_BUCKETS:-uploads}
# Uploads and the live view need the token in $STREAMDET_INGEST_TOKENS_FILE (second field):
#   curl -H "Authorization: Bearer $(awk '{print $2}' "$STREAMDET_INGEST_TOKENS_FILE")" ...
mkdir -p bin
for s in ingest detect sink; do go build -o "bin/$s" "./services/$s/cmd/$s"; done
# Prometheus (make up) scrapes what is listed in its file_sd directory: one target per service.
if [[ -n ${STREAMDET_PROMETHEUS_TARGETS:-} && -d $STREAMDET_PROMETHEUS_TARGETS ]]; then
  targets=$STREAMDET_PROMETHEUS_TARGETS/run.json
  printf '[{"targets":["%s"],"labels":{"service":"ingest"}},{"targets":["%s"],"labels":{"service":"detect"}},{"targets":["%s"],"labels":{"service":"sink"}}]\n' \
    "$STREAMDET_INGEST_ADDR" "$STREAMDET_DETECT_ADDR" "$STREAMDET_SINK_ADDR" >"$targets.tmp" && mv "$targets.tmp" "$targets"
fi
replicas=${DETECT_REPLICAS:-1}
[[ $replicas =~ ^[1-9][0-9]?$ ]] || { echo "run: DETECT_REPLICAS=$replicas: want 1..99" >&2; exit 1; }
pids=()
for s in ingest detect sink; do
  # $! is the service itself (its output goes through sed in a process substitution), so that
  # stop signals exactly the processes this script started.
  if [[ $s == detect && $replicas -gt 1 ]]; then
    per=$(( $(nproc) / replicas )); ((per >= 1)) || per=1
    port=${STREAMDET_DETECT_ADDR##*:}
    for ((i = 0; i < replicas; i++)); do
      GOMAXPROCS=$per STREAMDET_DETECT_ADDR=127.0.0.1:$((port + 100 * i)) \
        "bin/$s" > >(sed -u "s/^/[$s-$i] /") 2>&1 &
      pids+=($!)
    done
    continue
  fi
  "bin/$s" > >(sed -u "s/^/[$s] /") 2>&1 &
  pids+=($!)
done
stop() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait
  [[ -n ${targets:-} ]] && rm -f "$targets"
}
trap stop INT TERM
echo "run: ingest http://$STREAMDET_INGEST_ADDR (POST /v1/frames), detect http://$STREAMDET_DETECT_ADDR, sink http://$STREAMDET_SINK_ADDR; /readyz, /metrics on each; traces in Jaeger (${STREAMDET_JAEGER_URL:-off}), metrics in Prometheus (${STREAMDET_PROMETHEUS_URL:-off}). Ctrl-C stops." >&2
wait
