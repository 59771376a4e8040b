#!/usr/bin/env bash
# The CUDA check, run on a GPU machine from binaries built elsewhere by
# scripts/gpu-build.sh (no Rust toolchain or network needed here):
#
#   1. the environment: nvidia-smi, the driver library, NVRTC (their folders
#      go on LD_LIBRARY_PATH);
#   2. the backend-conformance suite on CUDA (`cuda::` instances);
#   3. the SynthSAEBench-16k model built once on the GPU and saved;
#   4. a short probe of `synthsaebench --architecture batchtopk --l0 25` on
#      both hidden paths (device: sparse batches uploaded, gather-sum on the
#      GPU; host: gather-sum on the host, [B, D] uploaded) for their rates;
#   5. the 20M-sample run on both paths with `--timings` (samples/s and the
#      breakdown: waiting for host sampling, upload, step, top-k, read-backs,
#      evaluation), each shortened to what the time left allows if the probe
#      says 20M would not fit;
#   6. the full 200M samples on the faster path, only if its rate says that
#      fits in 7 minutes and in the time left;
#
# then prints one table. Everything is kept under a time budget (default
# 540 s, so the script ends inside 9 minutes); the logs and the results
# JSONL go to $OUT (or /tmp/synthsae-gpu-check).
#
#   scripts/gpu-check.sh [BUNDLE]        BUNDLE: gpu-build.sh's folder (gpu-bundle)
#
# Overrides, for a dry run of the script itself on another backend:
#   SYNTHSAE_CHECK_BACKEND (cuda), SYNTHSAE_CHECK_PRESET (synthsaebench-16k),
#   SYNTHSAE_CHECK_SAMPLES (20000000), SYNTHSAE_CHECK_PROBE (2000000),
#   SYNTHSAE_CHECK_EVAL_SAMPLES (1000000), SYNTHSAE_CHECK_BUDGET_S (540).
set -uo pipefail
cd "$(dirname "$0")/.."

bundle="${1:-gpu-bundle}"
out="${OUT:-/tmp/synthsae-gpu-check}"
backend="${SYNTHSAE_CHECK_BACKEND:-cuda}"
preset="${SYNTHSAE_CHECK_PRESET:-synthsaebench-16k}"
samples="${SYNTHSAE_CHECK_SAMPLES:-20000000}"
probe="${SYNTHSAE_CHECK_PROBE:-2000000}"
eval_samples="${SYNTHSAE_CHECK_EVAL_SAMPLES:-1000000}"
budget="${SYNTHSAE_CHECK_BUDGET_S:-540}"
full=200000000
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"
t0=$(date +%s)
rows=()

left() { echo $(( budget - ($(date +%s) - t0) )); }
row() { rows+=("| $1 | $2 |"); echo "[gpu-check] $1: $2"; }
# A scalar field of a one-line JSON object: json_field KEY LINE.
json_field() { sed -nE "s/.*\"$1\":(\"[^\"]*\"|[^,}]*).*/\1/p" <<<"$2" | tr -d '"'; }
# A phase's seconds from a row's "timings" object: phase_seconds PHASE LINE.
phase_seconds() {
  sed -nE "s/.*\"timings\":\{.*\"$1\":\{[^}]*\"seconds\":([0-9.eE+-]+)[^}]*\}.*/\1/p" <<<"$2"
}
per_step_ms() { awk -v s="${1:-0}" -v n="$2" 'BEGIN { if (n > 0) printf "%.3f", 1000 * s / n; else print "-" }'; }
print_table() {
  echo
  echo "== synthsae GPU check: ${gpu_name:-no GPU}, $(date -u +%Y-%m-%d), $(( $(date +%s) - t0 )) s =="
  echo "| item | result |"
  echo "|---|---|"
  printf '%s\n' "${rows[@]}"
}
finish() { print_table; exit "${1:-0}"; }

# --- 1. environment -----------------------------------------------------
for f in synthsae backend_conformance; do
  if [ ! -x "$bundle/$f" ] && [ -f "$bundle/$f.xz" ]; then xz -dkf "$bundle/$f.xz" && chmod +x "$bundle/$f"; fi
  if [ ! -x "$bundle/$f" ]; then
    row "bundle" "missing $bundle/$f (build it with scripts/gpu-build.sh)"
    finish 1
  fi
done
if [ "$backend" = cuda ]; then
  if ! gpu_name=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1) \
      || [ -z "$gpu_name" ]; then
    row "environment" "nvidia-smi failed: ${gpu_name:-no output}"
    gpu_name=""
    finish 1
  fi
  libdirs=()
  for lib in libcuda.so libnvrtc.so; do
    found=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 ~ "^"l { print $NF; exit }')
    if [ -z "$found" ]; then
      found=$(find /usr/local/nvidia /usr/local/cuda* /usr/lib/x86_64-linux-gnu /opt \
        -name "$lib*" \( -type f -o -type l \) 2>/dev/null | head -n 1)
    fi
    if [ -z "$found" ]; then
      row "environment" "$lib not found (searched ldconfig, /usr/local/nvidia, /usr/local/cuda*, /opt)"
      finish 1
    fi
    libdirs+=("$(dirname "$found")")
    echo "[gpu-check] $lib: $found"
  done
  export LD_LIBRARY_PATH="$(IFS=:; echo "${libdirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  row "environment" "$gpu_name; libcuda, libnvrtc in ${libdirs[*]}"
else
  gpu_name="dry run on $backend"
  row "environment" "dry run on $backend (no GPU checks)"
fi

# --- 2. conformance -----------------------------------------------------
if [ "$backend" = cuda ]; then
  s=$(date +%s)
  timeout $(( $(left) < 180 ? $(left) : 180 )) "$bundle/backend_conformance" cuda:: \
    --test-threads 1 --nocapture >"$out/conformance.log" 2>&1
  rc=$?
  summary=$(grep -E '^test result:' "$out/conformance.log" | tail -n 1)
  failed=$(grep -E '^test .* FAILED$' "$out/conformance.log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | tr '\n' ' ')
  row "conformance (cuda::)" "rc $rc; ${summary:-no summary}${failed:+; failed: $failed} ($(( $(date +%s) - s )) s)"
fi

# --- 3. the model -------------------------------------------------------
model="$out/model-$preset"
s=$(date +%s)
if ! timeout $(( $(left) < 240 ? $(left) : 240 )) "$bundle/synthsae" --backend "$backend" --quiet \
    model new --preset "$preset" --out "$model" >"$out/model.log" 2>&1; then
  row "model $preset" "build failed: $(tail -n 1 "$out/model.log")"
  finish 1
fi
row "model $preset" "built and saved on $backend in $(( $(date +%s) - s )) s"

# One recipe run: run_bench LABEL PATH SAMPLES EXTRA... (prints its JSON row).
run_bench() {
  local label=$1 path=$2 n=$3
  shift 3
  local limit
  limit=$(left)
  if [ "$limit" -le 10 ]; then return 1; fi
  timeout "$limit" "$bundle/synthsae" --backend "$backend" --quiet synthsaebench \
    --model "$model" --architecture batchtopk --l0 25 --training-samples "$n" \
    --hidden-path "$path" --timings --results "$results" --output "$out/runs/$label" "$@" \
    >"$out/$label.log" 2>&1 || return 1
  tail -n 1 "$results"
}

# --- 4. probe -----------------------------------------------------------
declare -A rate
for path in device host; do
  if line=$(run_bench "probe-$path" "$path" "$probe" --eval-samples 100000 --eval-frequency 0); then
    rate[$path]=$(json_field samples_per_second "$line")
    row "probe $path path ($probe samples)" "$(printf '%.0f' "${rate[$path]}") samples/s"
  else
    rate[$path]=0
    row "probe $path path" "failed: $(tail -n 1 "$out/probe-$path.log")"
  fi
done

# --- 5. the 20M runs, with the breakdown --------------------------------
best_path=device
best_rate=0
for path in device host; do
  r=${rate[$path]}
  if awk -v r="$r" 'BEGIN { exit !(r <= 0) }'; then continue; fi
  # Each path gets half of what is left (the second all of it), less 60 s
  # for start-up and the evaluations.
  if [ "$path" = device ]; then share=$(( $(left) / 2 )); else share=$(left); fi
  n=$(awk -v r="$r" -v t="$share" -v want="$samples" \
    'BEGIN { fit = int(r * (t - 60) / 1000000) * 1000000; print (fit >= want ? want : (fit > 0 ? fit : 0)) }')
  if [ "$n" -le 0 ]; then
    row "$path path" "skipped: ${share} s left at $(printf '%.0f' "$r") samples/s"
    continue
  fi
  label="bench-$path"
  if ! line=$(run_bench "$label" "$path" "$n" --eval-samples "$eval_samples"); then
    row "$path path ($n samples)" "failed or timed out: $(tail -n 1 "$out/$label.log")"
    continue
  fi
  sps=$(json_field samples_per_second "$line")
  steps=$(( n / 1024 ))
  note=""
  [ "$n" -lt "$samples" ] && note=" (shortened from $samples to fit)"
  row "$path path, $n samples$note" "$(printf '%.0f' "$sps") samples/s; train $(printf '%.1f' "$(json_field train_seconds "$line")") s; MCC $(json_field mcc "$line"); F1 $(json_field f1 "$line"); L0 $(json_field sae_l0 "$line"); EV $(json_field explained_variance "$line")"
  row "$path path breakdown (ms/step)" "wait for data $(per_step_ms "$(phase_seconds wait_data "$line")" $steps); upload $(per_step_ms "$(phase_seconds upload "$line")" $steps); step $(per_step_ms "$(phase_seconds step "$line")" $steps) (top-k $(per_step_ms "$(phase_seconds topk "$line")" $steps)); read-back $(per_step_ms "$(phase_seconds read_back "$line")" $steps); periodic eval $(printf '%.1f' "$(phase_seconds eval "$line")") s; final eval $(printf '%.1f' "$(phase_seconds final_eval "$line")") s; host sampling busy $(printf '%.1f' "$(phase_seconds sampling "$line")") s"
  if awk -v a="$sps" -v b="$best_rate" 'BEGIN { exit !(a > b) }'; then best_rate=$sps; best_path=$path; fi
done

# --- 6. the full run, if it fits ----------------------------------------
need=$(awk -v r="$best_rate" -v n="$full" 'BEGIN { if (r > 0) printf "%d", n / r + 60; else print 999999 }')
if [ "$need" -le 420 ] && [ "$need" -le "$(left)" ]; then
  if line=$(run_bench "full-$best_path" "$best_path" "$full" --eval-samples "$eval_samples"); then
    row "$best_path path, 200M samples" "$(printf '%.0f' "$(json_field samples_per_second "$line")") samples/s; train $(printf '%.1f' "$(json_field train_seconds "$line")") s; MCC $(json_field mcc "$line"); F1 $(json_field f1 "$line"); uniqueness $(json_field uniqueness "$line"); EV $(json_field explained_variance "$line")"
  else
    row "$best_path path, 200M samples" "failed or timed out: $(tail -n 1 "$out/full-$best_path.log")"
  fi
else
  row "200M samples" "not run: needs about $need s at $(printf '%.0f' "$best_rate") samples/s ($best_path path), $(left) s left; alone: synthsae --backend $backend synthsaebench --model MODEL --architecture batchtopk --l0 25 --hidden-path $best_path --timings"
fi
finish 0
