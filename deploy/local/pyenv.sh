#!/usr/bin/env bash
# pyenv.sh NAME REQUIREMENTS: print the python of a private virtual environment with the pinned
# REQUIREMENTS installed, making it on first use in the machine's cache (lib.sh's MACHINE_CACHE),
# shared by every checkout: NAME-<digest of REQUIREMENTS>, so a changed pin is a new environment.
# It is made under a temporary name and renamed into place with its ready file inside, so
# concurrent first uses never see a half-made one; the loser of the rename drops its copy.
set -euo pipefail
TAG=pyenv
. "$(dirname "$0")/lib.sh"
name=$1 req=$2
[[ $name =~ ^[a-z0-9-]+$ ]] || { echo "pyenv: bad name '$name'" >&2; exit 2; }
env="$MACHINE_CACHE/$name-$(sha256sum "$req" | cut -c1-12)"
if [[ ! -e $env/ready ]]; then
  mkdir -p "$MACHINE_CACHE"
  tmp=$(mktemp -d "$env.tmp-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "making $env from $req (once per machine)"
  python3 -m venv "$tmp"
  "$tmp/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
  touch "$tmp/ready"
  mv -T "$tmp" "$env" 2>/dev/null || [[ -e $env/ready ]]
fi
echo "$env/bin/python"
