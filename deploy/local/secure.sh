#!/usr/bin/env bash
# The local stack in secure mode: the same real servers as stack.sh, with every connection
# encrypted and authenticated and every service holding only its own rights.
#   Kafka    SASL_SSL with SCRAM-SHA-512 and ACLs (StandardAuthorizer, deny by default): one user
#            per service, reading and writing only its own topics and consumer groups.
#   MinIO    TLS, one user and policy per service: ingest writes frames; detect reads frames and
#            models; sink writes detections and annotated frames (and reads frames to annotate).
#   Redis    TLS only, the default user off, an ACL user per client: detect reads routes and
#            digests and writes only version status and statistics.
# A CA and server certificate for 127.0.0.1/localhost are made at `up`; secrets are generated
# into files (mode 0600) and handed to the services by *_FILE variables, never on a command line.
#
#   secure.sh up            start (installing through stack.sh if needed) and provision
#   secure.sh down          stop what up started
#   secure.sh env SERVICE   export lines for ingest, detect, sink, producer or admin
#
# State: $STREAMDET_SECURE_STATE (default .cache/secure). Ports: STREAMDET_SECURE_KAFKA_PORT
# (19092), _KAFKA_CONTROLLER_PORT (19093), _MINIO_PORT (19000), _REDIS_PORT (16379).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${STREAMDET_CACHE:-$ROOT/.cache}
STATE=${STREAMDET_SECURE_STATE:-$CACHE/secure}
LOGS=$STATE/logs
BIN=$CACHE/bin
KAFKA_LIBS=$CACHE/kafka/libs
KAFKA_PORT=${STREAMDET_SECURE_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${STREAMDET_SECURE_KAFKA_CONTROLLER_PORT:-19093}
MINIO_PORT=${STREAMDET_SECURE_MINIO_PORT:-19000}
REDIS_PORT=${STREAMDET_SECURE_REDIS_PORT:-16379}
PREFIX=${STREAMDET_TOPIC_PREFIX:-streamdet}

TAG=secure
# shellcheck source=deploy/local/lib.sh
source "$ROOT/deploy/local/lib.sh"
rand() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
pw() { cat "$STATE/secrets/$1"; }

secrets() {
  mkdir -p "$STATE/secrets" "$LOGS"
  chmod 700 "$STATE" "$STATE/secrets"
  local s f
  for s in admin ingest detect sink producer; do
    for f in kafka minio redis; do
      [[ -f $STATE/secrets/$s-$f ]] || (umask 077; rand >"$STATE/secrets/$s-$f")
    done
  done
  [[ -f $STATE/secrets/minio-root ]] || (umask 077; rand >"$STATE/secrets/minio-root")
  [[ -f $STATE/secrets/minio-root-user ]] || (umask 077; echo "root-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/secrets/minio-root-user")
  [[ -f $STATE/ca.pem ]] || "$BIN/devstack" certs --dir "$STATE"
}

start_kafka() {
  local pidf=$STATE/kafka.pid logf=$LOGS/kafka.log dir=$STATE/kafka-data props=$STATE/server.properties
  alive "$pidf" && return 0
  log "kafka: SASL_SSL (SCRAM-SHA-512) on 127.0.0.1:$KAFKA_PORT, ACLs deny by default"
  mkdir -p "$dir"
  (umask 077; cat >"$props" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
# The controller listener is loopback-only and carries controller RPCs, never client data.
listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(pw admin-kafka)";
ssl.keystore.type=PEM
ssl.keystore.location=$STATE/kafka-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$STATE/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
log.dirs=$dir
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=10485760
replica.fetch.max.bytes=10485760
EOF
)
  if [[ ! -f $dir/meta.properties ]]; then
    local cluster
    cluster=$(kafka_uuid)
    java "${TOOL_JVM[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format -t "$cluster" -c "$props" \
      --add-scram "SCRAM-SHA-512=[name=admin,password=$(pw admin-kafka)]" >"$LOGS/kafka-format.log" 2>&1 ||
      fail kafka "$LOGS/kafka-format.log" "kafka-storage format"
  fi
  setsid nohup java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$props" >"$logf" 2>&1 </dev/null &
  echo $! >"$pidf"
  wait_for kafka "$logf" "$pidf" 90 "$BIN/devstack" ping --dir "$STATE" --brokers "127.0.0.1:$KAFKA_PORT"
}

minio_ready() { curl -fsS --cacert "$STATE/ca.pem" -o /dev/null "https://127.0.0.1:$MINIO_PORT/minio/health/ready"; }

start_minio() {
  local pidf=$STATE/minio.pid logf=$LOGS/minio.log
  alive "$pidf" && return 0
  log "minio: TLS on 127.0.0.1:$MINIO_PORT, one user and policy per service"
  mkdir -p "$STATE/minio-data"
  MINIO_ROOT_USER=$(pw minio-root-user) MINIO_ROOT_PASSWORD=$(pw minio-root) MINIO_BROWSER=off \
    MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off \
    setsid nohup "$BIN/minio" server --quiet --certs-dir "$STATE/minio-certs" --address "127.0.0.1:$MINIO_PORT" \
    --console-address "127.0.0.1:$((MINIO_PORT + 1))" "$STATE/minio-data" >"$logf" 2>&1 </dev/null &
  echo $! >"$pidf"
  wait_for minio "$logf" "$pidf" 60 minio_ready
}

redis_ping() {
  REDISCLI_AUTH=$(pw admin-redis) redis-cli --no-auth-warning --tls --cacert "$STATE/ca.pem" --user admin \
    -h 127.0.0.1 -p "$REDIS_PORT" ping | grep -q PONG
}

start_redis() {
  local pidf=$STATE/redis.pid logf=$LOGS/redis.log p="$PREFIX"
  alive "$pidf" && return 0
  log "redis: TLS only on 127.0.0.1:$REDIS_PORT, default user off, an ACL user per client"
  (umask 077; cat >"$STATE/redis.conf" <<EOF
port 0
tls-port $REDIS_PORT
bind 127.0.0.1
protected-mode yes
tls-cert-file $STATE/server.pem
tls-key-file $STATE/server.key
tls-ca-cert-file $STATE/ca.pem
tls-auth-clients no
save ""
appendonly no
daemonize no
dir $STATE
user default off
user admin on >$(pw admin-redis) ~* &* +@all
user detect on >$(pw detect-redis) resetkeys %R~$p:route:* %R~$p:digest:* %RW~$p:status:* %RW~$p:stats:* resetchannels &$p:routes -@all +@connection +get +hget +hgetall +hset +hincrby +hincrbyfloat +subscribe +unsubscribe
EOF
)
  setsid nohup redis-server "$STATE/redis.conf" >"$logf" 2>&1 </dev/null &
  echo $! >"$pidf"
  wait_for redis "$logf" "$pidf" 20 redis_ping
}

stop_one() { stop_pidfile "$1" "$STATE/$1.pid"; }

case ${1:-} in
up)
  t0=$SECONDS
  "$ROOT/deploy/local/stack.sh" install >/dev/null
  mkdir -p "$BIN" && (cd "$ROOT" && go build -o "$BIN/devstack" ./tools/cmd/devstack)
  secrets
  start_kafka
  start_minio
  start_redis
  if [[ ! -f $STATE/ingest.env ]]; then
    "$BIN/devstack" provision --timeout 60s --dir "$STATE" --brokers "127.0.0.1:$KAFKA_PORT" --minio "127.0.0.1:$MINIO_PORT" \
      --redis "127.0.0.1:$REDIS_PORT" --prefix "$PREFIX" >"$LOGS/provision.log" 2>&1 || fail provision "$LOGS/provision.log" "provisioning"
  fi
  log "up in $((SECONDS - t0))s; 'deploy/local/secure.sh env SERVICE' gives a service its variables"
  ;;
down)
  for c in redis minio kafka; do stop_one "$c"; done
  ;;
env)
  [[ -f $STATE/${2:-}.env ]] || { echo "secure.sh env: no environment for '${2:-}' (ingest, detect, sink, producer, admin)" >&2; exit 2; }
  sed 's/^/export /' "$STATE/$2.env"
  ;;
*)
  echo "usage: secure.sh up|down|env SERVICE" >&2
  exit 2
  ;;
esac
