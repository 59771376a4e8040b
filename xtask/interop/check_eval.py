"""Evaluation interoperability check (run by `cargo xtask interop`).

usage: check_eval.py WORKDIR SYNTHSAE_BINARY

`synthsae eval --sae DIR --model DIR --samples N --seed S --json` must agree with
sae-lens 6.54.12's `eval_sae_on_synthetic_data` on the same SAE and model folders:

* decoder-only metrics exactly: MCC to 1e-5 (same W_dec, same true features, an
  exact assignment on both sides), uniqueness to 1e-12 (a ratio of counts);
* sampled metrics (true L0, SAE L0, dead latents, shrinkage, explained variance,
  precision, recall, F1, accuracy) within sampling error. Random streams differ
  between torch and synthsae, so one synthsae run of N samples is compared with
  R = 16 independent sae-lens runs of N samples each (torch seeds 1000..1015).
  If both draw from the same distribution, synthsae's value minus the mean of the
  sae-lens runs has standard deviation sd * sqrt(1 + 1/R), where sd is the
  standard deviation of the metric over the sae-lens runs (the sampling error of
  an N-sample evaluation, measured rather than modelled: F1, precision and
  explained variance are ratios with no simple closed form). Tolerance:
  Z = 6 of those (sd is itself estimated from 16 runs, so the test statistic is
  Student-t with 15 degrees of freedom: P(|t| > 6) = 2.4e-5 per comparison,
  under 0.3 % for the whole script's ~100 comparisons), plus 1e-9 absolute for
  metrics that do not vary at all (dead latents: at least 1, an integer count).
  The JSON must also have exactly sae-lens's keys and nesting (`to_dict()`).

Cases (decoder and true features come from files sae-lens wrote):
1. every fixture SAE (`tests/fixtures/saelens-6.54.12/saes/*`, d_in 24, d_sae 64:
   standard, topk, jumprelu, gated, matching_pursuit, and batchtopk / matryoshka
   saved as jumprelu) on a model sae-lens builds and saves here (64 features in
   24 dimensions with hierarchy, correlation and bias: the fixture models have
   other widths, so no fixture model fits these SAEs);
2. every fixture model (`tests/fixtures/saelens-6.54.12/models/*`: hierarchy,
   mutual exclusion, correlation, orthogonalisation, bias) with a JumpReLU SAE
   sae-lens builds and saves here: decoder = the true features plus noise
   (`init_sae_to_match_feature_dict`, noise 0.05), b_dec = the model's bias,
   threshold 0.5, so MCC, F1 and explained variance are far from trivial
   (on bench-like-1024x96, 1024 features in 96 dimensions, interference makes
   this encoder fire widely: L0 ≈ 230, explained variance < 0, a hard case
   for the comparison rather than a good SAE).
Prints one line per case and exits non-zero on the first failure.
"""

import json
import math
import os
import subprocess
import sys

import torch
from sae_lens import SAE
from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
from sae_lens.synthetic import (
    HierarchyConfig,
    LowRankCorrelationConfig,
    SyntheticModel,
    SyntheticModelConfig,
    ZipfianFiringProbabilityConfig,
)
from sae_lens.synthetic.evals import eval_sae_on_synthetic_data
from sae_lens.synthetic.initialization import init_sae_to_match_feature_dict

work, binary = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
fixtures = os.path.join(repo, "tests", "fixtures", "saelens-6.54.12")

N_SAMPLES = 20_000  # per evaluation, both sides
BATCH = 4096  # synthsae's batch size (sae-lens: one batch; the metrics are batch-size free)
REPLICAS = 16  # independent sae-lens evaluations per case
Z = 6.0  # tolerance in standard errors (see the module docstring)
SEED = 7  # synthsae's sampling seed

SAMPLED = [
    ("true_l0", lambda r: r["true_l0"]),
    ("sae_l0", lambda r: r["sae_l0"]),
    ("dead_latents", lambda r: r["dead_latents"]),
    ("shrinkage", lambda r: r["shrinkage"]),
    ("explained_variance", lambda r: r["explained_variance"]),
    ("precision", lambda r: r["classification"]["precision"]),
    ("recall", lambda r: r["classification"]["recall"]),
    ("f1_score", lambda r: r["classification"]["f1_score"]),
    ("accuracy", lambda r: r["classification"]["accuracy"]),
]


def keys(d):
    return {k: keys(v) if isinstance(v, dict) else None for k, v in d.items()}


def synthsae_eval(sae_dir, model_dir):
    out = subprocess.run(
        [binary, "-q", "--json", "eval", "--sae", sae_dir, "--model", model_dir,
         "--samples", str(N_SAMPLES), "--batch-size", str(BATCH), "--seed", str(SEED)],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        sys.exit(f"FAIL synthsae eval --sae {sae_dir} --model {model_dir}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def saelens_evals(sae_dir, model_dir):
    sae = SAE.load_from_disk(sae_dir, device="cpu")
    model = SyntheticModel.load_from_disk(model_dir, device="cpu")
    runs = []
    for i in range(REPLICAS):
        torch.manual_seed(1000 + i)
        r = eval_sae_on_synthetic_data(sae, model.feature_dict, model.activation_generator,
                                       num_samples=N_SAMPLES)
        runs.append(r.to_dict())
    return runs


def check(name, sae_dir, model_dir):
    ours = synthsae_eval(sae_dir, model_dir)
    theirs = saelens_evals(sae_dir, model_dir)
    if keys(ours) != keys(theirs[0]):
        sys.exit(f"FAIL {name}: JSON keys {keys(ours)} vs sae-lens {keys(theirs[0])}")
    # Decoder-only: identical in every sae-lens run.
    if abs(ours["mcc"] - theirs[0]["mcc"]) > 1e-5:
        sys.exit(f"FAIL {name}: MCC {ours['mcc']:.7f} vs sae-lens {theirs[0]['mcc']:.7f}")
    if abs(ours["uniqueness"] - theirs[0]["uniqueness"]) > 1e-12:
        sys.exit(f"FAIL {name}: uniqueness {ours['uniqueness']} vs sae-lens {theirs[0]['uniqueness']}")
    worst = (0.0, "")
    for metric, get in SAMPLED:
        vals = [float(get(r)) for r in theirs]
        mean = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
        tol = Z * sd * math.sqrt(1 + 1 / REPLICAS) + 1e-9
        if metric == "dead_latents":
            tol = max(tol, 1.0)
        diff = abs(float(get(ours)) - mean)
        if diff > tol:
            sys.exit(
                f"FAIL {name}: {metric} {float(get(ours)):.6g} vs sae-lens {mean:.6g} "
                f"(sd {sd:.3g} over {REPLICAS} runs of {N_SAMPLES}; |diff| {diff:.3g} > tolerance {tol:.3g})"
            )
        if sd > 0 and diff / tol > worst[0]:
            worst = (diff / tol, metric)
    c = ours["classification"]
    print(
        f"ok   {name}: MCC {ours['mcc']:.6f} (= sae-lens to {abs(ours['mcc'] - theirs[0]['mcc']):.1e}), "
        f"L0 {ours['sae_l0']:.2f}/{ours['true_l0']:.2f}, EV {ours['explained_variance']:.4f}, "
        f"F1 {c['f1_score']:.4f} within sampling error (largest {worst[0]:.2f} of tolerance, {worst[1]})"
    )


# 1. Fixture SAEs on a sae-lens model of their width.
model24 = os.path.join(work, "model-64x24")
torch.manual_seed(0)
SyntheticModel(
    SyntheticModelConfig(
        num_features=64,
        hidden_dim=24,
        firing_probability=ZipfianFiringProbabilityConfig(exponent=0.7, max_prob=0.4, min_prob=0.02),
        hierarchy=HierarchyConfig(total_root_nodes=4, branching_factor=2, max_depth=2,
                                  mutually_exclusive_portion=0.5),
        correlation=LowRankCorrelationConfig(rank=4, correlation_scale=0.1),
        std_firing_magnitudes=0.2,
        bias=0.3,
        seed=11,
    ),
    device="cpu",
).save(model24)
for arch in sorted(os.listdir(os.path.join(fixtures, "saes"))):
    check(f"fixture sae {arch} on model 64x24", os.path.join(fixtures, "saes", arch), model24)

# 2. Fixture models with a noisy ground-truth JumpReLU SAE.
for name in sorted(os.listdir(os.path.join(fixtures, "models"))):
    model_dir = os.path.join(fixtures, "models", name)
    model = SyntheticModel.load_from_disk(model_dir, device="cpu")
    n, d = model.feature_dict.feature_vectors.shape
    torch.manual_seed(3)
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d, d_sae=n))
    init_sae_to_match_feature_dict(sae, model.feature_dict, noise_level=0.05)
    with torch.no_grad():
        sae.W_dec.data = sae.W_dec.data.contiguous()  # a transposed view after the init
        sae.b_dec.copy_(model.feature_dict.bias)
        sae.threshold.fill_(0.5)
    sae_dir = os.path.join(work, f"sae-{name}")
    sae.save_model(sae_dir)
    check(f"noisy jumprelu sae on fixture model {name}", sae_dir, model_dir)
