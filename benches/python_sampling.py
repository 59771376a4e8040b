"""Sampling from Python: `model.sample(1024)` of the synthsae package against
the CLI's `synthsae model info` throughput on the same saved model (hidden
activations included in both), and, when sae-lens is importable, against
sae-lens's `SyntheticModel.sample(1024)` on that model, side by side in one
run.

    python benches/python_sampling.py --model models/bench16k [--synthsae BIN] [--seconds S]

The model folder is built first when missing (`synthsae model new --preset
synthsaebench-16k`, about a minute). Needs the `synthsae` package
(`pip install ./crates/synthsae-py`) and the binary (`--synthsae`, else
`$SYNTHSAE_BIN`, else `synthsae` on the PATH). Prints samples/s of each and
the ratios.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import synthsae

BATCH = 1024


def samples_per_second(draw, seconds):
    """Samples/s of `draw()` (one batch of BATCH rows) over about `seconds`."""
    draw()  # warm up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        draw()
        n += 1
    return n * BATCH / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/bench16k")
    p.add_argument("--synthsae", default=os.environ.get("SYNTHSAE_BIN") or shutil.which("synthsae"))
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    if args.synthsae is None:
        sys.exit("no synthsae binary: pass --synthsae or set SYNTHSAE_BIN")
    if not os.path.isdir(args.model):
        subprocess.run(
            [args.synthsae, "-q", "model", "new", "--preset", "synthsaebench-16k", "--out", args.model],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    # The CLI's figure: `model info` samples in batches of 1024 as well.
    n_cli = max(BATCH, int(args.seconds * 100_000) // BATCH * BATCH)
    info = json.loads(
        subprocess.run(
            [args.synthsae, "-q", "--json", "model", "info", args.model,
             "--samples", str(n_cli), "--batch-size", str(BATCH)],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    cli = info["samples_per_second"]
    model = synthsae.SyntheticModel.load(args.model)
    seed = iter(range(1 << 62))
    py = samples_per_second(lambda: model.sample(BATCH, seed=next(seed)), args.seconds)
    print(f"synthsae CLI (model info)      {cli:12.0f} samples/s")
    print(f"synthsae from Python           {py:12.0f} samples/s  ({py / cli:.3f} of the CLI)")
    try:
        import torch
        from sae_lens.synthetic import SyntheticModel as SaeLensModel
    except ImportError:
        print("sae-lens: not installed, skipped")
        return
    theirs = SaeLensModel.load_from_disk(args.model)
    with torch.no_grad():
        ref = samples_per_second(lambda: theirs.sample(BATCH), args.seconds)
    print(f"sae-lens SyntheticModel.sample {ref:12.0f} samples/s  (synthsae from Python: {py / ref:.1f}x)")


if __name__ == "__main__":
    main()
