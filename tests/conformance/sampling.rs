//! Sampling on the device: model construction (orthogonalisation runs on the
//! backend), hidden activations by the device gather/scatter-add path against
//! the host gather-sum, dense features, and save/load through the device.

use burn::prelude::*;
use synthsae::data::{sample_rng, HiddenPath, SyntheticModel, SyntheticModelConfig};

use super::{compare, compare_scalar, host, Report, Target, TempDir};

/// A scaled-down quickstart model: 512 features in 64 dimensions, Zipfian
/// firing, a hierarchy with mutual exclusion, low-rank correlation, folded
/// normal magnitudes, a bias, and 25 orthogonalisation steps. Device
/// buffers stay far below 128 MiB (the largest is `[512, 64]` floats).
pub fn model_config() -> SyntheticModelConfig {
    SyntheticModelConfig::from_json(
        r#"{
          "num_features": 512,
          "hidden_dim": 64,
          "firing_probability": {"exponent": 0.5, "max_prob": 0.4, "min_prob": 0.002,
                                 "generator_name": "zipfian"},
          "hierarchy": {"total_root_nodes": 16, "branching_factor": 4, "max_depth": 2,
                        "mutually_exclusive_portion": 0.5, "mutually_exclusive_min_depth": 0,
                        "mutually_exclusive_max_depth": null, "compensate_probabilities": true,
                        "scale_children_by_parent": true},
          "orthogonalization": {"num_steps": 25, "lr": 0.01, "chunk_size": 128},
          "correlation": {"rank": 8, "correlation_scale": 0.1, "seed": null},
          "std_firing_magnitudes": {"mean": 0.2, "std": 0.1, "min_value": null,
                                    "max_value": null, "generator_name": "folded_normal"},
          "mean_firing_magnitudes": {"start": 2.0, "end": 1.0, "generator_name": "linear"},
          "bias": 0.5,
          "dtype": "float32",
          "seed": 7
        }"#,
    )
    .expect("valid model config")
}

/// Batch sizes sampled: a single row, an odd size, a training-sized batch.
const BATCHES: [usize; 4] = [1, 7, 256, 1024];

/// Hidden activations computed on the device (`HiddenPath::Device`: select
/// rows of `F`, scale, `select_assign` add) equal the host gather-sum of the
/// same sparse batch; dense features on the device equal the CSR batch, and
/// `dense · F + b` on the device equals the host hidden activations. The
/// host path (`HiddenPath::Host`) uploads exactly.
pub fn device_hidden_matches_host<B: Backend>(t: &Target<B>) {
    let mut report = Report::default();
    let model =
        SyntheticModel::<B>::new(model_config(), &t.device).expect("model builds on the device");
    let dict = model.host_dictionary().clone();
    let model = model.with_hidden_path(HiddenPath::Device);
    let mut rng = sample_rng(Some(11));
    for &n in &BATCHES {
        let (hidden, features) = model
            .sample_with_features(n, &mut rng)
            .expect("device sample");
        assert_eq!(hidden.dims(), [n, 64]);
        assert_eq!(features.n_rows(), n);
        let got = host("read back hidden activations", hidden);
        let want = dict.forward_sparse(&features).expect("host hidden");
        let e = compare(
            &format!("{}: device hidden, batch {n}", t.name),
            &got,
            &want,
            t.tol.rel,
        );
        report.add("hidden (device path)", e as f64);

        // Dense features on the device, and the dense product.
        let dense = features.to_tensor::<B>(&t.device);
        assert_eq!(
            host("dense features", dense.clone()),
            features.to_dense_vec(),
            "{}: dense features differ from the CSR batch (batch {n})",
            t.name
        );
        let f = model.feature_dictionary().feature_vectors.val();
        let b = model.feature_dictionary().bias.val();
        let dense_hidden = dense.matmul(f) + b.unsqueeze_dim(0);
        let e = compare(
            &format!("{}: dense features · F + b, batch {n}", t.name),
            &host("dense hidden", dense_hidden),
            &want,
            t.tol.rel,
        );
        report.add("hidden (dense matmul)", e as f64);
    }
    // The host path: a host gather-sum uploaded as is.
    let model = model.with_hidden_path(HiddenPath::Host);
    let mut rng = sample_rng(Some(12));
    let (hidden, features) = model.sample_with_features(300, &mut rng).expect("sample");
    assert_eq!(
        host("read back", hidden),
        dict.forward_sparse(&features).expect("host hidden"),
        "{}: uploaded host hidden activations changed on the way",
        t.name
    );
    report.print(t.name, "sampling_device_hidden");
}

/// A model built on the backend (orthogonalisation and its |cos| report run
/// there) matches the same config built on the reference backend: the feature
/// vectors within the drift tolerance, everything drawn on the host (bias,
/// probabilities, correlation, hierarchy, hence the sampled feature batches)
/// exactly; then hidden activations of the same batches match across
/// backends.
pub fn construction_matches_reference<B: Backend, R: Backend>(t: &Target<B>) {
    let mut report = Report::default();
    let model = SyntheticModel::<B>::new(model_config(), &t.device).expect("model builds");
    let reference =
        SyntheticModel::<R>::new(model_config(), &Default::default()).expect("reference builds");
    let fv = |m: &SyntheticModel<B>| {
        host(
            "feature vectors",
            m.feature_dictionary().feature_vectors.val(),
        )
    };
    let got_f = fv(&model);
    let want_f = host(
        "reference feature vectors",
        reference.feature_dictionary().feature_vectors.val(),
    );
    let e = compare(
        &format!("{}: orthogonalised feature vectors", t.name),
        &got_f,
        &want_f,
        t.tol.drift,
    );
    report.add("feature vectors (25 Adam steps)", e as f64);
    assert_eq!(
        host("bias", model.feature_dictionary().bias.val()),
        host("reference bias", reference.feature_dictionary().bias.val()),
        "{}: bias differs",
        t.name
    );
    let (r1, r2) = (
        model.orthogonalization_report().expect("report"),
        reference
            .orthogonalization_report()
            .expect("reference report"),
    );
    for (what, a, b) in [
        ("final loss", r1.final_loss, r2.final_loss),
        ("mean |cos|", r1.mean_abs_cos, r2.mean_abs_cos),
        ("max |cos|", r1.max_abs_cos, r2.max_abs_cos),
    ] {
        let e = compare_scalar(
            &format!("{}: orthogonalisation {what}", t.name),
            a,
            b,
            t.tol.drift as f64,
        );
        report.add("orthogonalisation report", e);
    }
    let model = model.with_hidden_path(HiddenPath::Device);
    let (mut ra, mut rb) = (sample_rng(Some(21)), sample_rng(Some(21)));
    for &n in &BATCHES {
        let (hidden, features) = model.sample_with_features(n, &mut ra).expect("sample");
        let (ref_hidden, ref_features) = reference
            .sample_with_features(n, &mut rb)
            .expect("reference sample");
        assert_eq!(
            features, ref_features,
            "{}: host-drawn feature batches differ across backends (batch {n})",
            t.name
        );
        let e = compare(
            &format!("{}: hidden vs reference backend, batch {n}", t.name),
            &host("read back", hidden),
            &host("read back reference", ref_hidden),
            t.tol.drift,
        );
        report.add("hidden vs reference", e as f64);
    }
    report.print(t.name, "sampling_construction");
}

/// `save` reads the device tensors back into sae-lens's files; `load` on the
/// other backend puts the same numbers there (both directions, bit-exact).
pub fn save_load_round_trip<B: Backend, R: Backend>(t: &Target<B>) {
    let mut cfg = model_config();
    cfg.orthogonalization = None;
    let model = SyntheticModel::<B>::new(cfg.clone(), &t.device).expect("model builds");
    let dir = TempDir::new(&format!("model-{}", t.name));
    model
        .save(dir.path().join("a"))
        .expect("save from the device");
    let on_ref =
        SyntheticModel::<R>::load(dir.path().join("a"), &Default::default()).expect("load");
    let want = host("features", model.feature_dictionary().feature_vectors.val());
    assert_eq!(
        host(
            "loaded features",
            on_ref.feature_dictionary().feature_vectors.val()
        ),
        want,
        "{}: saved feature vectors differ from the device's",
        t.name
    );
    on_ref.save(dir.path().join("b")).expect("save reference");
    let back = SyntheticModel::<B>::load(dir.path().join("b"), &t.device).expect("load on device");
    assert_eq!(
        host(
            "reloaded features",
            back.feature_dictionary().feature_vectors.val()
        ),
        want,
        "{}: feature vectors changed on a save/load round trip",
        t.name
    );
    assert_eq!(
        host("reloaded bias", back.feature_dictionary().bias.val()),
        host("bias", model.feature_dictionary().bias.val()),
        "{}: bias changed on a save/load round trip",
        t.name
    );
    // Same sampling from the reloaded model.
    let (mut ra, mut rb) = (sample_rng(Some(3)), sample_rng(Some(3)));
    let a = model.sample(64, &mut ra).expect("sample");
    let b = back.sample(64, &mut rb).expect("sample reloaded");
    assert_eq!(
        host("read back", a),
        host("read back", b),
        "{}: a reloaded model samples differently",
        t.name
    );
}
