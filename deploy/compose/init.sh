#!/usr/bin/env bash
# Generates deploy/compose/secrets/ (once; existing files are kept): random passwords, the Redis
# configuration that requires one, and tokens files for ingest uploads and the sink's live view.
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets models
rand() { head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32; }
keep() { [[ -s secrets/$1 ]] || printf '%s' "$2" >"secrets/$1"; }
keep minio-user admin
keep minio-root-password "$(rand)"
keep minio-password "$(rand)"
keep redis-password "$(rand)"
[[ -s secrets/redis.conf ]] || printf 'requirepass %s\nappendonly yes\ndir /data\n' "$(cat secrets/redis-password)" >secrets/redis.conf
keep ingest-tokens "cameras $(rand)"$'\n'
keep sink-tokens "operators $(rand)"$'\n'
keep grafana-admin-password "$(rand)"
# The containers run as uid 65532 and read their secrets (bind-mounted files) as that user; the
# directory stays the owner's alone, so no other user on this host can reach them.
chmod 0644 secrets/*
chmod 0700 secrets
echo "secrets in $(pwd)/secrets; put a YOLOX model at $(pwd)/models/model.onnx"
