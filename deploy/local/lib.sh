# Shell helpers shared by stack.sh, secure.sh and the image and edge builds (sourced; set TAG
# first, e.g. TAG=stack).

# MACHINE_CACHE holds what describes or serves this machine rather than one checkout: the image
# bases' Debian roots and the stamps that say which of buildah's images (machine-wide) were made
# from which, the arm64 cross-compile's Go build cache, and the private Python environments
# (pyenv.sh's; detctl optimize's). Every clone, clean or not, finds them there; a clean clone's
# .cache starts empty. Writers hold machine_lock, or make under a temporary name and rename.
MACHINE_CACHE=${STREAMDET_MACHINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamdet}
# machine_lock NAME: hold an exclusive lock (on fd 9) on MACHINE_CACHE/NAME.lock until the script exits.
machine_lock() {
  mkdir -p "$MACHINE_CACHE"
  exec 9>"$MACHINE_CACHE/$1.lock"
  flock 9
}

log() { printf '[%s] %s\n' "$TAG" "$*" >&2; }
die() { printf '[%s] FAILED: %s\n' "$TAG" "$*" >&2; exit 1; }

# fail COMPONENT LOGFILE MESSAGE: name what failed and show the tail of its log.
fail() {
  printf '[%s] FAILED: %s: %s\n' "$TAG" "$1" "$3" >&2
  if [[ -f $2 ]]; then
    printf '[%s] last lines of %s:\n' "$TAG" "$2" >&2
    tail -n 30 "$2" >&2
  fi
  exit 1
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for COMPONENT LOGFILE PIDFILE SECONDS CMD...: poll CMD until it succeeds.
wait_for() {
  local comp=$1 logf=$2 pidf=$3 secs=$4
  shift 4
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $pidf ]] && ! alive "$pidf"; then fail "$comp" "$logf" "process exited during start-up"; fi
    ((SECONDS < deadline)) || fail "$comp" "$logf" "did not answer within ${secs}s"
    sleep 0.3
  done
}

# stop_pidfile NAME PIDFILE: SIGTERM the process group, SIGKILL after 20 s.
stop_pidfile() {
  local name=$1 pidf=$2 pid
  alive "$pidf" || { rm -f "$pidf"; return 0; }
  pid=$(cat "$pidf")
  log "$name: stopping (pid $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: did not stop in 20s, killing"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidf"
}

# kafka_uuid is a new cluster id as Kafka's `StorageTool random-uuid` makes one (16 random bytes,
# URL-safe base64 without padding), without starting a JVM for it. Like Kafka's Uuid.randomUuid it
# never starts with '-': kafka-storage's argument parser would take such an id for an option
# ("argument --cluster-id/-t: expected one argument"), one start in 64.
kafka_uuid() {
  local id=-
  while [[ $id == -* ]]; do id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'); done
  echo "$id"
}
# Kafka's command-line tools (StorageTool format) run briefly: C1 only, the serial collector.
TOOL_JVM=(-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto)
