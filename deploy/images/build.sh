#!/usr/bin/env bash
# Builds streamdet's images with buildah (chroot isolation: no daemon, no user namespaces needed)
# and exports each as an OCI archive under dist/.
#
#   deploy/images/build.sh bases    the local Debian bases (mmdebstrap), cached by their inputs
#   deploy/images/build.sh images   bases, then ingest, detect, sink, detctl → dist/*.oci.tar
#   deploy/images/build.sh smoke    each service starts inside its image (arm64: under qemu)
#   deploy/images/build.sh sizes    the images' sizes
#
# Production builds skip `bases` and pass upstream ones: BUILDER, STATIC_BASE and CC_BASE are the
# Containerfile's build arguments (see its header), with PULL=true to fetch them. VERSION and
# REVISION label the images; ARCH=arm64 cross-compiles the arm64 images on an amd64 machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=images
. deploy/local/lib.sh

ARCH=${ARCH:-amd64}         # the images' architecture: amd64 or arm64
HOSTARCH=$(dpkg --print-architecture) # the builder's (it cross-compiles)
SUITE=bookworm
CACHE=$MACHINE_CACHE/images # the bases' roots and stamps: buildah's images are the machine's (lib.sh)
DIST=${DIST:-$PWD/dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
IMAGES=(ingest detect sink detctl)
export GOTOOLCHAIN=${GOTOOLCHAIN:-$(sed -n "s/^toolchain //p" go.work)} # as the Makefile: go.work's toolchain
export BUILDAH_ISOLATION=chroot STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}

need() {
  local missing=()
  for c in buildah mmdebstrap; do command -v "$c" >/dev/null || missing+=("$c"); done
  [[ $ARCH == "$HOSTARCH" ]] || command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} from Debian"
    local sudo=; ((EUID == 0)) || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  fi
}

# rootfs NAME VARIANT PACKAGES: a Debian root filesystem tarball, cached by its inputs.
rootfs() {
  local name=$1 variant=$2 pkgs=$3 out=$CACHE/$1-$ARCH-$SUITE.tar
  if [[ ! -s $out || $(cat "$out.inputs" 2>/dev/null) != "$variant $pkgs" ]]; then
    log "$name: mmdebstrap --variant=$variant $SUITE ($pkgs)"
    mkdir -p "$CACHE"
    rm -rf "$out" "$out.tmp.tar"
    mmdebstrap --quiet --arch="$ARCH" --variant="$variant" --include="$pkgs" "$SUITE" "$out.tmp.tar" >&2
    mv "$out.tmp.tar" "$out"
    echo "$variant $pkgs" >"$out.inputs"
  fi
  echo "$out"
}

# base IMAGE [TARBALL]: an image of the tarball's filesystem (or of nothing), plus the nonroot
# user (65532), a writable /tmp and Debian's CA bundle: distroless's content, from Debian.
base() {
  local image=$1 tar=${2:-} c etc
  log "base $image"
  c=$(buildah from --arch "$ARCH" scratch)
  [[ -z $tar ]] || buildah add "$c" "$tar" / >/dev/null
  etc=$(mktemp -d)
  mkdir -p "$etc/etc/ssl/certs" "$etc/tmp" "$etc/home/nonroot"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$etc/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$etc/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$etc/etc/ssl/certs/"
  chmod 1777 "$etc/tmp"
  chown 65532:65532 "$etc/home/nonroot"
  (cd "$etc" && tar -cf "$etc.tar" .)
  buildah add "$c" "$etc.tar" / >/dev/null
  rm -rf "$etc" "$etc.tar"
  buildah config --user 65532:65532 --arch "$ARCH" --os linux "$c"
  buildah commit --quiet --rm "$c" "$image" >/dev/null
}

have() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# prune_replaced removes what earlier builds left that no later build can use: the images a
# rebuild took their tags from (untagged now, and only ever named localhost/streamdet-*: buildah
# keeps each image's name history), and the build stage's last image of all builds but the
# newest (buildah keeps it under a temporary "-tmp" name as the stage's cache; it holds the
# sources and the binaries, ~1 GB, and is found by the stage's Go cache id in its history).
# Nothing else is touched: not other projects' images, not the newest build's cache, not an
# image a container still uses (rmi is not forced).
prune_replaced() {
  local id hist n ours tmp names stages=()
  while read -r id hist; do
    [[ -n $hist ]] || continue
    ours=1 tmp=1
    IFS=', ' read -r -a names <<<"$hist"
    for n in "${names[@]}"; do
      [[ -z $n || $n == localhost/streamdet-* ]] || ours=0
      [[ -z $n || $n == *-tmp:latest ]] || tmp=0
    done
    if ((!ours && tmp)) && buildah inspect --type image --format '{{range .Docker.History}}{{.CreatedBy}}{{end}}' "$id" 2>/dev/null | grep -q 'id=streamdet-gomod'; then
      stages+=("$(buildah inspect --type image --format '{{.OCIv1.Created.Unix}}' "$id") $id")
      continue
    fi
    ((ours)) || continue
    buildah rmi "$id" >/dev/null 2>&1 && log "removed $id (was ${names[0]})" || true
  done < <(buildah images --history --filter dangling=true --noheading --format '{{.ID}} {{.History}}')
  ((${#stages[@]} > 1)) || return 0
  printf '%s\n' "${stages[@]}" | sort -n | head -n -1 | while read -r _ id; do
    buildah rmi "$id" >/dev/null 2>&1 && log "removed $id (an earlier build's build stage)" || true
  done
}

bases() {
  need
  machine_lock images # one clone at a time makes the machine's bases
  # static: nothing but the user database, /tmp and the CA bundle (distroless/static's content).
  have localhost/streamdet-base-static:$ARCH || base localhost/streamdet-base-static:$ARCH
  # cc: glibc, libstdc++ and libgcc from Debian, unpacked without a shell or package manager
  # (distroless/cc's content).
  local cc
  cc=$(rootfs cc extract libc6,libstdc++6,libgcc-s1,tzdata)
  if [[ $(cat "$CACHE/base-cc-$ARCH.built" 2>/dev/null) != "$(stat -c %Y "$cc")" ]] || ! have localhost/streamdet-base-cc:$ARCH; then
    base localhost/streamdet-base-cc:$ARCH "$cc"
    stat -c %Y "$cc" >"$CACHE/base-cc-$ARCH.built"
  fi
  # builder (the build machine's architecture): Debian with gcc, libjpeg-turbo for amd64 and
  # arm64, the arm64 cross compiler, and the Go toolchain the Makefile uses (the
  # golang.org/toolchain module from the Go module proxy).
  local goroot pkgs
  goroot=$(go env GOROOT)
  pkgs=gcc,libc6-dev,libturbojpeg0-dev,ca-certificates,gcc-aarch64-linux-gnu,libc6-dev-arm64-cross,libturbojpeg0-dev:arm64
  if [[ $(cat "$CACHE/builder-$HOSTARCH.built" 2>/dev/null) != "$goroot $pkgs" ]] || ! have localhost/streamdet-builder:$HOSTARCH; then
    local b c
    b=$(ARCH=$HOSTARCH,arm64 rootfs builder minbase "$pkgs")
    log "builder (Go from $goroot)"
    c=$(buildah from --arch "$HOSTARCH" scratch)
    buildah add "$c" "$b" / >/dev/null
    buildah copy "$c" "$goroot" /usr/local/go >/dev/null
    # The host's CA bundle: the module proxy may be reached through a TLS-intercepting proxy
    # whose authority only the host trusts.
    buildah copy "$c" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
    buildah config --env PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env GOPROXY="$(go env GOPROXY)" --env GOSUMDB="$(go env GOSUMDB)" "$c"
    buildah commit --quiet --rm "$c" localhost/streamdet-builder:$HOSTARCH >/dev/null
    echo "$goroot $pkgs" >"$CACHE/builder-$HOSTARCH.built"
  fi
  prune_replaced
}

images() {
  bases
  local ort
  ort=$(deploy/local/stack.sh ortlib "$ARCH")
  [[ -f $ort ]] || deploy/local/stack.sh install >/dev/null
  ort=${ort#"$PWD/"}
  mkdir -p "$DIST"
  for img in "${IMAGES[@]}"; do
    log "streamdet-$img ($ARCH)"
    buildah bud --quiet --isolation chroot --layers --pull="${PULL:-never}" --arch "$ARCH" -f deploy/images/Containerfile --target "$img" \
      --build-arg BUILDER=localhost/streamdet-builder:$HOSTARCH --build-arg BUILDPLATFORM=linux/$HOSTARCH --build-arg TARGETPLATFORM=linux/$ARCH \
      --build-arg STATIC_BASE=localhost/streamdet-base-static:$ARCH \
      --build-arg CC_BASE=localhost/streamdet-base-cc:$ARCH \
      --build-arg TARGETARCH="$ARCH" --build-arg ORT_LIB="$ort" --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" \
      -t "localhost/streamdet-$img:$VERSION-$ARCH" -t "localhost/streamdet-$img:test-$ARCH" . >/dev/null
    rm -f "$DIST/streamdet-$img-$ARCH.oci.tar"
    buildah push --quiet "localhost/streamdet-$img:$VERSION-$ARCH" "oci-archive:$DIST/streamdet-$img-$ARCH.oci.tar:streamdet-$img:$VERSION" >/dev/null
  done
  prune_replaced
  smoke
  sizes
}

# smoke: each service binary starts inside its image's filesystem (dynamic libraries found) and
# refuses to run without configuration. Images of another architecture run under
# qemu-user-static (binfmt need not be registered).
smoke() {
  local img c m out
  for img in ingest detect sink; do
    c=$(buildah from --pull=never --arch "$ARCH" "localhost/streamdet-$img:$VERSION-$ARCH")
    m=$(buildah mount "$c")
    if [[ $ARCH == "$HOSTARCH" ]]; then
      out=$(env -i LD_LIBRARY_PATH=/usr/lib/streamdet "$(command -v chroot)" --userspec=65532:65532 "$m" "/usr/local/bin/$img" 2>&1 || true)
    else
      out=$(qemu-aarch64-static -L "$m" -E LD_LIBRARY_PATH=/usr/lib/streamdet "$m/usr/local/bin/$img" 2>&1 || true)
    fi
    buildah umount "$c" >/dev/null
    buildah rm "$c" >/dev/null
    [[ $out == *"$img: configuration:"* ]] || die "streamdet-$img ($ARCH) does not start in its image: $out"
    log "streamdet-$img ($ARCH): starts in its image"
  done
}

sizes() {
  for img in "${IMAGES[@]}"; do
    local f=$DIST/streamdet-$img-$ARCH.oci.tar
    [[ -f $f ]] && printf '%-22s %6s MB  %s\n' "streamdet-$img" "$(($(stat -c %s "$f") / 1000000))" "${f#"$PWD/"}"
  done
}

case ${1:-images} in
bases) bases ;;
images) images ;;
prune) prune_replaced ;;
smoke) smoke ;;
sizes) sizes ;;
*)
  echo "usage: $0 bases|images|smoke|sizes|prune" >&2
  exit 2
  ;;
esac
