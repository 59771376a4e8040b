#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh runs on a GPU machine, on a machine
# without a GPU: the release `synthsae` binary and the backend-conformance
# test binary with `--features cuda` (Burn 0.21 loads the CUDA libraries at
# run time, so nothing here needs CUDA), stripped and xz-compressed into
# BUNDLE (default gpu-bundle/, ignored by git) so that they travel small.
#
#   scripts/gpu-build.sh [BUNDLE]
#
# CUDARC_CUDA_VERSION picks the CUDA API the bindings are generated for
# (default 13000: CUDA 13.0, what a 580-series driver provides); it must not
# be newer than the GPU machine's driver.
set -euo pipefail
cd "$(dirname "$0")/.."

bundle="${1:-gpu-bundle}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/synthsae/target-cuda}"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
mkdir -p "$bundle"

cargo build --release --features cuda --bin synthsae
log="$(mktemp)"
cargo test --release --features cuda --test backend_conformance --no-run 2>&1 | tee "$log"
test_bin=$(sed -nE 's/.*Executable .*\((.*backend_conformance-[^)]*)\).*/\1/p' "$log" | tail -n 1)
rm -f "$log"
if [ -z "$test_bin" ] || [ ! -x "$test_bin" ]; then
  echo "error: could not find the backend_conformance test binary in cargo's output" >&2
  exit 1
fi

for pair in "$CARGO_TARGET_DIR/release/synthsae:synthsae" "$test_bin:backend_conformance"; do
  src="${pair%%:*}"
  name="${pair##*:}"
  strip -o "$bundle/$name" "$src"
  rm -f "$bundle/$name.xz"
  xz -T0 -9 -k "$bundle/$name"
  rm -f "$bundle/$name"
done
ls -l "$bundle"
echo "bundle ready: carry '$bundle' and run scripts/gpu-check.sh $bundle on the GPU machine"
