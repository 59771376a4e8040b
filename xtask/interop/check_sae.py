"""SAE interoperability check (run by `cargo xtask interop`).

usage: check_sae.py WORKDIR SYNTHSAE_BINARY

Runs the synthsae-sae example `export_fixture`, which writes one seeded SAE per
training architecture in sae-lens's inference layout together with an input and
synthsae's `encode` of it; loads each with `SAE.load_from_disk` and checks that
sae-lens's `encode` gives the same latents (same active set, values to 1e-5).
The binary argument is unused: no CLI command writes SAEs yet.
Prints one line per SAE and exits non-zero on the first failure.
"""

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file
from sae_lens import SAE

work = sys.argv[1]
os.makedirs(work, exist_ok=True)
out_dir = os.path.join(work, "saes")
repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
run = subprocess.run(
    ["cargo", "run", "--quiet", "--release", "-p", "synthsae-sae", "--example", "export_fixture", "--", out_dir],
    cwd=repo, capture_output=True, text=True,
)
if run.returncode != 0:
    sys.exit(f"FAIL export_fixture: {run.stderr.strip()}")

expected_arch = {"batchtopk": "jumprelu", "matryoshka_batchtopk": "jumprelu"}
for name in sorted(os.listdir(out_dir)):
    d = os.path.join(out_dir, name)
    cfg = json.load(open(os.path.join(d, "cfg.json")))
    if cfg["architecture"] != expected_arch.get(name, name):
        sys.exit(f"FAIL {name}: cfg architecture {cfg['architecture']}")
    if cfg["metadata"].get("training_architecture") != name:
        sys.exit(f"FAIL {name}: metadata.training_architecture {cfg['metadata'].get('training_architecture')}")
    sae = SAE.load_from_disk(d)
    io = load_file(os.path.join(d, "io.safetensors"))
    with torch.no_grad():
        theirs = sae.encode(io["input"])
    ours = io["feature_acts"]
    if not torch.equal(theirs != 0, ours != 0):
        n = int(((theirs != 0) != (ours != 0)).sum())
        sys.exit(f"FAIL {name}: {n} latents active in only one of sae-lens / synthsae")
    worst = float((theirs - ours).abs().max())
    if worst > 1e-5:
        sys.exit(f"FAIL {name}: encode differs by {worst:.3e}")
    l0 = float((ours != 0).float().sum(-1).mean())
    print(f"ok   sae {name}: loads in sae-lens as {type(sae).__name__}, encode equal (max diff {worst:.1e}, mean L0 {l0:.1f})")
