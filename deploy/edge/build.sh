#!/usr/bin/env bash
# Builds the edge package: the streamdet-edge binary for ARCH (amd64 natively; arm64
# cross-compiled with Debian's aarch64 gcc and arm64 libjpeg-turbo in the images' builder, see
# deploy/images/build.sh), ONNX Runtime's library for ARCH (the npm package's, as the images),
# libjpeg-turbo, the systemd unit and an example configuration:
#
#   dist/streamdet-edge-<version>-linux-<arch>.tar.gz   and its unpacked tree dist/edge/<arch>/
#
# For arm64 it also unpacks an arm64 Debian root (glibc, libstdc++: the images' cc base) into
# dist/edge/sysroot-arm64, so the binary runs on this machine under
# `qemu-aarch64-static -L dist/edge/sysroot-arm64` (binfmt need not be registered).
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=edge
. deploy/local/lib.sh

ARCH=${ARCH:-amd64}
HOSTARCH=$(dpkg --print-architecture)
DIST=${DIST:-$PWD/dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export GOTOOLCHAIN=${GOTOOLCHAIN:-$(sed -n "s/^toolchain //p" go.work)}
export GOFLAGS=-buildvcs=false
export BUILDAH_ISOLATION=chroot STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}

out=$DIST/edge/$ARCH/streamdet-edge
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
ort=$(deploy/local/stack.sh ortlib "$ARCH")
[[ -f $ort ]] || deploy/local/stack.sh install >/dev/null

if [[ $ARCH == "$HOSTARCH" ]]; then
  log "streamdet-edge ($ARCH)"
  CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o "$out/bin/streamdet-edge" ./services/edge/cmd/streamdet-edge
  triplet=$(gcc -dumpmachine)
  cp -L "/usr/lib/$triplet/libturbojpeg.so.0" "$out/lib/"
else
  [[ $ARCH == arm64 && $HOSTARCH == amd64 ]] || die "cross-compiling $HOSTARCH → $ARCH is not supported (amd64 → arm64 is)"
  ARCH=arm64 deploy/images/build.sh bases >&2
  log "streamdet-edge (arm64, cross-compiled in localhost/streamdet-builder:$HOSTARCH)"
  modcache=$(go env GOMODCACHE)
  go list -deps ./services/edge/cmd/streamdet-edge >/dev/null # the module cache holds every dependency
  mkdir -p "$MACHINE_CACHE/edge/gobuild-arm64" # a Go build cache: safe to share between clones and runs
  c=$(buildah from --pull=never "localhost/streamdet-builder:$HOSTARCH")
  trap 'buildah rm "$c" >/dev/null 2>&1 || true' EXIT
  buildah run --isolation chroot \
    -v "$PWD:/src:ro" -v "$modcache:/gomod:ro" -v "$MACHINE_CACHE/edge/gobuild-arm64:/gobuild" -v "$out:/out" \
    --env GOMODCACHE=/gomod --env GOCACHE=/gobuild --env GOFLAGS=-buildvcs=false --env GOPROXY=off \
    --env GOTOOLCHAIN=local --env GOOS=linux --env GOARCH=arm64 --env CGO_ENABLED=1 --env CC=aarch64-linux-gnu-gcc \
    "$c" -- sh -c "cd /src && go build -trimpath -ldflags='-s -w' -o /out/bin/streamdet-edge ./services/edge/cmd/streamdet-edge &&
      cp -L /usr/lib/aarch64-linux-gnu/libturbojpeg.so.0 /out/lib/"
  # The arm64 runtime root for qemu-user: the images' cc base (glibc, libstdc++, libgcc).
  root=$DIST/edge/sysroot-arm64 cc=$MACHINE_CACHE/images/cc-arm64-bookworm.tar
  if [[ ! -f $root/.from || $(cat "$root/.from") != "$(stat -c %Y "$cc")" ]]; then
    rm -rf "$root"
    mkdir -p "$root"
    tar -xf "$cc" -C "$root" --exclude='./dev/*'
    stat -c %Y "$cc" >"$root/.from"
  fi
  # qemu-user (Debian bookworm's 7.2) shows the guest the host's x86 /proc/cpuinfo, which ONNX
  # Runtime's cpuinfo cannot parse as an ARM one: it crashes in dlopen. qemu opens files under -L
  # first, so the root carries the /proc/cpuinfo of a 2-core Cortex-A72 (a Raspberry Pi 4 class
  # board). Only the emulated test sees it; a real board has its own.
  mkdir -p "$root/proc"
  for cpu in 0 1; do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$cpu"
  done >"$root/proc/cpuinfo"
fi
cp -L "$ort" "$out/lib/libonnxruntime.so.1"
cp deploy/systemd/streamdet-edge.service deploy/edge/edge.env.example "$out/"
cat >"$out/README.md" <<README
# streamdet-edge $VERSION (linux/$ARCH)

Install (docs/edge.md has the whole story):

    install -m 0755 bin/streamdet-edge /usr/local/bin/
    install -d /usr/local/lib/streamdet && install -m 0644 lib/* /usr/local/lib/streamdet/
    install -d /etc/streamdet && install -m 0640 edge.env.example /etc/streamdet/edge.env   # then edit it
    install -d -m 0700 /etc/streamdet/credentials   # minio-secret-key, redis-password (files)
    install -m 0644 streamdet-edge.service /etc/systemd/system/ && systemctl enable --now streamdet-edge

ffmpeg must be installed (apt-get install ffmpeg): it reads the cameras.
README
tarball=$DIST/streamdet-edge-$VERSION-linux-$ARCH.tar.gz
tar -C "$DIST/edge/$ARCH" -czf "$tarball" streamdet-edge
file "$out/bin/streamdet-edge" 2>/dev/null | sed 's/^/  /' >&2 || true
log "$tarball ($(($(stat -c %s "$tarball") / 1000000)) MB)"
