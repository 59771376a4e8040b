"""The SynthSAEBench recipes on a scaled-down model, sae-lens side.

Trains one recipe (BatchTopK, Matryoshka, matching pursuit, Standard or
JumpReLU at a target L0) with sae-lens 6.54.12's `train_toy_sae` on the
model saved in MODEL_DIR (`configs/synthsaebench-4k-256.json`, built and
saved by `synthsae model new`, so both sides train on the same model), then
evaluates it with `eval_sae_on_synthetic_data` and prints one JSON line:
architecture, seed, wall seconds, L0, MCC, F1, uniqueness, explained
variance, dead latents.

    python benches/saelens_synthsaebench_quality.py MODEL_DIR ARCH SEED \
        [--l0 25] [--width 1024] [--samples 10000000] [--eval-samples 100000]

The recipe values are the published ones (the SynthSAEBench experiment code, sweeps/common.py), the
same values `synthsae synthsaebench` sets. sae-lens has no L0 auto-tuner, so
Standard and JumpReLU get one here: a subclass that multiplies the sparsity
coefficient by the tuner's multiplier each step and feeds the batch L0 back
(the rate-damped controller, written from its description: EMA of the batch
L0, EMA of its change, tanh-bounded multiplicative step, damped while the
average moves toward the target, multiplier clamped to [0.01, 100]).

The synthsae side:

    synthsae synthsaebench --model MODEL_DIR --architecture ARCH --seed SEED \
        --l0 25 --width 1024 --training-samples 10000000 --eval-samples 100000 \
        --eval-frequency 0

Results are in docs/benchmarks.md ("SynthSAEBench recipes, scaled down").
"""

import argparse
import dataclasses
import json
import math
import time

import torch
from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
from sae_lens.saes.matching_pursuit_sae import (
    MatchingPursuitTrainingSAE,
    MatchingPursuitTrainingSAEConfig,
)
from sae_lens.saes.matryoshka_batchtopk_sae import (
    MatryoshkaBatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAEConfig,
)
from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.synthetic import SyntheticModel
from sae_lens.synthetic.evals import eval_sae_on_synthetic_data
from sae_lens.synthetic.training import train_toy_sae

BATCH = 1024


class RateDampedTuner:
    """Steers a multiplier so that the EMA of the batch L0 reaches `target`."""

    def __init__(self, target, start_step):
        self.target = target
        self.start_step = start_step
        self.ema = None
        self.rate = 0.0
        self.multiplier = 1.0

    def update(self, step, batch_l0):
        if self.ema is None:
            self.ema = batch_l0
        else:
            new = 0.99 * self.ema + 0.01 * batch_l0
            self.rate = 0.95 * self.rate + 0.05 * (new - self.ema)
            self.ema = new
        if step < self.start_step:
            return
        error = self.ema - self.target
        if error == 0.0:
            return
        gain = 0.01 if error * self.rate < 0 else 1.0
        step_size = 3e-4 * gain * math.tanh(10.0 * abs(error) / self.target)
        factor = 1.0 + step_size if error > 0 else 1.0 - step_size
        self.multiplier = min(max(self.multiplier * factor, 0.01), 100.0)


def tuned(base_class, coefficient):
    """`base_class` with its `coefficient` scaled by a `RateDampedTuner`."""

    class Tuned(base_class):
        tuner = None

        def training_forward_pass(self, step_input):
            coefficients = dict(step_input.coefficients)
            coefficients[coefficient] *= self.tuner.multiplier
            out = super().training_forward_pass(
                dataclasses.replace(step_input, coefficients=coefficients)
            )
            with torch.no_grad():
                l0 = (out.feature_acts != 0).float().sum(-1).mean().item()
            self.tuner.update(step_input.n_training_steps, l0)
            return out

    return Tuned


def build_sae(arch, d_in, width, l0, total_steps):
    if arch == "batchtopk":
        return BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=d_in, d_sae=width, k=l0))
    if arch == "matryoshka_batchtopk":
        widths = [w for w in (128, 512, 2048) if w < width] + [width]
        cfg = MatryoshkaBatchTopKTrainingSAEConfig(
            d_in=d_in, d_sae=width, k=l0, matryoshka_widths=widths, use_matryoshka_aux_loss=True
        )
        return MatryoshkaBatchTopKTrainingSAE(cfg)
    if arch == "matching_pursuit":
        cfg = MatchingPursuitTrainingSAEConfig(
            d_in=d_in,
            d_sae=width,
            residual_threshold=0.0,
            max_iterations=l0,
            decoder_init_norm=1.0,
            stop_on_duplicate_support=False,
        )
        return MatchingPursuitTrainingSAE(cfg)
    if arch == "standard":
        third = total_steps // 3
        cfg = StandardTrainingSAEConfig(
            d_in=d_in, d_sae=width, l1_coefficient=2.0, l1_warm_up_steps=third
        )
        sae = tuned(StandardTrainingSAE, "l1")(cfg)
        sae.tuner = RateDampedTuner(l0, third)
        return sae
    if arch == "jumprelu":
        cfg = JumpReLUTrainingSAEConfig(
            d_in=d_in,
            d_sae=width,
            normalize_activations="expected_average_only_in",
            jumprelu_sparsity_loss_mode="step",
            jumprelu_bandwidth=1.0,
            jumprelu_init_threshold=1.0,
            pre_act_loss_coefficient=None,
            decoder_init_norm=0.5,
            l0_coefficient=1.0,
            l0_warm_up_steps=0,
        )
        sae = tuned(JumpReLUTrainingSAE, "l0")(cfg)
        sae.tuner = RateDampedTuner(l0, 0)
        return sae
    raise SystemExit(f"no recipe for {arch}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("arch")
    p.add_argument("seed", type=int)
    p.add_argument("--l0", type=int, default=25)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--samples", type=int, default=10_000_000)
    p.add_argument("--eval-samples", type=int, default=100_000)
    a = p.parse_args()
    torch.set_num_threads(2)
    model = SyntheticModel.load_from_disk(a.model_dir)
    torch.manual_seed(a.seed)
    d_in = model.cfg.hidden_dim
    sae = build_sae(a.arch, d_in, a.width, a.l0, a.samples // BATCH)
    start = time.time()
    train_toy_sae(
        sae,
        model.feature_dict,
        model.activation_generator,
        training_samples=a.samples,
        batch_size=BATCH,
        lr=3e-4,
    )
    seconds = time.time() - start
    r = eval_sae_on_synthetic_data(
        sae, model.feature_dict, model.activation_generator, num_samples=a.eval_samples,
        batch_size=BATCH,
    )
    print(
        json.dumps(
            {
                "side": "sae-lens",
                "architecture": a.arch,
                "seed": a.seed,
                "l0_target": a.l0,
                "samples": a.samples,
                "seconds": round(seconds, 1),
                "sae_l0": r.sae_l0,
                "mcc": r.mcc,
                "f1": r.classification.f1_score,
                "uniqueness": r.uniqueness,
                "explained_variance": r.explained_variance,
                "dead_latents": r.dead_latents,
            }
        )
    )


if __name__ == "__main__":
    main()
