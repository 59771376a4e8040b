//! Training data: batches of hidden activations drawn fresh from a synthetic
//! model, on reproducible, addressable random streams, prefetched on a
//! background thread.
//!
//! Every batch is addressed by `(stream, index)`: batch `i` of the training
//! stream is always sampled from the same generator state, whatever came
//! before it. That makes three things cheap: resuming a run (start at the
//! next index), evaluating during training without disturbing the training
//! data (evaluation uses its own stream), and prefetching (a thread can sample
//! ahead without sharing generator state with the trainer).

use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use synthsae_data::rng::{block_rng, SampleRng};
use synthsae_data::{ActivationGenerator, HiddenPath, HostFeatureDictionary};
use synthsae_host::Csr;

use crate::error::Result;

/// Stream ids: which sequence of batches a request belongs to.
pub mod stream {
    /// Batches the SAE trains on.
    pub const TRAIN: u64 = 0;
    /// Batches consumed to estimate the input scaling factor.
    pub const NORM_ESTIMATE: u64 = 1;
    /// Periodic evaluations (`EVAL + step` would collide with nothing else;
    /// each evaluation derives its own key from this and the step).
    pub const EVAL: u64 = 2;
    /// The final evaluation.
    pub const FINAL_EVAL: u64 = 3;
}

/// Derives the 64-bit generator key of stream `stream` under run seed `seed`.
pub fn stream_key(seed: u64, stream: u64) -> u64 {
    // SplitMix64 finaliser over (seed, stream): distinct streams get
    // unrelated keys even for adjacent seeds.
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator for batch `index` of `stream` under `seed`.
pub fn batch_rng(seed: u64, stream: u64, index: u64) -> SampleRng {
    block_rng(stream_key(seed, stream), index)
}

/// One sampled batch: the features and, when the sampler computes them on
/// the host, the hidden activations they make.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Hidden activations, row-major `[batch, D]`; `None` when they are left
    /// to the device ([`HiddenPath::Device`]: the trainer computes them from
    /// `features` there).
    pub hidden: Option<Vec<f32>>,
    /// Ground-truth feature activations `[batch, N]` (sparse).
    pub features: Csr,
}

/// Samples addressable batches on the host: the sparse sampler, plus the
/// rayon gather-sum of feature rows unless the hidden activations are left
/// to the device. Cheap to clone: the generator and the dictionary are
/// shared.
#[derive(Debug, Clone)]
pub struct BatchSampler {
    generator: ActivationGenerator,
    dictionary: HostFeatureDictionary,
    seed: u64,
    batch_size: usize,
    host_hidden: bool,
}

impl BatchSampler {
    /// A sampler over `generator` and `dictionary` with run seed `seed`.
    pub fn new(
        generator: ActivationGenerator,
        dictionary: HostFeatureDictionary,
        seed: u64,
        batch_size: usize,
    ) -> Self {
        Self {
            generator,
            dictionary,
            seed,
            batch_size,
            host_hidden: true,
        }
    }

    /// Where the hidden activations of training batches are computed, a
    /// path already resolved for the backend ([`HiddenPath::resolve`]):
    /// `Device` leaves them out of the batches (features only); `Host` (the
    /// default) and `Auto` compute them here.
    pub fn with_hidden_path(mut self, path: HiddenPath) -> Self {
        self.host_hidden = path != HiddenPath::Device;
        self
    }

    /// Whether batches carry host-computed hidden activations.
    pub fn hidden_on_host(&self) -> bool {
        self.host_hidden
    }

    /// Rows per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Hidden dimension `D`.
    pub fn hidden_dim(&self) -> usize {
        self.dictionary.hidden_dim()
    }

    /// Batch `index` of `stream`, with `rows` rows (hidden activations as
    /// [`BatchSampler::with_hidden_path`] chose).
    pub fn sample(&self, stream: u64, index: u64, rows: usize) -> Result<Batch> {
        let _span = synthsae_host::profile::span(synthsae_host::profile::Phase::Sampling);
        let mut rng = batch_rng(self.seed, stream, index);
        let features = self.generator.sample(rows, &mut rng);
        let hidden = match self.host_hidden {
            true => Some(self.dictionary.forward_sparse(&features)?),
            false => None,
        };
        Ok(Batch { hidden, features })
    }

    /// Hidden activations `[rows, D]` of batch `index` of `stream`, always
    /// computed on the host (the scaling-factor estimate: its value does not
    /// depend on the hidden path).
    pub fn sample_hidden(&self, stream: u64, index: u64, rows: usize) -> Result<Vec<f32>> {
        let mut rng = batch_rng(self.seed, stream, index);
        let features = self.generator.sample(rows, &mut rng);
        Ok(self.dictionary.forward_sparse(&features)?)
    }

    /// Batch `index` of the training stream.
    pub fn train_batch(&self, index: u64) -> Result<Batch> {
        self.sample(stream::TRAIN, index, self.batch_size)
    }

    /// Starts a background thread that samples training batches
    /// `first, first + 1, ...` (up to `end`, exclusive) into a queue of
    /// `depth` batches.
    pub fn prefetch(&self, first: u64, end: u64, depth: usize) -> Prefetcher {
        let (tx, rx) = sync_channel(depth.max(1));
        let sampler = self.clone();
        let handle = std::thread::Builder::new()
            .name("synthsae-prefetch".into())
            .spawn(move || {
                for index in first..end {
                    let batch = sampler.train_batch(index);
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        break;
                    }
                }
            })
            .expect("spawning the prefetch thread");
        Prefetcher {
            rx: Some(rx),
            handle: Some(handle),
            next: first,
        }
    }
}

/// Receives prefetched training batches in order.
#[derive(Debug)]
pub struct Prefetcher {
    rx: Option<Receiver<Result<Batch>>>,
    handle: Option<JoinHandle<()>>,
    next: u64,
}

impl Prefetcher {
    /// The next batch (index [`Prefetcher::next_index`] before the call).
    /// `None` when the range is exhausted.
    pub fn next_batch(&mut self) -> Option<Result<Batch>> {
        let item = self.rx.as_ref()?.recv().ok()?;
        self.next += 1;
        Some(item)
    }

    /// Index of the batch the next call returns.
    pub fn next_index(&self) -> u64 {
        self.next
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the receiver makes the producer's next send fail, so the
        // thread ends after at most one more batch.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler() -> BatchSampler {
        let generator =
            ActivationGenerator::new(32, 0.2f32, 0.0f32, 1.0f32).expect("valid generator");
        let vectors = (0..32 * 8)
            .map(|i| ((i * 7919) % 13) as f32 - 6.0)
            .collect();
        let dictionary =
            HostFeatureDictionary::new(vectors, vec![0.0; 8], 32, 8).expect("valid dictionary");
        BatchSampler::new(generator, dictionary, 7, 16)
    }

    #[test]
    fn batches_are_addressable_and_prefetch_preserves_order() {
        let s = sampler();
        let direct: Vec<_> = (0..5).map(|i| s.train_batch(i).unwrap().hidden).collect();
        assert!(direct[0].is_some());
        assert_ne!(direct[0], direct[1]);
        let mut p = s.prefetch(2, 5, 2);
        for want in &direct[2..] {
            assert_eq!(&p.next_batch().unwrap().unwrap().hidden, want);
        }
        assert!(p.next_batch().is_none());
        // Another stream gives other data.
        assert_ne!(s.sample(stream::EVAL, 0, 16).unwrap().hidden, direct[0]);
    }

    #[test]
    fn stream_keys_differ() {
        assert_ne!(stream_key(0, 0), stream_key(0, 1));
        assert_ne!(stream_key(0, 1), stream_key(1, 0));
    }

    #[test]
    fn device_path_batches_carry_the_same_features_and_no_hidden() {
        let host = sampler();
        let device = sampler().with_hidden_path(HiddenPath::Device);
        assert!(host.hidden_on_host() && !device.hidden_on_host());
        let (h, d) = (host.train_batch(3).unwrap(), device.train_batch(3).unwrap());
        assert!(d.hidden.is_none());
        assert_eq!(h.features, d.features);
        assert_eq!(
            host.sample_hidden(stream::TRAIN, 3, 16).unwrap(),
            h.hidden.unwrap()
        );
        assert!(sampler()
            .with_hidden_path(HiddenPath::Auto)
            .hidden_on_host());
    }
}
