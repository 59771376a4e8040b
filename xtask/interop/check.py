"""Interoperability check between synthsae and sae-lens (run by `cargo xtask interop`).

usage: check.py WORKDIR SYNTHSAE_BINARY

1. Rust -> Python: models written by `synthsae model new` load in sae-lens, sample,
   and equal (to float rounding) the models sae-lens builds from the same config.
2. Python -> Rust: a model saved by sae-lens loads in synthsae (`model info`), and
   synthsae rebuilds it from its config.
Prints one line per check and exits non-zero on the first failure.
"""

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file
from sae_lens.synthetic import SyntheticModel, SyntheticModelConfig

work, binary = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)


def synthsae(*args):
    out = subprocess.run([binary, "-q", "--json", *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"FAIL synthsae {' '.join(args)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def compare(label, ours_dir, theirs_dir, tol):
    a = load_file(os.path.join(ours_dir, "synthetic_model.safetensors"))
    b = load_file(os.path.join(theirs_dir, "synthetic_model.safetensors"))
    if set(a) != set(b):
        sys.exit(f"FAIL {label}: tensor names differ {sorted(a)} vs {sorted(b)}")
    # Probabilities must agree to a few float32 ulp: sae-lens's own float32
    # results differ by that much between machines (the bench-like fixture
    # in tests/fixtures and the same model rebuilt by the same sae-lens 6.54.12
    # + torch 2.15 on another machine differ in 165 of 1024 compensated
    # probabilities, by up to a few ulp).
    pa, pb = a["firing_probabilities"].float(), b["firing_probabilities"].float()
    ulps = (pa.view(torch.int32).long() - pb.view(torch.int32).long()).abs()
    if int(ulps.max()) > 16:
        sys.exit(f"FAIL {label}: firing probabilities differ by up to {int(ulps.max())} ulp")
    exact = int((ulps == 0).sum())
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    if worst > tol:
        sys.exit(f"FAIL {label}: max deviation {worst:.3e} > {tol:.0e}")
    for name in ("synthetic_model_config.json", "hierarchy.json"):
        ja, jb = os.path.join(ours_dir, name), os.path.join(theirs_dir, name)
        if os.path.exists(ja) != os.path.exists(jb):
            sys.exit(f"FAIL {label}: {name} present in only one model")
        if os.path.exists(ja) and json.load(open(ja)) != json.load(open(jb)):
            sys.exit(f"FAIL {label}: {name} differs")
    print(f"ok   {label}: probabilities {exact}/{pa.numel()} bit-identical (others <= {int(ulps.max())} ulp), tensors within {worst:.2e}, JSON identical")


configs = {
    "bench-like": json.load(open(os.path.join(os.path.dirname(__file__), "../../tests/fixtures/saelens-6.54.12/models/bench-like-1024x96/synthetic_model_config.json"))),
    "zipf": {"num_features": 300, "hidden_dim": 24, "firing_probability": {"exponent": 1.0, "max_prob": 0.3,
             "min_prob": 0.01, "generator_name": "zipfian"}, "std_firing_magnitudes": 0.1, "bias": 0.5, "seed": 5},
    "hierarchy": {"num_features": 500, "hidden_dim": 32, "firing_probability": {"exponent": 0.5, "max_prob": 0.4,
                  "min_prob": 0.005, "generator_name": "zipfian"},
                  "hierarchy": {"total_root_nodes": 6, "branching_factor": [2, 4], "max_depth": 3,
                                "mutually_exclusive_portion": 0.5, "compensate_probabilities": True,
                                "scale_children_by_parent": True},
                  "correlation": {"rank": 6, "correlation_scale": 0.1},
                  "std_firing_magnitudes": {"mean": 0.5, "std": 0.5, "generator_name": "folded_normal"},
                  "mean_firing_magnitudes": {"start": 5.0, "end": 4.0, "generator_name": "linear"},
                  "bias": 0.5, "seed": 42},
}

for name, cfg in configs.items():
    cfg_path = os.path.join(work, f"{name}.json")
    json.dump(cfg, open(cfg_path, "w"))
    # Rust -> Python.
    rust_dir = os.path.join(work, f"rust_{name}")
    synthsae("model", "new", "--config", cfg_path, "--out", rust_dir)
    loaded = SyntheticModel.load_from_disk(rust_dir)
    hidden, feats = loaded.sample_with_features(64)
    if tuple(hidden.shape) != (64, cfg["hidden_dim"]):
        sys.exit(f"FAIL {name}: sae-lens sampled shape {tuple(hidden.shape)} from the synthsae model")
    print(f"ok   {name}: sae-lens loads and samples the synthsae model")
    py_dir = os.path.join(work, f"py_{name}")
    SyntheticModel(SyntheticModelConfig.from_dict(json.load(open(os.path.join(rust_dir, "synthetic_model_config.json"))))).save(py_dir)
    compare(f"{name}: synthsae-built vs sae-lens-built", rust_dir, py_dir, 1e-4)
    # Python -> Rust.
    info = synthsae("model", "info", py_dir, "--samples", "2000")
    if info["config"]["num_features"] != cfg["num_features"]:
        sys.exit(f"FAIL {name}: synthsae read the wrong config")
    resaved = os.path.join(work, f"rust_resaved_{name}")
    synthsae("model", "new", "--config", os.path.join(py_dir, "synthetic_model_config.json"), "--out", resaved)
    compare(f"{name}: sae-lens model rebuilt by synthsae", resaved, py_dir, 1e-4)

print("interop: all checks passed")
