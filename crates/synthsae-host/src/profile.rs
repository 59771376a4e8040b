//! An opt-in wall-clock breakdown of a training run by phase (`synthsae
//! train --timings`, `synthsae synthsaebench --timings`, `scripts/gpu-check.sh`).
//!
//! Off by default: a span then costs one relaxed atomic load. Once
//! [`enable`]d, every [`span`] adds its wall time and one count to its
//! phase's process-wide totals. GPU backends run asynchronously, so a device
//! phase's cost shows up wherever the host next waits; [`synced_span`]
//! therefore waits for the device at its start and at its end (only while
//! profiling is on), which charges each device phase its own work at the
//! price of a few extra waits per step. Nested spans count in both phases
//! (a top-k span inside the step span adds to both).
//!
//! Hand-written rather than a tracing subscriber: eight fixed counters read
//! once at the end of a run need nothing more than atomics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use burn::prelude::Backend;

/// A phase of a training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Drawing batches on the host (the sampler and, on the host path, the
    /// gather-sum); on the prefetch thread, so it overlaps training.
    Sampling,
    /// The trainer waiting for its next batch (sampling that did not overlap).
    WaitData,
    /// Making the SAE input on the device: the `[B, D]` upload, or the CSR
    /// upload and the device gather-sum.
    Upload,
    /// A training step (forward, backward, Adam), top-k included.
    Step,
    /// TopK / BatchTopK selection on the host, with its read-back and
    /// uploads of the cut-offs or kept entries.
    TopK,
    /// The step's one read-back of its scalars.
    ReadBack,
    /// Periodic evaluations (during training).
    Eval,
    /// The final evaluation (after training).
    FinalEval,
}

impl Phase {
    /// Every phase, in report order.
    pub const ALL: [Phase; 8] = [
        Phase::Sampling,
        Phase::WaitData,
        Phase::Upload,
        Phase::Step,
        Phase::TopK,
        Phase::ReadBack,
        Phase::Eval,
        Phase::FinalEval,
    ];

    /// The phase's key in reports (`sampling`, `wait_data`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Phase::Sampling => "sampling",
            Phase::WaitData => "wait_data",
            Phase::Upload => "upload",
            Phase::Step => "step",
            Phase::TopK => "topk",
            Phase::ReadBack => "read_back",
            Phase::Eval => "eval",
            Phase::FinalEval => "final_eval",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static COUNTS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Starts collecting (totals are not reset; see [`reset`]).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether spans are being collected.
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Zeroes every total.
pub fn reset() {
    for (n, c) in NANOS.iter().zip(&COUNTS) {
        n.store(0, Ordering::Relaxed);
        c.store(0, Ordering::Relaxed);
    }
}

/// One phase's totals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhaseTotal {
    /// The phase.
    pub phase: Phase,
    /// Wall seconds summed over its spans.
    pub seconds: f64,
    /// Number of spans.
    pub count: u64,
}

/// The totals of every phase, in [`Phase::ALL`] order.
pub fn totals() -> Vec<PhaseTotal> {
    Phase::ALL
        .iter()
        .map(|&phase| PhaseTotal {
            phase,
            seconds: NANOS[phase.index()].load(Ordering::Relaxed) as f64 * 1e-9,
            count: COUNTS[phase.index()].load(Ordering::Relaxed),
        })
        .collect()
}

fn add(phase: Phase, start: Instant) {
    let ns = start.elapsed().as_nanos().min(u64::MAX as u128) as u64;
    NANOS[phase.index()].fetch_add(ns, Ordering::Relaxed);
    COUNTS[phase.index()].fetch_add(1, Ordering::Relaxed);
}

/// A running span of host work; adds to its phase when dropped.
#[derive(Debug)]
#[must_use = "a span measures until it is dropped"]
pub struct Span {
    phase: Phase,
    start: Option<Instant>,
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(start) = self.start {
            add(self.phase, start);
        }
    }
}

/// Starts a span of `phase` (a no-op unless profiling is on).
pub fn span(phase: Phase) -> Span {
    Span {
        phase,
        start: is_enabled().then(Instant::now),
    }
}

/// A running span of device work: waits for `device` at its start and end
/// while profiling is on.
#[must_use = "a span measures until it is dropped"]
pub struct SyncedSpan<B: Backend> {
    span: Span,
    device: Option<B::Device>,
}

impl<B: Backend> std::fmt::Debug for SyncedSpan<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncedSpan")
            .field("span", &self.span)
            .finish()
    }
}

impl<B: Backend> Drop for SyncedSpan<B> {
    fn drop(&mut self) {
        if let Some(device) = &self.device {
            // A failed wait surfaces at the next read-back, which reports it.
            let _ = B::sync(device);
        }
    }
}

/// Starts a span of `phase` whose device work is waited for (a no-op
/// unless profiling is on).
pub fn synced_span<B: Backend>(phase: Phase, device: &B::Device) -> SyncedSpan<B> {
    let device = is_enabled().then(|| {
        let _ = B::sync(device);
        device.clone()
    });
    SyncedSpan {
        span: span(phase),
        device,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    // The totals are process-wide, so one test covers the whole life cycle.
    #[test]
    fn spans_count_only_while_enabled() {
        reset();
        drop(span(Phase::Upload));
        assert_eq!(totals()[Phase::Upload.index()].count, 0);
        enable();
        {
            let _s = span(Phase::Upload);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        drop(synced_span::<NdArray>(Phase::Step, &Default::default()));
        let t = totals();
        assert_eq!(t[Phase::Upload.index()].count, 1);
        assert!(t[Phase::Upload.index()].seconds >= 0.002);
        assert_eq!(t[Phase::Step.index()].count, 1);
        assert_eq!(t[Phase::TopK.index()].count, 0);
        let keys: Vec<_> = Phase::ALL.iter().map(|p| p.key()).collect();
        assert_eq!(
            keys,
            [
                "sampling",
                "wait_data",
                "upload",
                "step",
                "topk",
                "read_back",
                "eval",
                "final_eval"
            ]
        );
        reset();
        assert!(totals().iter().all(|t| t.count == 0 && t.seconds == 0.0));
    }
}
