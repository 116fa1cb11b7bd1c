#!/usr/bin/env bash
# whisper-edge's runtime on arm64, proven on an x86 machine: an emulated Debian arm64 root (debootstrap +
# qemu-user-static) installs whisper-edge with its base dependencies only (PyPI's aarch64 wheels, no torch) and
# decodes the clips with each bundle; the same clips on this machine are the reference
# (`whisper-edge bundle parity`: fp32 tokens identical, a quantized bundle's WER within --max-wer-diff).
#
#   sudo scripts/arm64-check.sh --bundle FP32_DIR --bundle INT8_DIR --data CLIPS [--limit 24] [--out arm64-check]
#                               [--root ~/.cache/whisper-edge/arm64-root] [--mirror http://deb.debian.org/debian]
#
# Needs: root (debootstrap, chroot, mounts); the Debian packages debootstrap and qemu-user-static (installed with
# apt-get when missing); network access to a Debian mirror and to the Python package index; a Python environment on
# this machine with whisper-edge installed (the x86 reference; `make venv`). The arm64 root takes 15-20 minutes to
# build once and is reused. Every mount and binfmt registration this script makes is undone when it exits; the
# ones it found already there are left alone. Emulated time is not device time: no timing is reported.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${HOME}/.cache/whisper-edge/arm64-root"
OUT="arm64-check"
MIRROR="http://deb.debian.org/debian"
LIMIT=24
DATA=""
BUNDLES=()
PY="${PYTHON:-$REPO/.venv/bin/python}"

die() { echo "arm64-check: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLES+=("$2"); shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    --limit) LIMIT="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --root) ROOT="$2"; shift 2 ;;
    --mirror) MIRROR="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mounts); run it with sudo"
[ ${#BUNDLES[@]} -gt 0 ] || die "give at least one --bundle (an fp32 bundle, and a quantized one)"
[ -n "$DATA" ] || die "give --data CLIPS (an audiofolder: WAV files + metadata.csv, e.g. a corpus folder)"
[ -x "$PY" ] || die "no Python with whisper-edge at $PY (run 'make venv' or set PYTHON=...)"
if [ -e "$OUT" ] && [ ! -f "$OUT/.arm64-check" ]; then
  die "$OUT exists and was not made by this script; choose another --out"
fi
mkdir -p "$OUT" && touch "$OUT/.arm64-check"
OUT="$(cd "$OUT" && pwd)"

UNDO=()
cleanup() { local i; for ((i=${#UNDO[@]}-1; i>=0; i--)); do eval "${UNDO[i]}" || true; done; }
trap cleanup EXIT
trap "exit 130" INT TERM

# 1. the packages and the binfmt_misc registration that lets this kernel run aarch64 binaries through qemu
if ! command -v debootstrap >/dev/null || [ ! -x /usr/bin/qemu-aarch64-static ]; then
  echo "installing debootstrap qemu-user-static (apt-get)"
  apt-get install -y -q debootstrap qemu-user-static >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  UNDO+=("umount /proc/sys/fs/binfmt_misc")
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  # the standard aarch64 ELF magic and mask (qemu's scripts/qemu-binfmt-conf.sh); F: the interpreter is opened now,
  # so it works inside the chroot too
  printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
    > /proc/sys/fs/binfmt_misc/register
  UNDO+=("echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64")
fi

# 2. the arm64 root (built once; a half-built root is rebuilt)
if [ ! -f "$ROOT/.whisper-edge-root" ]; then
  if [ -e "$ROOT" ] && [ -n "$(ls -A "$ROOT" 2>/dev/null)" ] && [ ! -f "$ROOT/.whisper-edge-partial" ]; then
    die "$ROOT exists, is not empty and was not made by this script; choose another --root"
  fi
  mkdir -p "$ROOT" && touch "$ROOT/.whisper-edge-partial"
  echo "building the arm64 root in $ROOT (debootstrap, 15-20 minutes)"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv bookworm "$ROOT" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $OUT/debootstrap.log"
  mv "$ROOT/.whisper-edge-partial" "$ROOT/.whisper-edge-root"
fi
mountpoint -q "$ROOT/proc" || { mount -t proc proc "$ROOT/proc"; UNDO+=("umount '$ROOT/proc'"); }
# /sys stays unmounted: with it onnxruntime's cpuinfo reads the host's CPU list, picks kernels for features qemu 7.2
# does not emulate and the process dies (SIGSEGV in qemu); without it cpuinfo warns and the portable kernels run
chroot "$ROOT" /usr/bin/python3 -c 'import platform; print("arm64 root:", platform.machine(), "Python", platform.python_version())' \
  | tee "$OUT/arm64-python.txt"

# 3. whisper-edge and its base dependencies: aarch64 wheels fetched here, installed there with no index
W="$ROOT/opt/wheels"
rm -rf "$W" && mkdir -p "$W"
"$PY" -m pip wheel --quiet --no-deps --wheel-dir "$W" "$REPO"
WHEEL="$(ls "$W"/whisper_edge-*.whl)"
# its base dependencies as the index's aarch64 CPython 3.11 wheels (no sdist may be built there: --only-binary)
"$PY" -m pip download --quiet --dest "$W" --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 \
  --platform manylinux2014_aarch64 --only-binary=:all: --python-version 3.11 "$WHEEL"
chroot "$ROOT" /bin/sh -c 'test -x /opt/venv/bin/python || python3 -m venv /opt/venv'
chroot "$ROOT" /opt/venv/bin/pip install --quiet --no-index --find-links /opt/wheels --force-reinstall "/opt/wheels/$(basename "$WHEEL")"
chroot "$ROOT" /opt/venv/bin/pip list --format=freeze > "$OUT/arm64-packages.txt"
if chroot "$ROOT" /opt/venv/bin/python -c 'import torch' 2>/dev/null; then die "torch is importable in the arm64 root: the runtime must not need it"; fi

# 4. the same clips, each bundle, here and there
STAGE="$ROOT/opt/check"
rm -rf "$STAGE" && mkdir -p "$STAGE/bundles"
if [ -f "$DATA/metadata.csv" ]; then  # an audiofolder already
  cp -r "$DATA" "$STAGE/clips"
else                                  # a corpus from 'data build': its first test clips
  "$PY" -m whisper_edge data clips --corpus "$DATA" --split test --limit "$LIMIT" --out "$STAGE/clips"
fi
status=0
for b in "${BUNDLES[@]}"; do
  name="$(basename "$(cd "$b" && pwd)")"
  cp -r "$b" "$STAGE/bundles/$name"
  echo "== $name: x86_64 reference"
  "$PY" -m whisper_edge bundle tokens "$b" --data "$STAGE/clips" --limit "$LIMIT" --threads 2 --out "$OUT/$name.x86_64.json"
  echo "== $name: arm64 (emulated)"
  chroot "$ROOT" /opt/venv/bin/whisper-edge bundle tokens "/opt/check/bundles/$name" --data /opt/check/clips \
    --limit "$LIMIT" --threads 2 --out "/opt/check/$name.aarch64.json"
  cp "$STAGE/$name.aarch64.json" "$OUT/"
  "$PY" -m whisper_edge bundle parity "$OUT/$name.x86_64.json" "$OUT/$name.aarch64.json" \
    --out "$OUT/$name.parity.json" || status=1
done
echo "arm64-check: results in $OUT"
exit $status
