#!/usr/bin/env bash
# The Slurm test: starts a real one-node Slurm cluster (munged, slurmctld,
# slurmd; Debian's packages slurmctld slurmd slurm-client munge), submits a
# small sweep with `synthsae sweep submit --slurm` as a job array, requeues
# one array task mid-run (as a preemption does), waits (bounded), checks that
# every run is done and equals the same sweep run locally, checks the report,
# and stops the daemons by their pids. Everything (keys, sockets, state,
# logs) lives in one temporary folder; nothing is left running.
#
# Usage: scripts/slurm-test.sh path/to/synthsae
# Needs root (slurmd and munged run as root here) and the packages above;
# .ci/run installs them when missing.
set -euo pipefail

bin="$(realpath "${1:?usage: scripts/slurm-test.sh path/to/synthsae}")"
for tool in munged slurmctld slurmd sbatch squeue sinfo scontrol; do
  command -v "$tool" >/dev/null || { echo "slurm-test: $tool not found" >&2; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm-test: needs root (munged and slurmd run as root in this one-node cluster)" >&2
  exit 1
fi

work="$(mktemp -d /tmp/synthsae-slurm.XXXXXX)"
chmod 755 "$work"
log() { echo "slurm-test [$(date +%T)]: $*"; }

stop_daemons() {
  for name in slurmd slurmctld munged; do
    pidfile="$work/$name.pid"
    if [ -s "$pidfile" ]; then
      pid="$(cat "$pidfile")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
}
on_exit() {
  status=$?
  stop_daemons
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.log "$work"/sweep/slurm/*.out; do
      [ -f "$f" ] && { echo "== $f"; tail -n 25 "$f"; }
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap on_exit EXIT

host="$(hostname -s)"
cpus="$(nproc)"
mem_mb=$(( $(awk '/MemTotal/ { print $2 }' /proc/meminfo) / 1024 - 1024 ))
port_base="${SYNTHSAE_SLURM_PORT:-16817}"
mkdir -p "$work/state" "$work/spool" "$work/munge"
chmod 700 "$work/munge"

# munge: its own key, socket and pid file in the work folder.
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge/munge.key"
munged --force --key-file="$work/munge/munge.key" --socket="$work/munge/munge.sock" \
  --pid-file="$work/munged.pid" --log-file="$work/munged.log" --seed-file="$work/munge/seed" \
  >/dev/null 2>&1
chmod 755 "$work/munge"

export SLURM_CONF="$work/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=synthsae-test
SlurmctldHost=$host
SlurmctldPort=$port_base
SlurmdPort=$((port_base + 1))
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmdSpoolDir=$work/spool
StateSaveLocation=$work/state
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobRequeue=1
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
log "waiting for node $host to be idle"
for i in $(seq 120); do
  state="$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n 1 || true)"
  [ "$state" = "idle" ] && break
  [ "$i" -eq 120 ] && { echo "slurm-test: node not idle after 60 s (state: ${state:-none})" >&2; exit 1; }
  sleep 0.5
done
log "cluster up ($(sinfo -h -o '%P %D %T'))"

# The sweep: 2 architectures × 2 k × 2 seeds on the tutorial model, 2 groups
# (one per seed), checkpoints every tenth of a run.
cat >"$work/spec.json" <<'EOF'
{
  "name": "slurm-test",
  "base": {
    "synthetic_model": {
      "num_features": 16,
      "hidden_dim": 32,
      "firing_probability": {"generator_name": "constant", "probability": 0.25},
      "seed": 42
    },
    "sae": {"architecture": "batchtopk", "d_in": 32, "d_sae": 16, "k": 4},
    "training_samples": 614400,
    "batch_size": 512,
    "lr": 0.003,
    "eval_samples": 4096,
    "log_every": 50
  },
  "axes": {"sae.architecture": ["batchtopk", "topk"], "sae.k": [2, 4], "seed": [0, 1]},
  "checkpoints": 10
}
EOF

submitted="$("$bin" --json sweep submit "$work/spec.json" --out "$work/sweep" --slurm \
  --max-parallel 1 --cpus-per-task 1 --time 10:00)"
job="$(sed -n 's/.*"job_id":"\([0-9]*\)".*/\1/p' <<<"$submitted")"
[ -n "$job" ] || { echo "slurm-test: no job id in: $submitted" >&2; exit 1; }
log "submitted job array $job"

# Requeue task 0 once it has written a checkpoint: it must resume.
deadline=$(( $(date +%s) + 120 ))
until find "$work/sweep/checkpoints" -mindepth 2 -maxdepth 2 -type d -name '[0-9]*' \
    -path '*seed-0/*' 2>/dev/null | grep -q .; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "slurm-test: task 0 wrote no checkpoint in 120 s" >&2; exit 1; }
  sleep 0.05
done
scontrol requeue "${job}_0"
# A requeued job goes back to pending with a begin time Slurm sets a couple
# of minutes ahead; once it is pending, make it eligible now.
for _ in $(seq 100); do
  if [ "$(squeue -h -j "${job}_0" -o %T 2>/dev/null)" = "PENDING" ]; then
    scontrol update JobId="${job}_0" StartTime=now >/dev/null 2>&1 && break
  fi
  sleep 0.1
done
log "requeued ${job}_0 after its first checkpoint"

deadline=$(( $(date +%s) + 600 ))
while [ -n "$(squeue -h -j "$job" -o %i 2>/dev/null)" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "slurm-test: job $job still queued after 600 s" >&2; squeue; exit 1; }
  sleep 1
done
log "job array $job finished"

grep -q "resuming" "$work/sweep/slurm/task-0.out" \
  || { echo "slurm-test: the requeued task 0 did not resume from a checkpoint" >&2; exit 1; }
runs=$(ls "$work/sweep/status" | wc -l)
done_runs=$(grep -l '"state": "done"' "$work/sweep/status"/*.json | wc -l)
[ "$runs" -eq 8 ] && [ "$done_runs" -eq 8 ] \
  || { echo "slurm-test: $done_runs of 8 runs done (statuses: $runs)" >&2; exit 1; }

# The same sweep locally: every run's files equal.
"$bin" --quiet sweep run "$work/spec.json" --out "$work/local" --jobs 2 >/dev/null
for d in "$work/local/runs"/*/; do
  name="$(basename "$d")"
  for f in sae_weights.safetensors eval_stats.json metrics.jsonl; do
    cmp -s "$d/$f" "$work/sweep/runs/$name/$f" \
      || { echo "slurm-test: $name/$f differs from the local run" >&2; exit 1; }
  done
done
"$bin" --json sweep report "$work/sweep" >"$work/report.json"
grep -q '"runs_done":8' "$work/report.json" || { echo "slurm-test: report: $(cat "$work/report.json")" >&2; exit 1; }
"$bin" --quiet sweep report "$work/local" >/dev/null
cmp -s "$work/sweep/report/report.csv" "$work/local/report/report.csv" \
  || { echo "slurm-test: the reports differ" >&2; exit 1; }
log "ok: 8 runs done through Slurm, equal to the local sweep; report written"
