"""Training-run interoperability check (run by `cargo xtask interop`).

usage: check_train.py WORKDIR SYNTHSAE_BINARY

1. Python -> Rust: a runner config written by sae-lens
   (`SyntheticSAERunnerConfig.to_dict()`) runs in `synthsae train`.
2. Rust -> Python: the output folder of that run loads in sae-lens
   (`SAE.load_from_disk`, `SyntheticModel.load_from_disk`), and the MCC sae-lens
   computes from the loaded decoder and the loaded model equals the one in
   synthsae's `eval_stats.json`; sae-lens's `encode` of a batch matches the
   L0 synthsae reported to sampling precision.
Prints one line per check and exits non-zero on the first failure.
"""

import json
import os
import subprocess
import sys

import torch
from sae_lens import SAE
from sae_lens.synthetic import SyntheticModel, SyntheticModelConfig, ZipfianFiringProbabilityConfig
from sae_lens.synthetic.evals import mean_correlation_coefficient
from sae_lens.synthetic.synthetic_sae_runner import SyntheticSAERunnerConfig
from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAEConfig

work, binary = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)

model_cfg = SyntheticModelConfig(
    num_features=128,
    hidden_dim=32,
    firing_probability=ZipfianFiringProbabilityConfig(exponent=1.0, max_prob=0.3, min_prob=0.01),
    seed=5,
)
runner_cfg = SyntheticSAERunnerConfig(
    synthetic_model=model_cfg,
    sae=BatchTopKTrainingSAEConfig(d_in=32, d_sae=128, k=6),
    training_samples=200_000,
    batch_size=512,
    eval_samples=20_000,
    output_path=os.path.join(work, "output"),
    checkpoint_path=os.path.join(work, "checkpoints"),
    save_synthetic_model=True,
)
cfg_path = os.path.join(work, "runner_config.json")
with open(cfg_path, "w") as f:
    json.dump(runner_cfg.to_dict(), f, indent=2)

out = subprocess.run([binary, "-q", "--json", "train", "--config", cfg_path], capture_output=True, text=True)
if out.returncode != 0:
    sys.exit(f"FAIL synthsae train on a sae-lens runner_config.json: {out.stderr.strip()}")
report = json.loads(out.stdout)
print(f"ok   sae-lens runner_config.json runs in synthsae ({report['n_training_samples']} samples)")

out_dir = os.path.join(work, "output")
sae = SAE.load_from_disk(out_dir, device="cpu")
cfg = json.load(open(os.path.join(out_dir, "cfg.json")))
if cfg["architecture"] != "jumprelu":
    sys.exit(f"FAIL output cfg architecture {cfg['architecture']}, expected jumprelu")
model = SyntheticModel.load_from_disk(os.path.join(out_dir, "synthetic_model"), device="cpu")
stats = json.load(open(os.path.join(out_dir, "eval_stats.json")))
mcc = mean_correlation_coefficient(sae.W_dec.detach(), model.feature_dict.feature_vectors.detach())
if abs(mcc - stats["mcc"]) > 1e-5:
    sys.exit(f"FAIL MCC of the loaded SAE {mcc} vs synthsae's {stats['mcc']}")
print(f"ok   output loads in sae-lens; MCC {mcc:.5f} equals eval_stats.json")

torch.manual_seed(0)
with torch.no_grad():
    x = model.sample(20_000)
    z = sae.encode(x)
    l0 = (z != 0).float().sum(-1).mean().item()
if abs(l0 - stats["sae_l0"]) > 0.05 * max(stats["sae_l0"], 1.0):
    sys.exit(f"FAIL sae-lens L0 of the loaded SAE {l0:.3f} vs synthsae's {stats['sae_l0']:.3f}")
print(f"ok   sae-lens encode L0 {l0:.3f} matches synthsae's {stats['sae_l0']:.3f}")
