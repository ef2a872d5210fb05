//! Learning-rate schedules of PULSE (docs/design.md, "Schedules"): step j of `steps` uses
//! `lr * factor(j)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    Fixed,
    /// Linear warm-up to the full rate at half-way, then linear decay (one cycle).
    Linear1Cycle,
    /// One cycle over the first 90% of the steps, then a linear drop to 1/1000.
    #[default]
    Linear1CycleDrop,
}

impl Schedule {
    pub fn factor(self, j: usize, steps: usize) -> f64 {
        let (j, n) = (j as f64, steps as f64);
        let cycle = |x: f64| (9.0 * (1.0 - (x - 0.5).abs() * 2.0) + 1.0) / 10.0;
        match self {
            Schedule::Fixed => 1.0,
            Schedule::Linear1Cycle => cycle(j / n),
            Schedule::Linear1CycleDrop if j < 0.9 * n => cycle(j / (0.9 * n)),
            Schedule::Linear1CycleDrop => 0.1 + (j - 0.9 * n) / (0.1 * n) * (0.001 - 0.1),
        }
    }
}

crate::named_variants!(Schedule, "schedule", {
    Fixed => "fixed",
    Linear1Cycle => "linear1cycle",
    Linear1CycleDrop => "linear1cycledrop",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear1cycledrop_peaks_mid_cycle_and_drops() {
        let s = Schedule::Linear1CycleDrop;
        assert!((s.factor(0, 100) - 0.1).abs() < 1e-12);
        assert!((s.factor(45, 100) - 1.0).abs() < 1e-12);
        assert!((s.factor(90, 100) - 0.1).abs() < 1e-12);
        assert!((s.factor(99, 100) - (0.1 + 0.9 * (0.001 - 0.1))).abs() < 1e-12);
        assert!((Schedule::Linear1Cycle.factor(50, 100) - 1.0).abs() < 1e-12);
        assert_eq!(Schedule::Fixed.factor(7, 10), 1.0);
    }
}
