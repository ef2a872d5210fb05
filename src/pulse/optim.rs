//! The spherical optimizer of PULSE (docs/design.md, "The optimizer"): a plain
//! first-order step (Adam by default), then every latent row and noise map is projected back to
//! the sphere of its initial norm (PULSE section 3.2; the code keeps each vector's own radius).
//!
//! The update rules are written out rather than taken from libtorch's C++ optimizers because
//! Adamax has no C++ counterpart and each rule is a few lines; they follow PyTorch's
//! single-tensor implementations (`torch/optim/adam.py`, `adamax.py`, `sgd.py`).
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptimizerKind {
    #[default]
    Adam,
    /// Plain SGD.
    Sgd,
    /// SGD with momentum 0.9.
    Sgdm,
    Adamax,
}

crate::named_variants!(OptimizerKind, "optimizer", {
    Adam => "adam",
    Sgd => "sgd",
    Sgdm => "sgdm",
    Adamax => "adamax",
});

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;
const MOMENTUM: f64 = 0.9;

/// Optimizes `params` (leaf tensors that require grad) and keeps each on its sphere.
///
/// Its state (the moments, or the momentum buffer in `first`) is allocated up front as zeros
/// and only ever updated in place, and the per-step scalars (learning rate, bias corrections)
/// can come as device tensors ([`SphericalOptimizer::update`]), so one step can be captured in
/// a CUDA graph and replayed. Zeros give the first step exactly what PyTorch's lazily created
/// state gives (`0 * beta + g = g`).
#[derive(Debug)]
pub struct SphericalOptimizer {
    kind: OptimizerKind,
    params: Vec<Tensor>,
    radii: Vec<Tensor>,
    /// First moment (Adam, Adamax) or momentum buffer (SGDM).
    first: Vec<Tensor>,
    /// Second moment (Adam) or infinity norm (Adamax).
    second: Vec<Tensor>,
    steps_taken: i32,
}

/// `sqrt(sum x^2 + 1e-9)` over every dim after the first two: per latent row for [B,L,512],
/// per map for noise [B,1,H,W].
fn norms(x: &Tensor) -> Tensor {
    let dims: Vec<i64> = (2..x.dim() as i64).collect();
    (x.square().sum_dim_intlist(dims.as_slice(), true, x.kind()) + 1e-9).sqrt()
}

impl SphericalOptimizer {
    pub fn new(kind: OptimizerKind, params: Vec<Tensor>) -> Self {
        let (radii, first, second) = tch::no_grad(|| {
            let zeros = |p: &Tensor| p.detach().zeros_like();
            (
                params.iter().map(norms).collect(),
                params.iter().map(zeros).collect(),
                params.iter().map(zeros).collect(),
            )
        });
        Self { kind, params, radii, first, second, steps_taken: 0 }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// The two per-step scalars of update number `t` (from 1) at learning rate `lr`: the factor
    /// the update direction is multiplied by (`-lr`, with Adam's and Adamax's first-moment bias
    /// correction `1 / (1 - beta1^t)`), and the divisor of Adam's `sqrt(v)` (its second-moment
    /// correction `sqrt(1 - beta2^t)`; 1 for the others).
    pub fn scalars(kind: OptimizerKind, lr: f64, t: i32) -> (f64, f64) {
        match kind {
            OptimizerKind::Sgd | OptimizerKind::Sgdm => (-lr, 1.0),
            OptimizerKind::Adam => (-lr / (1.0 - BETA1.powi(t)), (1.0 - BETA2.powi(t)).sqrt()),
            OptimizerKind::Adamax => (-lr / (1.0 - BETA1.powi(t)), 1.0),
        }
    }

    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    /// The optimized tensors.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// One update at learning rate `lr` (the next update number), then the projection.
    pub fn step(&mut self, lr: f64) {
        self.steps_taken += 1;
        let (factor, divisor) = Self::scalars(self.kind, lr, self.steps_taken);
        let device = self.params.first().map(|p| p.device()).unwrap_or(tch::Device::Cpu);
        let scalar = |v: f64| Tensor::full([1], v, (tch::Kind::Float, device));
        self.update(&scalar(factor), &scalar(divisor));
    }

    /// One update with the per-step scalars of [`SphericalOptimizer::scalars`] given as
    /// one-element float32 tensors on the parameters' device, then the projection onto the
    /// sphere. Every write is in place.
    pub fn update(&mut self, factor: &Tensor, divisor: &Tensor) {
        tch::no_grad(|| {
            let state = self.params.iter_mut().zip(&self.radii).zip(&mut self.first);
            for (((p, radius), first), second) in state.zip(&mut self.second) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                match self.kind {
                    OptimizerKind::Sgd => {
                        let _ = p.g_add_(&(&grad * factor));
                    }
                    OptimizerKind::Sgdm => {
                        let _ = first.g_mul_scalar_(MOMENTUM).g_add_(&grad);
                        let _ = p.g_add_(&(&*first * factor));
                    }
                    OptimizerKind::Adam => {
                        let _ = first.g_mul_scalar_(BETA1).g_add_(&(&grad * (1.0 - BETA1)));
                        let _ =
                            second.g_mul_scalar_(BETA2).g_add_(&(grad.square() * (1.0 - BETA2)));
                        let denom = second.sqrt() / divisor + EPS;
                        let _ = p.g_add_(&(&*first / denom * factor));
                    }
                    OptimizerKind::Adamax => {
                        let _ = first.g_mul_scalar_(BETA1).g_add_(&(&grad * (1.0 - BETA1)));
                        let new_u = (&*second * BETA2).maximum(&(grad.abs() + EPS));
                        second.copy_(&new_u);
                        let _ = p.g_add_(&(&*first / &*second * factor));
                    }
                }
                // Project back onto the sphere of the initial radius.
                let scale = radius / norms(p);
                let _ = p.g_mul_(&scale);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_row_on_its_initial_sphere() {
        for kind in
            [OptimizerKind::Adam, OptimizerKind::Sgd, OptimizerKind::Sgdm, OptimizerKind::Adamax]
        {
            let _seed = crate::rng::seed(1);
            let p = Tensor::randn([2, 3, 8], tch::kind::FLOAT_CPU).set_requires_grad(true);
            let before = norms(&p);
            let mut opt = SphericalOptimizer::new(kind, vec![p.shallow_clone()]);
            for _ in 0..3 {
                opt.zero_grad();
                (&p * Tensor::randn([2, 3, 8], tch::kind::FLOAT_CPU))
                    .sum(tch::Kind::Float)
                    .backward();
                opt.step(0.4);
            }
            let diff = (norms(&p) - &before).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{kind:?} left the sphere by {diff}");
        }
    }

    #[test]
    fn adam_first_step_moves_by_lr_against_the_gradient_sign() {
        // Adam's first step is lr * g / (|g| + eps): the sign of the gradient, times lr.
        let p = Tensor::from_slice(&[0.0f32, 0.0]).view([1, 1, 2]).set_requires_grad(true);
        let mut opt = SphericalOptimizer::new(OptimizerKind::Adam, vec![p.shallow_clone()]);
        opt.radii = vec![Tensor::from_slice(&[1.0f32]).view([1, 1, 1])];
        (&p * Tensor::from_slice(&[3.0f32, -0.5]).view([1, 1, 2])).sum(tch::Kind::Float).backward();
        opt.step(0.1);
        let v: Vec<f32> = Vec::try_from(p.view([-1])).unwrap();
        // After the step p = (-0.1, 0.1), projected to radius 1.
        let r = (0.02f32).sqrt();
        assert!((v[0] + 0.1 / r).abs() < 1e-4 && (v[1] - 0.1 / r).abs() < 1e-4, "{v:?}");
    }
}
