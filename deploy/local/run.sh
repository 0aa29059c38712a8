#!/usr/bin/env bash
# Runs ingest, detect and sink against the local stack (make up) in the foreground, their JSON
# logs prefixed with the service's name. Ctrl-C (or SIGTERM) stops all three gracefully.
#   STREAMDET_MODEL         ONNX model for detect   (default ../shared/models/yolox_nano.onnx)
#   STREAMDET_MODEL_FORMAT  its format               (default yolox; auto for Ultralytics exports)
#   STREAMDET_NAMES         class names file         (default ../shared/models/coco.names if present)
#   DETECT_REPLICAS         detect processes in one consumer group (default 1); with N, each gets
#                           GOMAXPROCS = cores ÷ N (so one session per core in all) and the
#                           address of STREAMDET_DETECT_ADDR with port +100·i — the scale-out
#                           measurement of docs/benchmarks.md
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
replicas=${DETECT_REPLICAS:-1}
[[ $replicas =~ ^[1-9][0-9]?$ ]] || { echo "run: DETECT_REPLICAS=$replicas: want 1..99" >&2; exit 1; }
# detect's addresses: STREAMDET_DETECT_ADDR, then the same host at port +100 for each further replica.
detect_addrs=("$STREAMDET_DETECT_ADDR")
for ((i = 1; i < replicas; i++)); do
  detect_addrs+=("${STREAMDET_DETECT_ADDR%:*}:$((${STREAMDET_DETECT_ADDR##*:} + 100 * i))")
done
# Prometheus (make up) scrapes what is listed in its file_sd directory: one target per process.
if [[ -n ${STREAMDET_PROMETHEUS_TARGETS:-} && -d $STREAMDET_PROMETHEUS_TARGETS ]]; then
  targets=$STREAMDET_PROMETHEUS_TARGETS/run.json
  printf '[{"targets":["%s"],"labels":{"service":"ingest"}},{"targets":[%s],"labels":{"service":"detect"}},{"targets":["%s"],"labels":{"service":"sink"}}]\n' \
    "$STREAMDET_INGEST_ADDR" "$(printf '"%s",' "${detect_addrs[@]}" | sed 's/,$//')" "$STREAMDET_SINK_ADDR" >"$targets.tmp" && mv "$targets.tmp" "$targets"
fi
# Replicas share the cores: GOMAXPROCS = cores ÷ replicas each (and so one session per core in all).
per=$(( $(nproc) / replicas )); ((per >= 1)) || per=1
pids=()
# $! is the service itself (its output goes through sed in a process substitution), so that stop
# signals exactly the processes this script started.
bin/ingest > >(sed -u "s/^/[ingest] /") 2>&1 &
pids+=($!)
for i in "${!detect_addrs[@]}"; do
  tag=detect
  ((replicas == 1)) || tag=detect-$i
  if ((replicas == 1)); then
    bin/detect > >(sed -u "s/^/[$tag] /") 2>&1 &
  else
    GOMAXPROCS=$per STREAMDET_DETECT_ADDR=${detect_addrs[$i]} bin/detect > >(sed -u "s/^/[$tag] /") 2>&1 &
  fi
  pids+=($!)
done
bin/sink > >(sed -u "s/^/[sink] /") 2>&1 &
pids+=($!)
stop() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait
  [[ -n ${targets:-} ]] && rm -f "$targets"
}
trap stop INT TERM
echo "run: ingest http://$STREAMDET_INGEST_ADDR (POST /v1/frames), detect http://$STREAMDET_DETECT_ADDR, sink http://$STREAMDET_SINK_ADDR; /readyz, /metrics on each; traces in Jaeger (${STREAMDET_JAEGER_URL:-off}), metrics in Prometheus (${STREAMDET_PROMETHEUS_URL:-off}). Ctrl-C stops." >&2
wait
