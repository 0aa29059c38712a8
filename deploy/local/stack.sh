#!/usr/bin/env bash
# Local stack of real servers for development and tests: Apache Kafka (KRaft), MinIO, Redis,
# Jaeger v2 (traces, OTLP in, query API out) and Prometheus (scrapes the services, evaluates
# deploy/prometheus/streamdet.rules.yml), plus the ONNX Runtime shared library and libjpeg-turbo
# that the detect service links against.
#
#   stack.sh install   fetch/build every component into .cache/ (idempotent, cached)
#   stack.sh up        install, then start whatever is not running and wait until it answers
#   stack.sh down      stop everything this script started; no process is left behind
#   stack.sh status    one line per component, then the export lines of `env`
#   stack.sh env       export lines (endpoints, generated credentials, ONNXRUNTIME_LIB)
#   stack.sh kafka-aux start|stop DIR PORT
#                      a private broker on PORT (controller PORT+1), state and logs under DIR,
#                      with the project's topics: for tests that take the uplink away (stop it,
#                      start it again) without disturbing the shared broker other tests use
#   STREAMDET_BROKERS=3 stack.sh up   (make up BROKERS=3)
#                      the same stack with a three-node Kafka cluster in place of the single
#                      broker (nodes on KAFKA_PORT, +2, +4; topics with 3 replicas)
#   stack.sh kafka-cluster start|stop DIR BASEPORT
#   stack.sh kafka-cluster start-node|stop-node|kill-node DIR BASEPORT N
#                      three KRaft nodes (broker+controller each; node N listens on
#                      BASEPORT+2(N-1), its controller on the next port), state under DIR, the
#                      project's topics with 3 replicas and min.insync.replicas=2: the replicated
#                      cluster of the fault-injection suite (docs/reliability.md)
#
# Everything lives under $STREAMDET_CACHE (default: <repo>/.cache, git-ignored). Credentials are
# generated on the first `up` into .cache/stack/credentials.env (mode 0600) and never printed
# by anything but `env`/`status`, whose purpose is to hand them to a shell.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${STREAMDET_CACHE:-$ROOT/.cache}
STATE=$CACHE/stack
LOGS=$STATE/logs
BIN=$CACHE/bin

KAFKA_PORT=${STREAMDET_KAFKA_PORT:-9092}
BROKERS=${STREAMDET_BROKERS:-1}
[[ $BROKERS == 1 || $BROKERS == 3 ]] || { echo "STREAMDET_BROKERS=$BROKERS: 1 or 3" >&2; exit 2; }
KAFKA_CONTROLLER_PORT=${STREAMDET_KAFKA_CONTROLLER_PORT:-9093}
# The single broker's heap and collector (its GC log goes to logs/kafka-gc.log).
KAFKA_JVM_OPTS=${STREAMDET_KAFKA_JVM_OPTS:--Xms256m -Xmx768m -XX:+UseG1GC}
MINIO_PORT=${STREAMDET_MINIO_PORT:-9000}
MINIO_CONSOLE_PORT=${STREAMDET_MINIO_CONSOLE_PORT:-9001}
REDIS_PORT=${STREAMDET_REDIS_PORT:-6379}
JAEGER_OTLP_HTTP_PORT=${STREAMDET_JAEGER_OTLP_PORT:-4318}
JAEGER_OTLP_GRPC_PORT=${STREAMDET_JAEGER_OTLP_GRPC_PORT:-4317}
JAEGER_QUERY_PORT=${STREAMDET_JAEGER_PORT:-16686}
JAEGER_QUERY_GRPC_PORT=${STREAMDET_JAEGER_GRPC_PORT:-16685}
JAEGER_HEALTH_PORT=${STREAMDET_JAEGER_HEALTH_PORT:-13133}
PROM_PORT=${STREAMDET_PROMETHEUS_PORT:-9090}
# Zipkin: the trace UI (Lens). Jaeger hands it every span through Kafka (topic ZIPKIN_TOPIC,
# Zipkin's v2 JSON), Zipkin's Kafka collector takes them from there.
ZIPKIN_PORT=${STREAMDET_ZIPKIN_PORT:-9411}
ZIPKIN_VERSION=3.6.1
ZIPKIN_JAR=$CACHE/zipkin/zipkin-server-$ZIPKIN_VERSION-exec.jar
ZIPKIN_TOPIC=streamdet.traces
# Scrape and rule evaluation interval: short, so that tests see series within seconds.
PROM_INTERVAL=${STREAMDET_PROMETHEUS_INTERVAL:-2s}
PROM_TARGETS=$STATE/prometheus/targets

# Builds use the toolchain go.work names (the go.mod's own has standard-library vulnerabilities),
# also for what is built outside the workspace (MinIO, Jaeger).
GOTOOLCHAIN=${GOTOOLCHAIN:-$(sed -n 's/^toolchain //p' "$ROOT/go.work")}
export GOTOOLCHAIN

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
ORT_NPM_VERSION=1.30.0
ORT_LIB=$CACHE/onnxruntime/$ORT_NPM_VERSION/libonnxruntime.so.1
# The arm64 library from the same package, for the arm64 images (deploy/images/build.sh).
ORT_LIB_ARM64=$CACHE/onnxruntime/$ORT_NPM_VERSION/linux-arm64/libonnxruntime.so.1
KAFKA_LIBS=$CACHE/kafka/libs
APT_PACKAGES=(redis-server libturbojpeg0-dev kcat ffmpeg chromium prometheus)
TURBOJPEG_H=${STREAMDET_TURBOJPEG_H:-/usr/include/turbojpeg.h} # libturbojpeg0-dev's header

# name:partitions for every topic the project uses; the stack creates them explicitly because
# the broker runs with auto.create.topics.enable=false.
TOPICS=${STREAMDET_TOPICS:-"$ZIPKIN_TOPIC:1 streamdet.frames.raw:6 streamdet.frames:6 streamdet.detections:6 streamdet.detections.shadow:6 streamdet.dlq:3 streamdet.frames.events:3 streamdet.devices:3 streamdet.rollouts:1"}

TAG=stack
# shellcheck source=deploy/local/lib.sh
source "$ROOT/deploy/local/lib.sh"

# ---------------------------------------------------------------------------------------------
# install

# apt_missing PACKAGE...: the Debian packages of the list that are not installed yet (each known
# by a file or command it ships, so that a machine with them from elsewhere is not asked again).
apt_missing() {
  local p
  for p in "$@"; do
    case $p in
    libturbojpeg0-dev) [[ -f $TURBOJPEG_H ]] || echo "$p" ;;
    prometheus) command -v prometheus >/dev/null && command -v promtool >/dev/null || echo "$p" ;;
    *) command -v "$p" >/dev/null || echo "$p" ;; # redis-server, kcat, ffmpeg, chromium: commands
    esac
  done
}

# install_apt PACKAGE...: apt-get install those of the list that are missing (default: all of
# APT_PACKAGES). The demo asks for libturbojpeg0-dev alone (install demo).
install_apt() {
  local missing
  (($# > 0)) || set -- "${APT_PACKAGES[@]}"
  mapfile -t missing < <(apt_missing "$@")
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  mkdir -p "$LOGS"
  {
    "${sudo[@]}" apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  } >"$LOGS/apt.log" 2>&1 || fail apt "$LOGS/apt.log" "apt-get install ${missing[*]}"
  # Debian's package may start a system redis on 6379; ours must own that port.
  if pgrep -x redis-server >/dev/null 2>&1 && ! [[ -f $STATE/redis.pid ]]; then
    "${sudo[@]}" service redis-server stop >/dev/null 2>&1 || true
  fi
  # Likewise a system prometheus on 9090 (where the package's service could start).
  if pgrep -x prometheus >/dev/null 2>&1 && ! [[ -f $STATE/prometheus.pid ]]; then
    "${sudo[@]}" service prometheus stop >/dev/null 2>&1 || true
  fi
}

install_kafka() {
  local stamp=$CACHE/kafka/pom.sha256 want
  want=$(sha256sum "$ROOT/deploy/local/kafka/pom.xml" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -d $KAFKA_LIBS ]]; then return 0; fi
  command -v mvn >/dev/null || die "kafka: Maven (mvn) is required to resolve the broker's jars"
  log "kafka: resolving broker jars from Maven Central"
  mkdir -p "$CACHE/kafka" "$LOGS"
  rm -rf "$KAFKA_LIBS"
  mvn -B -q -f "$ROOT/deploy/local/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$LOGS/mvn.log" 2>&1 ||
    fail kafka "$LOGS/mvn.log" "mvn dependency:copy-dependencies"
  echo "$want" >"$stamp"
}

install_minio() {
  local stamp=$CACHE/bin/minio.version
  if [[ -x $BIN/minio && -f $stamp && $(cat "$stamp") == "$MINIO_VERSION" ]]; then return 0; fi
  log "minio: building $MINIO_MODULE@$MINIO_VERSION (about 2 minutes, once)"
  mkdir -p "$BIN" "$LOGS"
  GOBIN=$BIN GOFLAGS=-buildvcs=false go install "$MINIO_MODULE@$MINIO_VERSION" >"$LOGS/minio-build.log" 2>&1 ||
    fail minio "$LOGS/minio-build.log" "go install $MINIO_MODULE@$MINIO_VERSION"
  echo "$MINIO_VERSION" >"$stamp"
}

# Jaeger v2 is built from the Go module proxy: deploy/local/jaeger is a module whose go.mod pins
# it as a tool (go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0), built with
# GOWORK=off so its dependencies never mix with the services'. A binary built from the module
# serves the query API; its UI is a placeholder page (the UI's assets are not in the module).
install_jaeger() {
  local stamp=$CACHE/bin/jaeger.sha256 want
  want=$(cat "$ROOT/deploy/local/jaeger/go.mod" "$ROOT/deploy/local/jaeger/go.sum" | sha256sum | cut -d' ' -f1)
  if [[ -x $BIN/jaeger && -f $stamp && $(cat "$stamp") == "$want" ]]; then return 0; fi
  log "jaeger: building the v2 binary from the Go module proxy (a few minutes, once)"
  mkdir -p "$BIN" "$LOGS"
  (cd "$ROOT/deploy/local/jaeger" && GOWORK=off GOFLAGS=-buildvcs=false go build -trimpath -o "$BIN/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger) \
    >"$LOGS/jaeger-build.log" 2>&1 || fail jaeger "$LOGS/jaeger-build.log" "go build github.com/jaegertracing/jaeger/cmd/jaeger"
  mv "$BIN/jaeger.tmp" "$BIN/jaeger"
  echo "$want" >"$stamp"
}

# Zipkin's server is one executable jar (its UI, Lens, built in), resolved from Maven Central.
install_zipkin() {
  [[ -f $ZIPKIN_JAR ]] && return 0
  command -v mvn >/dev/null || die "zipkin: Maven (mvn) is required to resolve zipkin-server"
  log "zipkin: resolving io.zipkin:zipkin-server:$ZIPKIN_VERSION (exec jar) from Maven Central"
  mkdir -p "$CACHE/zipkin" "$LOGS"
  mvn -B -q dependency:copy -Dartifact="io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:exec" \
    -DoutputDirectory="$CACHE/zipkin" >"$LOGS/mvn-zipkin.log" 2>&1 ||
    fail zipkin "$LOGS/mvn-zipkin.log" "mvn dependency:copy io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:exec"
  [[ -f $ZIPKIN_JAR ]] || die "zipkin: $ZIPKIN_JAR missing after mvn dependency:copy"
}

install_onnxruntime() {
  [[ -f $ORT_LIB && -f $ORT_LIB_ARM64 ]] && return 0
  log "onnxruntime: fetching onnxruntime-node@$ORT_NPM_VERSION from the npm registry"
  local tmp arch dest
  tmp=$(mktemp -d)
  mkdir -p "$LOGS" "$(dirname "$ORT_LIB")" "$(dirname "$ORT_LIB_ARM64")"
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_NPM_VERSION") >"$LOGS/npm.log" 2>&1 ||
    { rm -rf "$tmp"; fail onnxruntime "$LOGS/npm.log" "npm pack onnxruntime-node@$ORT_NPM_VERSION"; }
  # Both libraries in one pass over the archive (113 MB, gzip).
  tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" package/bin/napi-v6/linux/{x64,arm64}/libonnxruntime.so.1 ||
    { rm -rf "$tmp"; die "onnxruntime: the package has no bin/napi-v6/linux/{x64,arm64}/libonnxruntime.so.1"; }
  for arch in x64 arm64; do
    dest=$ORT_LIB
    [[ $arch == arm64 ]] && dest=$ORT_LIB_ARM64
    mv "$tmp/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1" "$dest"
  done
  rm -rf "$tmp"
}

credentials() {
  local f=$STATE/credentials.env
  if [[ ! -f $f ]]; then
    mkdir -p "$STATE"
    umask 077
    {
      echo "MINIO_USER=streamdet-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      echo "MINIO_PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      echo "REDIS_PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    } >"$f"
  fi
  # shellcheck disable=SC1090
  source "$f"
  # Bearer tokens of the local services' data listeners (ingest uploads, sink live view).
  if [[ ! -f $STATE/tokens ]]; then
    (umask 077; echo "local $(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/tokens")
  fi
}

# What make demo needs and nothing more: libturbojpeg (detect's decoder, linked by cgo) and the
# ONNX Runtime library. The embedded demo runs its broker, S3 server and Redis in-process.
install_demo() {
  local missing
  mapfile -t missing < <(apt_missing libturbojpeg0-dev)
  [[ -f $ORT_LIB ]] || missing+=("onnxruntime-node@$ORT_NPM_VERSION (npm)")
  ((${#missing[@]} == 0)) || log "the demo installs: ${missing[*]} (nothing else)"
  install_apt libturbojpeg0-dev
  install_onnxruntime
}

install_all() {
  install_apt
  install_kafka
  install_minio
  install_jaeger
  install_zipkin
  install_onnxruntime
}

# ---------------------------------------------------------------------------------------------
# processes

redis_ping() { REDISCLI_AUTH=$REDIS_PASSWORD redis-cli --no-auth-warning -h 127.0.0.1 -p "$REDIS_PORT" ping | grep -q PONG; }

start_redis() {
  local pidf=$STATE/redis.pid logf=$LOGS/redis.log
  if alive "$pidf"; then return 0; fi
  log "redis: starting on 127.0.0.1:$REDIS_PORT (password required, no persistence)"
  # The password goes through a config file on stdin, never on a command line.
  printf 'port %s\nbind 127.0.0.1\nprotected-mode yes\nrequirepass %s\nsave ""\nappendonly no\ndaemonize no\ndir %s\n' \
    "$REDIS_PORT" "$REDIS_PASSWORD" "$STATE" >"$STATE/redis.conf"
  chmod 600 "$STATE/redis.conf"
  setsid nohup redis-server "$STATE/redis.conf" >"$logf" 2>&1 </dev/null &
  echo $! >"$pidf"
  wait_for redis "$logf" "$pidf" 20 redis_ping
}

minio_ready() { curl -fsS -o /dev/null "http://127.0.0.1:$MINIO_PORT/minio/health/ready"; }

start_minio() {
  local pidf=$STATE/minio.pid logf=$LOGS/minio.log
  if alive "$pidf"; then return 0; fi
  log "minio: starting on 127.0.0.1:$MINIO_PORT"
  mkdir -p "$STATE/minio-data"
  # MinIO publishes bucket notifications natively to Kafka through the target "streamdet"
  # (ARN arn:minio:sqs::STREAMDET:kafka); ingest consumes them from streamdet.frames.events.
  MINIO_ROOT_USER=$MINIO_USER MINIO_ROOT_PASSWORD=$MINIO_PASSWORD MINIO_BROWSER=off \
    MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off \
    MINIO_NOTIFY_KAFKA_ENABLE_STREAMDET=on MINIO_NOTIFY_KAFKA_BROKERS_STREAMDET="$(kafka_brokers)" \
    MINIO_NOTIFY_KAFKA_TOPIC_STREAMDET=streamdet.frames.events \
    setsid nohup "${BATCH[@]}" "$BIN/minio" server --quiet --address "127.0.0.1:$MINIO_PORT" \
    --console-address "127.0.0.1:$MINIO_CONSOLE_PORT" "$STATE/minio-data" >"$logf" 2>&1 </dev/null &
  echo $! >"$pidf"
  wait_for minio "$logf" "$pidf" 60 minio_ready
}

# The brokers run under SCHED_BATCH (chrt): on a machine shared with detect, a broker thread
# woken by a request does not preempt the inference running on its core but waits for the core
# or the next scheduler tick (see docs/benchmarks.md, 2026-12-05 session 2). ingest and sink do
# the same themselves (STREAMDET_CPU_POLICY).
BATCH=()
command -v chrt >/dev/null && BATCH=(chrt --batch 0)

DEVSTACK=$CACHE/bin/devstack

# build_devstack builds the small pure-Go helper (tools/cmd/devstack) that speaks the Kafka
# protocol for readiness and topics, once per start; devstack runs it.
# Several tests start private brokers side by side: each builds into a file of its own and
# renames it into place, so that none runs a binary another is still writing.
build_devstack() {
  mkdir -p "$CACHE/bin" "$LOGS"
  local tmp=$DEVSTACK.$$.tmp
  (cd "$ROOT" && go build -o "$tmp" ./tools/cmd/devstack && mv -f "$tmp" "$DEVSTACK") >"$LOGS/devstack-build.log" 2>&1 ||
    { rm -f "$tmp"; fail kafka "$LOGS/devstack-build.log" "building tools/cmd/devstack"; }
}

devstack() { "$DEVSTACK" "$@"; }

start_kafka() {
  local pidf=$STATE/kafka.pid logf=$LOGS/kafka.log dir=$STATE/kafka-data
  if alive "$pidf"; then return 0; fi
  command -v java >/dev/null || die "kafka: java (17+) is required"
  log "kafka: starting KRaft broker+controller on 127.0.0.1:$KAFKA_PORT"
  mkdir -p "$dir"
  sed -e "s#@LOG_DIR@#$dir#" -e "s#@PORT@#$KAFKA_PORT#" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#" \
    "$ROOT/deploy/local/kafka/server.properties.in" >"$STATE/server.properties"
  if [[ ! -f $dir/meta.properties ]]; then
    local cluster
    cluster=$(kafka_uuid)
    java "${TOOL_JVM[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format -t "$cluster" -c "$STATE/server.properties" \
      >"$LOGS/kafka-format.log" 2>&1 || fail kafka "$LOGS/kafka-format.log" "kafka-storage format"
  fi
  local jvm
  read -r -a jvm <<<"$KAFKA_JVM_OPTS" # a list of JVM flags: split on blanks, never globbed
  setsid nohup "${BATCH[@]}" java "${jvm[@]}" -Xlog:gc:file="$LOGS/kafka-gc.log":time,uptime:filecount=2,filesize=10m \
    -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$STATE/server.properties" >"$logf" 2>&1 </dev/null &
  echo $! >"$pidf"
  wait_for kafka "$logf" "$pidf" 90 devstack ping --brokers "127.0.0.1:$KAFKA_PORT"
}

# The three-node cluster (kafka-cluster): CLUSTER_DIR and CLUSTER_BASE set by the command.
cluster_port() { echo $((CLUSTER_BASE + 2 * ($1 - 1))); }

start_cluster_node() {
  local n=$1 port cport dir=$CLUSTER_DIR/node-$1 pidf=$CLUSTER_DIR/kafka-$1.pid logf=$CLUSTER_DIR/logs/kafka-$1.log
  alive "$pidf" && return 0
  command -v java >/dev/null || die "kafka: java (17+) is required"
  port=$(cluster_port "$n") cport=$(($(cluster_port "$n") + 1))
  local voters="1@127.0.0.1:$(($(cluster_port 1) + 1)),2@127.0.0.1:$(($(cluster_port 2) + 1)),3@127.0.0.1:$(($(cluster_port 3) + 1))"
  mkdir -p "$dir/data" "$CLUSTER_DIR/logs"
  sed -e "s#@NODE_ID@#$n#" -e "s#@LOG_DIR@#$dir/data#" -e "s#@PORT@#$port#" -e "s#@CONTROLLER_PORT@#$cport#" \
    -e "s#@VOTERS@#$voters#" "$ROOT/deploy/local/kafka/cluster.properties.in" >"$dir/server.properties"
  if [[ ! -f $dir/data/meta.properties ]]; then
    [[ -s $CLUSTER_DIR/cluster-id ]] ||
      kafka_uuid >"$CLUSTER_DIR/cluster-id"
    java "${TOOL_JVM[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format -t "$(cat "$CLUSTER_DIR/cluster-id")" -c "$dir/server.properties" \
      >"$CLUSTER_DIR/logs/format-$n.log" 2>&1 || fail kafka "$CLUSTER_DIR/logs/format-$n.log" "kafka-storage format (node $n)"
  fi
  log "kafka: cluster node $n on 127.0.0.1:$port (controller $cport)"
  setsid nohup java -Xms128m -Xmx512m -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" >>"$logf" 2>&1 </dev/null &
  echo $! >"$pidf"
}

# The stack's own cluster (up with STREAMDET_BROKERS=3) lives in $STATE/kafka-cluster.
stack_cluster() { CLUSTER_DIR=$STATE/kafka-cluster CLUSTER_BASE=$KAFKA_PORT; }
kafka_alive() { alive "$STATE/kafka.pid" || alive "$STATE/kafka-cluster/kafka-1.pid"; }
kafka_brokers() {
  if alive "$STATE/kafka-cluster/kafka-1.pid"; then (stack_cluster && cluster_brokers); else echo "127.0.0.1:$KAFKA_PORT"; fi
}

start_cluster() {
  mkdir -p "$CLUSTER_DIR"
  [[ -s $CLUSTER_DIR/cluster-id ]] ||
    kafka_uuid >"$CLUSTER_DIR/cluster-id"
  # The three format and start side by side (each a JVM start of a few seconds).
  # (Wait for these three only: the shell's other children are servers started in the background.)
  local pids=() n
  for n in 1 2 3; do
    start_cluster_node "$n" &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || die "kafka: a cluster node failed to start"; done
  wait_cluster
  # shellcheck disable=SC2086
  devstack topics --replication 3 --brokers "$(cluster_brokers)" $TOPICS >"$CLUSTER_DIR/logs/topics.log" 2>&1 ||
    fail kafka "$CLUSTER_DIR/logs/topics.log" "creating topics"
}

# stop_cluster stops the three nodes side by side (one by one, the last two would wait for a
# controller quorum that is gone).
stop_cluster() {
  local pids=() n
  for n in 1 2 3; do
    stop_pidfile "kafka node $n" "$CLUSTER_DIR/kafka-$n.pid" &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || true; done
}

cluster_brokers() { echo "127.0.0.1:$(cluster_port 1),127.0.0.1:$(cluster_port 2),127.0.0.1:$(cluster_port 3)"; }

# wait_cluster waits for the three nodes; a node that exits meanwhile (a port taken, say) fails
# the start at once with its log, rather than after the time limit.
wait_cluster() {
  local deadline=$((SECONDS + 120)) n
  until devstack ping --want-brokers 3 --brokers "$(cluster_brokers)" >/dev/null 2>&1; do
    for n in 1 2 3; do
      alive "$CLUSTER_DIR/kafka-$n.pid" || fail kafka "$CLUSTER_DIR/logs/kafka-$n.log" "cluster node $n exited during start-up"
    done
    ((SECONDS < deadline)) || fail kafka "$CLUSTER_DIR/logs/kafka-1.log" "the cluster did not answer within 120s"
    sleep 0.3
  done
}

ensure_topics() {
  # shellcheck disable=SC2086
  devstack topics --brokers "127.0.0.1:$KAFKA_PORT" $TOPICS >"$LOGS/topics.log" 2>&1 ||
    fail kafka "$LOGS/topics.log" "creating topics"
}

jaeger_ready() { curl -fsS -o /dev/null "http://127.0.0.1:$JAEGER_HEALTH_PORT/status"; }

start_jaeger() {
  local pidf=$STATE/jaeger.pid logf=$LOGS/jaeger.log
  if alive "$pidf"; then return 0; fi
  log "jaeger: starting (OTLP on 127.0.0.1:$JAEGER_OTLP_HTTP_PORT/$JAEGER_OTLP_GRPC_PORT, query on 127.0.0.1:$JAEGER_QUERY_PORT)"
  JAEGER_KAFKA_BROKER=$(kafka_brokers | cut -d, -f1) JAEGER_ZIPKIN_TOPIC=$ZIPKIN_TOPIC \
    JAEGER_OTLP_HTTP_PORT=$JAEGER_OTLP_HTTP_PORT JAEGER_OTLP_GRPC_PORT=$JAEGER_OTLP_GRPC_PORT \
    JAEGER_QUERY_PORT=$JAEGER_QUERY_PORT JAEGER_QUERY_GRPC_PORT=$JAEGER_QUERY_GRPC_PORT \
    JAEGER_HEALTH_PORT=$JAEGER_HEALTH_PORT JAEGER_MAX_TRACES=${STREAMDET_JAEGER_MAX_TRACES:-100000} \
    setsid nohup "$BIN/jaeger" --config "$ROOT/deploy/local/jaeger/config.yaml" >"$logf" 2>&1 </dev/null &
  echo $! >"$pidf"
  wait_for jaeger "$logf" "$pidf" 60 jaeger_ready
}

zipkin_ready() { curl -fsS "http://127.0.0.1:$ZIPKIN_PORT/health" 2>/dev/null | grep -q '"UP"'; }

# Zipkin keeps traces in memory (the newest ZIPKIN_MAX_SPANS spans), on loopback only, like
# Jaeger's query API and Prometheus beside it.
start_zipkin() {
  local pidf=$STATE/zipkin.pid logf=$LOGS/zipkin.log
  if alive "$pidf"; then return 0; fi
  log "zipkin: starting the trace UI on http://127.0.0.1:$ZIPKIN_PORT/zipkin/ (spans from Kafka topic $ZIPKIN_TOPIC)"
  STORAGE_TYPE=mem MEM_MAX_SPANS=${STREAMDET_ZIPKIN_MAX_SPANS:-200000} \
    KAFKA_BOOTSTRAP_SERVERS="$(kafka_brokers)" KAFKA_TOPIC=$ZIPKIN_TOPIC KAFKA_GROUP_ID=zipkin \
    COLLECTOR_HTTP_ENABLED=false COLLECTOR_GRPC_ENABLED=false SELF_TRACING_ENABLED=false \
    setsid nohup "${BATCH[@]}" java -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -jar "$ZIPKIN_JAR" --armeria.ports[0].port="$ZIPKIN_PORT" --armeria.ports[0].ip=127.0.0.1 \
    --armeria.ports[0].protocols=http --logging.level.root=WARN >"$logf" 2>&1 </dev/null &
  echo $! >"$pidf"
  wait_for zipkin "$logf" "$pidf" 90 zipkin_ready
}

prometheus_ready() { curl -fsS -o /dev/null "http://127.0.0.1:$PROM_PORT/-/ready"; }

start_prometheus() {
  local pidf=$STATE/prometheus.pid logf=$LOGS/prometheus.log
  if alive "$pidf"; then return 0; fi
  log "prometheus: starting on 127.0.0.1:$PROM_PORT (targets from $PROM_TARGETS)"
  mkdir -p "$PROM_TARGETS" "$STATE/prometheus-data"
  sed -e "s#@ROOT@#$ROOT#" -e "s#@TARGETS@#$PROM_TARGETS#" -e "s#@PORT@#$PROM_PORT#" -e "s#@INTERVAL@#$PROM_INTERVAL#g" \
    "$ROOT/deploy/local/prometheus.yml.in" >"$STATE/prometheus.yml"
  # exemplar-storage keeps the trace ids the services attach to histogram samples (OpenMetrics),
  # so that a latency spike on a dashboard links to its trace.
  setsid nohup prometheus --config.file="$STATE/prometheus.yml" --web.listen-address="127.0.0.1:$PROM_PORT" \
    --storage.tsdb.path="$STATE/prometheus-data" --storage.tsdb.retention.time=2d \
    --enable-feature=exemplar-storage >"$logf" 2>&1 </dev/null &
  echo $! >"$pidf"
  wait_for prometheus "$logf" "$pidf" 60 prometheus_ready
}

stop_one() { stop_pidfile "$1" "$STATE/$1.pid"; }

print_env() {
  credentials
  # The trace link opens the trace in Zipkin's UI (the Jaeger built here serves its query API,
  # not its UI, whose assets are not in the Go module; with the official image's UI, use
  # http://HOST:16686/trace/{trace_id}).
  cat <<EOF
export STREAMDET_KAFKA_BROKERS=$(kafka_brokers)
export STREAMDET_MINIO_ENDPOINT=127.0.0.1:$MINIO_PORT
export STREAMDET_MINIO_ACCESS_KEY=$MINIO_USER
export STREAMDET_MINIO_SECRET_KEY=$MINIO_PASSWORD
export STREAMDET_REDIS_ADDR=127.0.0.1:$REDIS_PORT
export STREAMDET_REDIS_PASSWORD=$REDIS_PASSWORD
export ONNXRUNTIME_LIB=$ORT_LIB
export STREAMDET_INGEST_TOKENS_FILE=$STATE/tokens
export STREAMDET_SINK_TOKENS_FILE=$STATE/tokens
export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$JAEGER_OTLP_HTTP_PORT
export STREAMDET_JAEGER_URL=http://127.0.0.1:$JAEGER_QUERY_PORT
export STREAMDET_TRACE_URL=http://127.0.0.1:$ZIPKIN_PORT/zipkin/traces/{trace_id}
export STREAMDET_ZIPKIN_URL=http://127.0.0.1:$ZIPKIN_PORT
export STREAMDET_PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT
export STREAMDET_PROMETHEUS_TARGETS=$PROM_TARGETS
EOF
}

status() {
  local rc=0 c
  if alive "$STATE/kafka-cluster/kafka-1.pid"; then
    printf '%-12s running: three nodes (%s)\n' kafka "$(kafka_brokers)"
  elif alive "$STATE/kafka.pid"; then
    printf '%-12s running (pid %s)\n' kafka "$(cat "$STATE/kafka.pid")"
  else
    printf '%-12s stopped\n' kafka
    rc=1
  fi
  for c in minio redis jaeger zipkin prometheus; do
    if alive "$STATE/$c.pid"; then
      printf '%-12s running (pid %s)\n' "$c" "$(cat "$STATE/$c.pid")"
    else
      printf '%-12s stopped\n' "$c"
      rc=1
    fi
  done
  if [[ -f $ORT_LIB ]]; then printf '%-12s %s\n' onnxruntime "$ORT_LIB"; else printf '%-12s not installed\n' onnxruntime; rc=1; fi
  if [[ -f $TURBOJPEG_H ]]; then printf '%-12s installed\n' libturbojpeg; else printf '%-12s not installed\n' libturbojpeg; rc=1; fi
  echo
  print_env
  return $rc
}

cmd=${1:-}
case $cmd in
install) if [[ ${2:-} == demo ]]; then install_demo; else install_all; fi ;;
up)
  t0=$SECONDS
  install_all
  credentials
  mkdir -p "$LOGS"
  start_redis
  build_devstack
  if [[ $BROKERS == 3 ]]; then
    alive "$STATE/kafka.pid" && die "a single broker is running: make down first"
    stack_cluster && start_cluster
  else
    alive "$STATE/kafka-cluster/kafka-1.pid" && die "a three-node cluster is running: make down first"
    start_kafka
    ensure_topics
  fi
  start_minio
  start_jaeger
  start_zipkin
  start_prometheus
  log "up in $((SECONDS - t0))s; run 'eval \"\$($0 env)\"' to use it"
  ;;
down)
  for c in prometheus zipkin jaeger kafka minio redis; do stop_one "$c"; done
  stack_cluster
  stop_cluster
  ;;
status) status ;;
env) print_env ;;
ortlib) if [[ ${2:-amd64} == arm64 ]]; then echo "$ORT_LIB_ARM64"; else echo "$ORT_LIB"; fi ;;
kafka-aux)
  [[ $# == 4 && ${3:-} == /* && ${4:-} =~ ^[0-9]+$ ]] || { echo "usage: $0 kafka-aux start|stop /abs/dir port" >&2; exit 2; }
  STATE=$3 LOGS=$3/logs KAFKA_PORT=$4 KAFKA_CONTROLLER_PORT=$(($4 + 1))
  # A test's private broker starts quickly rather than runs fast (C1 only, the serial collector,
  # a small heap): tests start several side by side on two cores.
  KAFKA_JVM_OPTS=${STREAMDET_KAFKA_AUX_JVM_OPTS:--Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto}
  case $2 in
  start) install_kafka && build_devstack && start_kafka && ensure_topics ;;
  stop) stop_one kafka ;;
  *) echo "usage: $0 kafka-aux start|stop /abs/dir port" >&2; exit 2 ;;
  esac
  ;;
kafka-cluster)
  [[ $# -ge 4 && ${3:-} == /* && ${4:-} =~ ^[0-9]+$ ]] || { echo "usage: $0 kafka-cluster start|stop DIR BASEPORT | start-node|stop-node|kill-node DIR BASEPORT N" >&2; exit 2; }
  CLUSTER_DIR=$3 CLUSTER_BASE=$4
  case $2 in
  start)
    install_kafka && build_devstack && start_cluster
    ;;
  stop)
    stop_cluster
    ;;
  start-node)
    [[ ${5:-} =~ ^[123]$ ]] || { echo "node: 1, 2 or 3" >&2; exit 2; }
    start_cluster_node "$5"
    wait_for kafka "$CLUSTER_DIR/logs/kafka-$5.log" "$CLUSTER_DIR/kafka-$5.pid" 120 devstack ping --brokers "127.0.0.1:$(cluster_port "$5")"
    ;;
  stop-node)
    [[ ${5:-} =~ ^[123]$ ]] || { echo "node: 1, 2 or 3" >&2; exit 2; }
    stop_pidfile "kafka node $5" "$CLUSTER_DIR/kafka-$5.pid"
    ;;
  kill-node)
    [[ ${5:-} =~ ^[123]$ ]] || { echo "node: 1, 2 or 3" >&2; exit 2; }
    if alive "$CLUSTER_DIR/kafka-$5.pid"; then
      pid=$(cat "$CLUSTER_DIR/kafka-$5.pid")
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$CLUSTER_DIR/kafka-$5.pid"
    ;;
  *) echo "usage: $0 kafka-cluster start|stop DIR BASEPORT | start-node|stop-node|kill-node DIR BASEPORT N" >&2; exit 2 ;;
  esac
  ;;
running)
  # exit 0 when all three servers are running (used by make test to decide whether to stop them)
  kafka_alive || exit 1
  for c in minio redis jaeger zipkin prometheus; do alive "$STATE/$c.pid" || exit 1; done
  ;;
*)
  echo "usage: $0 install|up|down|status|env|running" >&2
  exit 2
  ;;
esac
