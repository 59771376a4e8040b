"""Sampling throughput of sae-lens 6.54.12 on the configurations of
`benches/sampling_scale.rs`, for `cargo xtask bench` (which prints the ratio).

Usage: python benches/saelens_sampling.py [--max-n N] [--secs S] [--only CASE]

Prints one line per figure: RESULT<TAB>case<TAB>N<TAB>samples/s (batch 1024,
hidden activations included: `SyntheticModel.sample` or `feature_dict(acts)`).
Each figure is the best of three windows of at least `--secs` seconds (at
least one batch each). Orthogonalisation is skipped as in the Rust bench.
"""

import argparse
import sys
import time

import torch
from sae_lens.synthetic import (
    ActivationGenerator,
    FeatureDictionary,
    FoldedNormalMagnitudeConfig,
    HierarchyConfig,
    LinearMagnitudeConfig,
    LowRankCorrelationConfig,
    SyntheticModel,
    SyntheticModelConfig,
    ZipfianFiringProbabilityConfig,
    generate_random_low_rank_correlation_matrix,
    zipfian_firing_probabilities,
)

BATCH = 1024
D = 768


def measure(step, secs):
    step()  # warm-up
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        batches = 0
        while batches < 1 or time.perf_counter() - start < secs:
            step()
            batches += 1
        best = max(best, batches * BATCH / (time.perf_counter() - start))
    return best


def report(case, n, rate):
    print(f"RESULT\t{case}\t{n}\t{rate:.0f}", flush=True)


def generator_case(n, correlation, secs):
    probs = zipfian_firing_probabilities(n, exponent=0.5, max_prob=0.4, min_prob=5e-4)
    kwargs = {}
    if correlation:
        kwargs["correlation_matrix"] = generate_random_low_rank_correlation_matrix(
            n, 25, correlation_scale=0.1, seed=46
        )
    gen = ActivationGenerator(n, probs, std_firing_magnitudes=0.5, mean_firing_magnitudes=4.5, **kwargs)
    fd = FeatureDictionary(n, D, bias=0.5)

    @torch.no_grad()
    def step():
        fd(gen.sample(BATCH))

    return measure(step, secs)


def model_case(cfg, secs):
    model = SyntheticModel(cfg)

    @torch.no_grad()
    def step():
        model.sample(BATCH)

    return measure(step, secs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-n", type=int, default=65536)
    ap.add_argument("--secs", type=float, default=2.0)
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    want = lambda case: args.only is None or args.only in case  # noqa: E731
    n = 16384
    if want("independent/with_hidden"):
        report("independent/with_hidden", n, generator_case(n, False, args.secs))
    if want("low_rank_25/with_hidden"):
        report("low_rank_25/with_hidden", n, generator_case(n, True, args.secs))
    if want("synthsaebench_16k/with_hidden"):
        cfg = SyntheticModelConfig(
            num_features=16384,
            hidden_dim=768,
            firing_probability=ZipfianFiringProbabilityConfig(exponent=0.5, max_prob=0.4, min_prob=5e-4),
            hierarchy=HierarchyConfig(
                total_root_nodes=128,
                branching_factor=4,
                max_depth=3,
                mutually_exclusive_portion=1.0,
                mutually_exclusive_min_depth=0,
                compensate_probabilities=True,
                scale_children_by_parent=True,
            ),
            correlation=LowRankCorrelationConfig(rank=25, correlation_scale=0.1),
            std_firing_magnitudes=FoldedNormalMagnitudeConfig(mean=0.5, std=0.5),
            mean_firing_magnitudes=LinearMagnitudeConfig(start=5.0, end=4.0),
            bias=0.5,
            seed=42,
        )
        report("synthsaebench_16k/with_hidden", n, model_case(cfg, args.secs))
    if want("scale/with_hidden"):
        n = 128
        while n <= args.max_n:
            cfg = SyntheticModelConfig(
                num_features=n,
                hidden_dim=D,
                firing_probability=ZipfianFiringProbabilityConfig(
                    exponent=0.5, max_prob=0.4, min_prob=min(5e-4 * 16384 / n, 0.2)
                ),
                hierarchy=HierarchyConfig(
                    total_root_nodes=max(1, n // 128),
                    branching_factor=4,
                    max_depth=3,
                    mutually_exclusive_portion=1.0,
                    compensate_probabilities=True,
                    scale_children_by_parent=True,
                ),
                std_firing_magnitudes=0.5,
                mean_firing_magnitudes=4.5,
                bias=0.5,
                seed=45,
            )
            report("scale/with_hidden", n, model_case(cfg, args.secs))
            n *= 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
