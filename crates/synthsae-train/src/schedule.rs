//! Learning-rate schedules (sae-lens spec §8.5).
//!
//! A schedule maps a 0-based training step to the learning rate the optimizer
//! uses at that step. It has three phases: an optional linear warm-up, a main
//! phase (constant, cosine annealing, or cosine annealing with warm restarts)
//! and an optional linear decay to zero. The value is a pure function of the
//! step, so resuming a run needs only the step counter.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The main-phase shape, sae-lens `lr_scheduler_name` (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScheduleKind {
    /// `"constant"`: the base learning rate.
    Constant,
    /// `"cosineannealing"`: one half cosine from `lr` to `lr_end`.
    CosineAnnealing,
    /// `"cosineannealingwarmrestarts"`: `n_restart_cycles` half cosines.
    CosineAnnealingWarmRestarts,
}

impl ScheduleKind {
    /// Parses sae-lens's scheduler name (case-insensitive).
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "constant" => Ok(Self::Constant),
            "cosineannealing" => Ok(Self::CosineAnnealing),
            "cosineannealingwarmrestarts" => Ok(Self::CosineAnnealingWarmRestarts),
            _ => Err(TrainError::config(
                "lr_scheduler_name",
                format!(
                    "unsupported scheduler `{name}`; expected constant, cosineannealing or \
                     cosineannealingwarmrestarts"
                ),
            )),
        }
    }
}

/// A complete learning-rate schedule over `total_steps` steps.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    kind: ScheduleKind,
    lr: f64,
    lr_end: f64,
    total_steps: u64,
    warm_up_steps: u64,
    decay_steps: u64,
    restart_cycles: u64,
}

impl LrSchedule {
    /// Builds and validates a schedule.
    ///
    /// * `lr`: base learning rate; `lr_end`: end of the cosine phase and start
    ///   of the decay phase (for `constant`, the decay starts from `lr`);
    /// * `warm_up_steps`, `decay_steps`: lengths of the linear phases;
    /// * `restart_cycles`: cycles for warm restarts (≥ 1).
    pub fn new(
        kind: ScheduleKind,
        lr: f64,
        lr_end: f64,
        total_steps: u64,
        warm_up_steps: u64,
        decay_steps: u64,
        restart_cycles: u64,
    ) -> Result<Self> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(TrainError::config(
                "lr",
                format!("must be finite and ≥ 0, got {lr}"),
            ));
        }
        if !(lr_end.is_finite() && lr_end >= 0.0) {
            return Err(TrainError::config(
                "lr_end",
                format!("must be finite and ≥ 0, got {lr_end}"),
            ));
        }
        if restart_cycles == 0 {
            return Err(TrainError::config("n_restart_cycles", "must be ≥ 1"));
        }
        if warm_up_steps.saturating_add(decay_steps) > total_steps {
            return Err(TrainError::config(
                "lr_warm_up_steps",
                format!(
                    "warm-up ({warm_up_steps}) plus decay ({decay_steps}) steps exceed the \
                     {total_steps} training steps"
                ),
            ));
        }
        let schedule = Self {
            kind,
            lr,
            lr_end,
            total_steps,
            warm_up_steps,
            decay_steps,
            restart_cycles,
        };
        if decay_steps > 0 && schedule.decay_start_lr() == 0.0 {
            return Err(TrainError::config(
                "lr_decay_steps",
                "cannot decay from a learning rate of 0 (set lr_end > 0 or lr_decay_steps = 0)",
            ));
        }
        Ok(schedule)
    }

    /// The rate the decay phase starts from.
    fn decay_start_lr(&self) -> f64 {
        match self.kind {
            ScheduleKind::Constant => self.lr,
            _ => self.lr_end,
        }
    }

    /// Learning rate used at 0-based step `step`.
    pub fn lr_at(&self, step: u64) -> f64 {
        let w = self.warm_up_steps;
        let decay_start = self.total_steps - self.decay_steps;
        if step < w {
            return self.lr * (step + 1) as f64 / w as f64;
        }
        if self.decay_steps > 0 && step >= decay_start {
            let k = (step - decay_start) as f64;
            return self.decay_start_lr() * (1.0 - k / self.decay_steps as f64);
        }
        let k = step - w;
        let main = decay_start.saturating_sub(w).max(1);
        let cosine = |k: u64, period: u64| {
            let period = period.max(1);
            let phase = std::f64::consts::PI * k as f64 / period as f64;
            self.lr_end + (self.lr - self.lr_end) * (1.0 + phase.cos()) / 2.0
        };
        match self.kind {
            ScheduleKind::Constant => self.lr,
            ScheduleKind::CosineAnnealing => cosine(k, main),
            ScheduleKind::CosineAnnealingWarmRestarts => {
                let period = (main / self.restart_cycles).max(1);
                cosine(k % period, period)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &LrSchedule) -> Vec<f64> {
        (0..s.total_steps).map(|t| s.lr_at(t)).collect()
    }

    #[test]
    fn constant_with_warm_up_and_decay_matches_spec_example() {
        let s = LrSchedule::new(ScheduleKind::Constant, 1.0, 0.1, 12, 4, 4, 1).unwrap();
        let expected = [
            0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25,
        ];
        for (got, want) in values(&s).iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn cosine_with_warm_up_and_decay_matches_spec_example() {
        let s = LrSchedule::new(ScheduleKind::CosineAnnealing, 1.0, 0.1, 12, 2, 3, 1).unwrap();
        let expected = [
            0.5, 1.0, 1.0, 0.95544, 0.83057, 0.65013, 0.44987, 0.26943, 0.14456, 0.1, 0.06667,
            0.03333,
        ];
        for (got, want) in values(&s).iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn warm_restarts_repeat_the_cosine() {
        let s = LrSchedule::new(
            ScheduleKind::CosineAnnealingWarmRestarts,
            1.0,
            0.0,
            8,
            0,
            0,
            2,
        )
        .unwrap();
        let v = values(&s);
        assert_eq!(v[0], 1.0);
        assert_eq!(v[4], 1.0);
        assert!((v[2] - 0.5).abs() < 1e-12);
        assert_eq!(v[..4], v[4..]);
    }

    #[test]
    fn invalid_schedules_are_rejected_with_the_field() {
        let err = ScheduleKind::parse("linear").unwrap_err().to_string();
        assert!(err.contains("lr_scheduler_name"), "{err}");
        assert_eq!(
            ScheduleKind::parse("CosineAnnealing").unwrap(),
            ScheduleKind::CosineAnnealing
        );
        let err = LrSchedule::new(ScheduleKind::CosineAnnealing, 1.0, 0.0, 10, 0, 2, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lr_decay_steps"), "{err}");
        let err = LrSchedule::new(ScheduleKind::Constant, 1.0, 0.0, 10, 8, 4, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lr_warm_up_steps"), "{err}");
    }
}
