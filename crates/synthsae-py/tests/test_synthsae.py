"""The synthsae Python package against the synthsae CLI.

Needs the package installed (``pip install crates/synthsae-py``) and, for
the comparisons with the CLI, the ``synthsae`` binary: ``$SYNTHSAE_BIN``,
else ``synthsae`` on the ``PATH``.
"""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import synthsae

TUTORIAL = {
    "num_features": 16,
    "hidden_dim": 32,
    "firing_probability": {"probability": 0.25, "generator_name": "constant"},
    "hierarchy": None,
    "orthogonalization": {"num_steps": 200, "lr": 0.01, "chunk_size": 1024},
    "correlation": None,
    "std_firing_magnitudes": 0.0,
    "mean_firing_magnitudes": 1.0,
    "bias": 1.0,
    "dtype": "float32",
    "seed": 42,
}

SMALL_HIERARCHY = {
    "num_features": 64,
    "hidden_dim": 16,
    "firing_probability": {
        "exponent": 1.0,
        "max_prob": 0.3,
        "min_prob": 0.01,
        "generator_name": "zipfian",
    },
    "hierarchy": {"total_root_nodes": 8, "branching_factor": 3, "max_depth": 1},
    "seed": 1,
}


def cli():
    exe = os.environ.get("SYNTHSAE_BIN") or shutil.which("synthsae")
    if exe is None:
        pytest.fail("set SYNTHSAE_BIN to the synthsae binary (or put it on the PATH)")
    return exe


def run_cli(*args):
    out = subprocess.run([cli(), "-q", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def read_safetensors(path):
    """The tensors of a safetensors file, parsed by hand (no dependency)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    dtypes = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return out


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """The tutorial model, saved, and loaded back from its folder."""
    path = tmp_path_factory.mktemp("models") / "tutorial"
    synthsae.SyntheticModel.from_config(TUTORIAL).save(path)
    return path, synthsae.SyntheticModel.load(path)


@pytest.fixture(scope="module")
def trained(tutorial, tmp_path_factory):
    """A standard SAE trained on the tutorial model, and its report."""
    path, _ = tutorial
    out = tmp_path_factory.mktemp("runs") / "a"
    report = synthsae.train(
        {
            "synthetic_model": str(path),
            "sae": {"architecture": "standard", "d_in": 32, "d_sae": 16, "l1_coefficient": 0.05},
            "training_samples": 100_000,
            "batch_size": 1024,
            "lr": 3e-3,
            "eval_samples": 4096,
            "output_path": str(out),
            "seed": 1,
        }
    )
    return out, report


def test_properties_shapes_and_dtypes(tutorial):
    _, model = tutorial
    assert (model.num_features, model.hidden_dim) == (16, 32)
    f = model.feature_vectors
    assert f.shape == (16, 32) and f.dtype == np.float32
    p = model.firing_probabilities
    assert p.shape == (16,) and p.dtype == np.float32
    assert np.allclose(p, 0.25)
    assert model.config["num_features"] == 16
    assert "hierarchy=False" in repr(model)
    x = model.sample(100, seed=3)
    assert x.shape == (100, 32) and x.dtype == np.float32
    # Handed over without a copy: the array wraps the Rust buffer.
    assert x.flags["C_CONTIGUOUS"] and x.base is not None


def test_sampling_is_seeded():
    model = synthsae.SyntheticModel.from_config(TUTORIAL)
    a = model.sample(3000, seed=5)
    assert np.array_equal(a, model.sample(3000, seed=5))
    assert not np.array_equal(a, model.sample(3000, seed=6))
    assert model.sample(10).shape == (10, 32)  # OS entropy
    h, (indptr, indices, values) = model.sample_with_features(500, seed=5)
    assert np.array_equal(h, model.sample(500, seed=5))
    assert indptr.shape == (501,) and indptr.dtype == np.int64 and indptr[-1] == len(indices)
    assert indices.dtype == np.int64 and values.dtype == np.float32 and (values > 0).all()
    # Rows are the bias plus the sum of the active features' vectors.
    f = model.feature_vectors
    bias = h[0] - values[indptr[0] : indptr[1]] @ f[indices[indptr[0] : indptr[1]]]
    dense = np.zeros((500, 16), dtype=np.float32)
    for r in range(500):
        dense[r, indices[indptr[r] : indptr[r + 1]]] = values[indptr[r] : indptr[r + 1]]
    assert np.allclose(h, dense @ f + bias, atol=1e-5)


def test_sample_equals_the_cli_bit_for_bit(tutorial, tmp_path):
    path, model = tutorial
    out = tmp_path / "x.safetensors"
    run_cli("sample", str(path), "--samples", "2500", "--seed", "11", "--with-features", "--out", str(out))
    t = read_safetensors(out)
    h, (indptr, indices, values) = model.sample_with_features(2500, seed=11)
    assert np.array_equal(t["hidden_activations"], h)
    assert np.array_equal(t["feature_row_offsets"], indptr)
    assert np.array_equal(t["feature_indices"], indices)
    assert np.array_equal(t["feature_values"], values)
    assert np.array_equal(model.sample(2500, seed=11), h)


def test_batches_continue_one_stream():
    model = synthsae.SyntheticModel.from_config(TUTORIAL)
    it = model.batches(1024, seed=2, prefetch=3)
    got = [next(it) for _ in range(3)]
    assert all(b.shape == (1024, 32) and b.dtype == np.float32 for b in got)
    assert np.array_equal(np.concatenate(got), model.sample(3 * 1024, seed=2))
    it.close()
    assert list(it) == []
    # Iterators end with their owner gone; a fresh one starts the stream again.
    assert np.array_equal(next(iter(model.batches(1024, seed=2))), got[0])


def test_evaluate_equals_the_cli(trained, tutorial):
    run, report = trained
    path, model = tutorial
    assert report["n_training_samples"] >= 100_000
    assert report["output_path"] == str(run)
    assert set(report) >= {"train_seconds", "samples_per_second", "l0", "final_eval"}
    assert "hierarchy" in report["final_eval"]
    ours = synthsae.evaluate(str(run), model, samples=5000, seed=3, batch_size=1000)
    theirs = json.loads(
        run_cli("--json", "eval", "--sae", str(run), "--model", str(path),
                "--samples", "5000", "--seed", "3", "--batch-size", "1000")
    )
    assert ours == theirs
    assert ours["mcc"] > 0.5
    assert ours["hierarchy"]["absorption"] is None  # the tutorial has no hierarchy


def test_train_writes_what_the_cli_writes(tutorial, tmp_path):
    path, _ = tutorial
    cfg = {
        "synthetic_model": str(path),
        "sae": {"architecture": "topk", "d_in": 32, "d_sae": 16, "k": 4},
        "training_samples": 60_000,
        "batch_size": 1024,
        "lr": 3e-3,
        "eval_samples": 2048,
        "eval_frequency": 20,
        "seed": 4,
    }
    synthsae.train({**cfg, "output_path": str(tmp_path / "py")})
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "output_path": str(tmp_path / "cli")}))
    run_cli("train", "--config", str(tmp_path / "cfg.json"))
    for f in ["sae_weights.safetensors", "eval_stats.json", "hierarchy_stats.json", "sparsity.safetensors"]:
        assert (tmp_path / "py" / f).read_bytes() == (tmp_path / "cli" / f).read_bytes(), f


def test_hierarchy_section_from_python(tmp_path):
    model = synthsae.SyntheticModel.from_config(SMALL_HIERARCHY)
    model.save(tmp_path / "small")
    report = synthsae.train(
        {
            "synthetic_model": str(tmp_path / "small"),
            "sae": {"architecture": "topk", "d_in": 16, "d_sae": 64, "k": 3},
            "training_samples": 50_000,
            "batch_size": 1024,
            "lr": 3e-3,
            "eval_samples": 2048,
            "output_path": str(tmp_path / "run"),
        }
    )
    a = report["final_eval"]["hierarchy"]["absorption"]
    assert a["parents"] == 8 and len(a["per_parent"]) == 8
    r = synthsae.evaluate(str(tmp_path / "run"), model, samples=3000)
    assert 0.0 <= r["hierarchy"]["absorption"]["absorption"] <= 1.0


def test_presets_match_the_cli(tutorial):
    _, model = tutorial
    assert synthsae.preset("tutorial") == model.config
    assert synthsae.preset("synthsaebench-16k")["num_features"] == 16384
    with pytest.raises(ValueError, match="tutorial"):
        synthsae.preset("nope")


def test_errors_are_python_exceptions(tmp_path, tutorial):
    _, model = tutorial
    with pytest.raises(ValueError, match="num_features"):
        synthsae.SyntheticModel.from_config({**TUTORIAL, "num_features": 0})
    with pytest.raises(ValueError):
        synthsae.SyntheticModel.from_config({**TUTORIAL, "no_such_key": 1})
    with pytest.raises(ValueError, match="config"):
        synthsae.SyntheticModel.from_config({"x": object()})
    with pytest.raises(TypeError):
        synthsae.SyntheticModel.from_config([1, 2])
    with pytest.raises(OSError):
        synthsae.SyntheticModel.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="batch_size"):
        model.sample(0)
    with pytest.raises(ValueError, match="batch_size"):
        model.sample_with_features(0)
    with pytest.raises(ValueError, match="prefetch"):
        model.batches(16, prefetch=0)
    with pytest.raises(OverflowError):
        model.sample(-1)
    with pytest.raises(MemoryError, match="batch_size"):
        model.sample(2**62)
    with pytest.raises(MemoryError, match="batch_size"):
        next(model.batches(2**40))
    with pytest.raises(OSError):
        synthsae.evaluate(str(tmp_path / "no-sae"), model, samples=10)
    with pytest.raises(ValueError, match="samples"):
        synthsae.evaluate(str(tmp_path), model, samples=0)
    with pytest.raises(ValueError, match="runner_config"):
        synthsae.train({"synthetic_model": TUTORIAL, "sae": {"architecture": "nope"}})
    with pytest.raises(OSError):
        synthsae.train(
            {
                "synthetic_model": str(tmp_path / "missing"),
                "sae": {"architecture": "standard", "d_in": 32, "d_sae": 16},
                "training_samples": 1024,
            }
        )
    with pytest.raises(ValueError):
        synthsae.SyntheticModel.load("not a valid / hub id")


INTERRUPTED = """
import sys, synthsae
synthsae.train({
    "synthetic_model": sys.argv[1],
    "sae": {"architecture": "standard", "d_in": 32, "d_sae": 16},
    "training_samples": 4_000_000,
    "batch_size": 1024,
    "n_checkpoints": 400,
    "checkpoint_path": sys.argv[2],
    "eval_samples": 0,
    "output_path": None,
})
"""


def test_ctrl_c_stops_cleanly_and_the_checkpoint_resumes(tutorial, tmp_path):
    path, _ = tutorial
    ckpt = tmp_path / "ckpt"
    p = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED, str(path), str(ckpt)],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpt.is_dir() and any(ckpt.iterdir())):
        time.sleep(0.1)
    assert ckpt.is_dir() and any(ckpt.iterdir()), "no checkpoint within 120 s"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0
    assert "KeyboardInterrupt" in err, err
    # The latest checkpoint resumes, and the run ends from it.
    done = [int(d.name) for d in ckpt.iterdir() if d.name.isdigit()]
    assert done and max(done) < 4_000_000, "interrupted before the end"
    report = synthsae.train(
        {
            "synthetic_model": str(path),
            "sae": {"architecture": "standard", "d_in": 32, "d_sae": 16},
            "training_samples": 4_000_000,
            "batch_size": 1024,
            "n_checkpoints": 400,
            "checkpoint_path": str(tmp_path / "resumed"),
            "eval_samples": 0,
            "output_path": None,
        },
        resume=str(ckpt / str(max(done))),
    )
    assert report["n_training_samples"] >= 4_000_000
