#!/usr/bin/env bash
# Pocket Worlds: the nindub image, built and run without a registry.
#
# deploy/Dockerfile is the recipe for a machine with a registry (a Rust
# image to build in, `scratch` to run in). Here no registry is reachable, so
# this script does the same two stages by hand, from Debian's buildah and
# podman: a static nindub (musl) is built on this machine, then copied into
# a `FROM scratch` image with buildah, and run with podman. For scale it
# also builds the naive single-stage image of the same binary: a Debian
# base with the Rust toolchain still inside.
#
# It checks what it builds (static binary, one layer holding one file,
# non-root user, no shell, the binary runs) and prints the sizes:
#   deploy/image.sh            (CARGO_TARGET_DIR is honoured)
#   deploy/image.sh --no-naive (skip the naive image: CI's check)
# Container state lives under ~/.cache/codex/containers, not the system's.
set -euo pipefail
cd "$(dirname "$0")/.."

naive=1
[ "${1:-}" = "--no-naive" ] && naive=0

state="${CODEX_HOME:-$HOME/.cache/codex}/containers"
mkdir -p "$state"
store=(--root "$state/storage" --runroot "$state/run" --storage-driver vfs)
b() { buildah "${store[@]}" "$@"; }
p() { podman "${store[@]}" "$@"; }
fail() { echo "image.sh: $*" >&2; exit 1; }
for tool in buildah podman runc readelf strip; do
  command -v "$tool" >/dev/null || fail "\`$tool\` is missing: run \`cargo codex setup forge\`"
done

# --- Stage 1: a static binary ------------------------------------------------
musl=x86_64-unknown-linux-musl
if rustup target list --installed 2>/dev/null | grep -qx "$musl" ||
  rustup target add "$musl" >&2; then
  target=$musl flags=""
else
  # Without the musl standard library: glibc, linked statically.
  target=x86_64-unknown-linux-gnu flags="-C target-feature=+crt-static"
  echo "image.sh: the musl target is unavailable; linking glibc statically" >&2
fi
echo "image.sh: building nindub for $target (release; the first build takes minutes)" >&2
RUSTFLAGS="$flags" cargo build --release --locked --quiet -p nindub --bin nindub --target "$target" >&2
built="${CARGO_TARGET_DIR:-target}/$target/release/nindub"
readelf -l "$built" | grep -q INTERP && fail "$built asks for a dynamic loader: not static"
stage="$state/stage"
rm -rf "$stage" && mkdir -p "$stage"
strip -o "$stage/nindub" "$built"
version=$("$stage/nindub" --version | awk '{print $2}')

# --- Stage 2: FROM scratch ---------------------------------------------------
tag="localhost/nindub:$version"
# ANCHOR: assemble
# One layer: the binary, read-only and executable; the unprivileged user it
# runs as; the entrypoint in exec form (no shell).
# --timestamp 0: no build date inside, so the same binary gives the same image.
assemble() {
  local c
  c=$(b from scratch)
  b copy --chmod 0555 "$c" "$stage/nindub" /nindub >/dev/null
  b config --user 65532:65532 --entrypoint '["/nindub"]' --cmd '["--help"]' \
    --env HOME=/home --workingdir / \
    --label org.opencontainers.image.title=nindub \
    --label org.opencontainers.image.version="$version" "$c"
  b commit --quiet --timestamp 0 --rm "$c" "$1" >/dev/null
  p image inspect --format '{{.Id}}' "$1"
}
# ANCHOR_END: assemble
id1=$(assemble "$tag")
id2=$(assemble "$tag-again")
p rmi "$tag-again" >/dev/null
[ "$id1" = "$id2" ] || fail "two builds of the same binary gave two images ($id1, $id2)"

# --- What is inside ------------------------------------------------------------
user=$(p image inspect --format '{{.Config.User}}' "$tag")
[ "$user" = "65532:65532" ] || fail "the image runs as '$user', not 65532:65532"
layers=$(p image inspect --format '{{len .RootFS.Layers}}' "$tag")
[ "$layers" = 1 ] || fail "$layers layers; expected 1"
rm -rf "$state/oci" && p image save --quiet --format oci-dir -o "$state/oci" "$tag"
files=$(for blob in "$state"/oci/blobs/sha256/*; do
  tar -tf "$blob" 2>/dev/null || true
done | sort -u | tr '\n' ' ')
[ "$files" = "nindub " ] || fail "the layer holds [$files], not only nindub"
rm -rf "$state/oci"

# --- Run it --------------------------------------------------------------------
# This machine's container sandbox: no cgroup delegation, no CAP_SYS_RESOURCE
# (so rlimits are lowered, never raised), hence runc with cgroupfs.
run=(--runtime runc --cgroup-manager cgroupfs)
limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none --read-only)
p "${run[@]}" run --rm "${limits[@]}" "$tag" --version >"$state/version.txt" ||
  fail "podman run failed"
grep -q "^nindub $version" "$state/version.txt" || fail "the container printed $(cat "$state/version.txt")"
p "${run[@]}" run --rm "${limits[@]}" --entrypoint /bin/sh "$tag" -c true 2>/dev/null &&
  fail "the image has a shell"
who=$(p "${run[@]}" run --rm "${limits[@]}" "$tag" estimate --preset llama-3-8b --context 8192 2>&1 | tail -n 1 | tr -s ' ')
# The server, from the image, on the host's loopback, with the model
# mounted read-only; /health answered from outside the container.
model="${NINDUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nindub}/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
health="(skipped: no model at $model)"
if [ -f "$model" ]; then
  # The container's user (65532) is not the model file's owner: it gets a
  # read-only copy it may read, and nothing else of this user's files.
  mkdir -p "$state/models"
  install -m 0444 "$model" "$state/models/smollm2.gguf"
  model="$state/models/smollm2.gguf"
  port=$(( 20000 + RANDOM % 20000 ))
  p "${run[@]}" run -d --rm --name nindub-health --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    --network host --read-only -v "$model:/models/smollm2.gguf:ro" "$tag" \
    serve --model /models/smollm2.gguf --port "$port" >/dev/null
  for _ in $(seq 60); do
    health=$(curl -fsS "http://127.0.0.1:$port/health" 2>/dev/null) && break
    sleep 1
  done
  p stop --time 2 nindub-health >/dev/null 2>&1 || true
  echo "$health" | grep -q '"status":"ok"' || fail "the containerised server did not answer /health ($health)"
fi

size() { p image inspect --format '{{.Size}}' "$1"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
runtime=$(size "$tag")
echo "$ deploy/image.sh"
echo "target: $target (static: no program interpreter)"
echo "image: $tag, $layers layer holding [$files], user $user, same id when rebuilt"
echo "podman run: $(cat "$state/version.txt")"
echo "podman run … estimate --preset llama-3-8b: $who"
echo "podman run … serve, then GET /health from the host: $health"
echo
echo "what                               MB"
printf '%-34s %s\n' "nindub as built" "$(mb "$(stat -c %s "$built")")"
printf '%-34s %s\n' "nindub stripped" "$(mb "$(stat -c %s "$stage/nindub")")"
printf '%-34s %s\n' "runtime image (FROM scratch)" "$(mb "$runtime")"

# --- The naive image, for scale ------------------------------------------------
if [ "$naive" = 1 ]; then
  rootfs="$state/debian-bookworm-minbase.tar"
  if [ ! -f "$rootfs" ]; then
    echo "image.sh: debootstrap of Debian bookworm (minbase), once" >&2
    mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    rm -rf "$state/rootfs" && mkdir -p "$state/rootfs"
    debootstrap --variant=minbase bookworm "$state/rootfs" $mirror >&2
    tar -C "$state/rootfs" -cf "$rootfs.partial" . && mv "$rootfs.partial" "$rootfs"
    rm -rf "$state/rootfs"
  fi
  sysroot=$(rustc --print sysroot)
  n=$(b from scratch)
  b add "$n" "$rootfs" / >/dev/null
  b copy "$n" "$sysroot/bin" /usr/local/rust/bin >/dev/null
  b copy "$n" "$sysroot/lib" /usr/local/rust/lib >/dev/null
  b copy "$n" "$stage/nindub" /usr/local/bin/nindub >/dev/null
  b config --entrypoint '["/usr/local/bin/nindub"]' "$n"
  b commit --quiet --timestamp 0 --rm "$n" localhost/nindub-naive:"$version" >/dev/null
  naive_size=$(size localhost/nindub-naive:"$version")
  p rmi localhost/nindub-naive:"$version" >/dev/null
  printf '%-34s %s\n' "naive image (Debian + toolchain)" "$(mb "$naive_size")"
  printf '%-34s %s\n' "naive / runtime" "$(awk -v a="$naive_size" -v b="$runtime" 'BEGIN { printf "%.0fx", a / b }')"
fi
