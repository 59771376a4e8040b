"""The Zipf BatchTopK quality comparison on the sae-lens side.

Trains `configs/zipf-1024x256-batchtopk.json` (1024 Zipfian features in 256
dims; BatchTopK d_sae 1024, k 12; 2M samples, batch 1024, lr 3e-4) with
sae-lens 6.54.12's `SyntheticSAERunner`, seeding torch's global RNG with the
given seed (the runner config has no seed field), and prints one JSON line:
seed, wall seconds, and the eval's MCC, dead latents and explained variance.

    python benches/saelens_zipf_quality.py SEED [WORK_DIR]

The synthsae side: `synthsae train --config configs/zipf-1024x256-batchtopk.json
--seed SEED`. Results are in docs/benchmarks.md ("Training quality").
"""

import json
import sys
import time

import torch
from sae_lens.config import LoggingConfig
from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAEConfig
from sae_lens.synthetic import SyntheticModelConfig, ZipfianFiringProbabilityConfig
from sae_lens.synthetic.synthetic_sae_runner import SyntheticSAERunner, SyntheticSAERunnerConfig

seed = int(sys.argv[1])
work = sys.argv[2] if len(sys.argv) > 2 else "/tmp/saelens-zipf-quality"
torch.set_num_threads(2)
torch.manual_seed(seed)
out_dir = f"{work}/seed{seed}"
cfg = SyntheticSAERunnerConfig(
    synthetic_model=SyntheticModelConfig(
        num_features=1024,
        hidden_dim=256,
        firing_probability=ZipfianFiringProbabilityConfig(exponent=1.0, max_prob=0.3, min_prob=0.01),
        seed=42,
    ),
    sae=BatchTopKTrainingSAEConfig(d_in=256, d_sae=1024, k=12),
    training_samples=2_000_000,
    batch_size=1024,
    lr=3e-4,
    eval_samples=100_000,
    output_path=out_dir,
    logger=LoggingConfig(log_to_wandb=False),
)
start = time.time()
SyntheticSAERunner(cfg).run()
stats = json.load(open(f"{out_dir}/eval_stats.json"))
print(
    json.dumps(
        {
            "seed": seed,
            "seconds": round(time.time() - start, 1),
            "mcc": stats.get("mcc"),
            "dead_latents": stats.get("dead_latents"),
            "explained_variance": stats.get("explained_variance"),
        }
    )
)
