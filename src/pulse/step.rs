//! One PULSE step as a function of state allocated once per search (docs/design.md, "One step"
//! and "CUDA graphs"): transform the latent into W+, synthesize, downscale, score, keep each
//! item's best iterate, record the history row, backpropagate, update, project.
//!
//! The step takes no host-side step number: which step it is lives on the device (`State::step`,
//! incremented by the step itself), and so do the per-step learning rate and bias corrections
//! (tables indexed by it). Every tensor it writes is written in place. So the same function runs
//! the plain loop and is what a CUDA graph captures once and replays for the remaining steps,
//! and the CPU runs exactly the code the graph records. Nothing in it waits for the GPU.
use super::loss::{self, LossTarget};
use super::optim::SphericalOptimizer;
use super::search::{to_w_plus, NoiseMode, SearchConfig, Start};
use super::{Downscaler, GaussianFit};
use crate::stylegan::SynthesisNetwork;
use tch::{nn, Device, Kind, Tensor};

/// What a step reads and does not change.
pub(super) struct Inputs<'a> {
    pub synthesis: &'a dyn SynthesisNetwork,
    pub fit: &'a GaussianFit,
    pub config: &'a SearchConfig,
    pub target: &'a LossTarget,
    pub down: &'a Downscaler,
    /// Rows of W+.
    pub layers: usize,
}

/// Everything a step writes.
pub(super) struct State {
    /// The optimized tensors live in their own VarStore (the network's weights stay frozen in
    /// theirs).
    _vs: nn::VarStore,
    /// Sphere-side latent [B,L,512] (or [B,1,512] tiled), a leaf that requires grad.
    pub latent: Tensor,
    /// One map per noise input [B,1,S,S]; the trainable ones are leaves that require grad.
    pub noise: Vec<Tensor>,
    opt: SphericalOptimizer,
    /// Each item's lowest TOTAL so far [B] (+inf before the first step), the step it came at
    /// [B] (int64), and its image [B,3,R,R], latent and noise.
    pub best_total: Tensor,
    pub best_step: Tensor,
    pub best_image: Tensor,
    pub best_latent: Tensor,
    pub best_noise: Vec<Tensor>,
    /// `[steps, 1 + terms, B]`: TOTAL and each term before each step's update.
    pub history: Tensor,
    /// The step about to run, [1] int64.
    pub step: Tensor,
    /// `0..steps` as [steps] int64 (to select the history row of `step`).
    rows: Tensor,
    /// Per step, the optimizer's factor and divisor ([`SphericalOptimizer::scalars`]), [steps].
    factors: Tensor,
    divisors: Tensor,
}

impl State {
    /// Allocates the state of a search of `config.steps` steps from `start` on `device`; `lrs`
    /// is the learning rate of each step, `bad_noise` the noise maps kept at zero.
    pub fn new(
        config: &SearchConfig,
        bad_noise: &[usize],
        start: &Start,
        lrs: &[f64],
        resolution: i64,
        device: Device,
    ) -> anyhow::Result<Self> {
        let batch = start.latent.size()[0];
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let latent = root.var_copy("latent", &start.latent.to_device(device));
        let mut params = vec![latent.shallow_clone()];
        let noise: Vec<Tensor> = start
            .noise
            .iter()
            .enumerate()
            .map(|(l, n)| {
                let n = n.to_device(device);
                if config.noise == NoiseMode::Zero || bad_noise.contains(&l) {
                    n.zeros_like()
                } else if config.noise == NoiseMode::Trainable && l < config.trainable_noise {
                    let v = (&root / "noise").var_copy(&l.to_string(), &n);
                    params.push(v.shallow_clone());
                    v
                } else {
                    n
                }
            })
            .collect();
        let opt = SphericalOptimizer::new(config.optimizer, params);
        let (factors, divisors): (Vec<f32>, Vec<f32>) = lrs
            .iter()
            .enumerate()
            .map(|(j, &lr)| {
                let (f, d) = SphericalOptimizer::scalars(config.optimizer, lr, j as i32 + 1);
                (f as f32, d as f32)
            })
            .unzip();
        let steps = lrs.len() as i64;
        let terms = config.loss.terms.len() as i64;
        Ok(Self {
            best_total: Tensor::full([batch], f64::INFINITY, (Kind::Float, device)),
            best_step: Tensor::zeros([batch], (Kind::Int64, device)),
            best_image: Tensor::zeros([batch, 3, resolution, resolution], (Kind::Float, device)),
            best_latent: latent.detach().copy(),
            best_noise: noise.iter().map(|n| n.detach().copy()).collect(),
            history: Tensor::zeros([steps, 1 + terms, batch], (Kind::Float, device)),
            step: Tensor::zeros([1], (Kind::Int64, device)),
            rows: Tensor::arange(steps, (Kind::Int64, device)),
            factors: Tensor::from_slice(&factors).to_device(device),
            divisors: Tensor::from_slice(&divisors).to_device(device),
            _vs: vs,
            latent,
            noise,
            opt,
        })
    }

    /// Runs one step; see the module's documentation. Only launches work (no value is read back).
    pub fn step(&mut self, inp: &Inputs) -> anyhow::Result<()> {
        let batch = self.best_total.size()[0];
        self.opt.zero_grad();
        let w_plus = to_w_plus(&self.latent, inp.fit, inp.layers)?;
        let gen = (inp.synthesis.forward(&w_plus, &self.noise)? + 1.0) / 2.0;
        let (total, terms) = loss::evaluate(
            &inp.config.loss,
            &inp.down.forward(&gen)?,
            inp.target,
            &w_plus,
            inp.config.eps,
        );

        // Keep each item's best iterate and record the history row, in place.
        tch::no_grad(|| {
            let better = total.detach().lt_tensor(&self.best_total);
            let _ = total.detach().where_self_out(&self.best_total, &better, &self.best_total);
            let _ = self.step.expand([batch], false).where_self_out(
                &self.best_step,
                &better,
                &self.best_step,
            );
            let b4 = better.view([batch, 1, 1, 1]);
            let _ = gen.detach().where_self_out(&self.best_image, &b4, &self.best_image);
            let b3 = better.view([batch, 1, 1]);
            let _ = self.latent.detach().where_self_out(&self.best_latent, &b3, &self.best_latent);
            for (best, n) in self.best_noise.iter().zip(&self.noise) {
                let _ = n.detach().where_self_out(best, &b4, best);
            }
            let mut row = vec![total.detach()];
            row.extend(terms.iter().map(|t| t.detach()));
            let this_row = self.rows.eq_tensor(&self.step).view([-1, 1, 1]);
            let _ = Tensor::stack(&row, 0).unsqueeze(0).where_self_out(
                &self.history,
                &this_row,
                &self.history,
            );
        });

        total.sum(Kind::Float).backward();
        let factor = self.factors.index_select(0, &self.step);
        let divisor = self.divisors.index_select(0, &self.step);
        self.opt.update(&factor, &divisor);
        let _ = self.step.g_add_scalar_(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pulse::OptimizerKind;
    use crate::stylegan::stylegan1::{Synthesis, SynthesisConfig};

    /// The device-side formulation (step counter, per-step tables, one-hot history row, best
    /// iterate updated in place) computes what a loop driven by the host's step number computes,
    /// bit for bit, for every optimizer: what a replayed graph does is what the loop did.
    #[test]
    fn device_side_step_equals_the_host_driven_loop() {
        let _seed = crate::rng::seed(0);
        let net = SynthesisConfig::with_fmap_max(32, 16);
        let (synthesis, _vs) = Synthesis::random(&net, Device::Cpu, 1);
        let fit = GaussianFit::random(Device::Cpu);
        let target =
            LossTarget { image: Tensor::rand([2, 3, 8, 8], tch::kind::FLOAT_CPU), weight: None };
        let down = Downscaler::new(4, Device::Cpu).unwrap();
        let layout = net.layout();
        let layers = layout.w_rows;
        for kind in
            [OptimizerKind::Adam, OptimizerKind::Sgd, OptimizerKind::Sgdm, OptimizerKind::Adamax]
        {
            let config = SearchConfig {
                steps: 5,
                optimizer: kind,
                bad_noise_layers: Some(vec![]),
                ..SearchConfig::default()
            };
            let start =
                Start::batch(&[Start::random(1, &layout, false), Start::random(2, &layout, false)]);
            let lrs: Vec<f64> = (0..config.steps)
                .map(|j| config.lr * config.schedule.factor(j, config.steps))
                .collect();
            let inputs = Inputs {
                synthesis: &synthesis,
                fit: &fit,
                config: &config,
                target: &target,
                down: &down,
                layers,
            };
            let mut state = State::new(&config, &[], &start, &lrs, 32, Device::Cpu).unwrap();
            for _ in 0..config.steps {
                state.step(&inputs).unwrap();
            }

            // The host-driven loop: step number, learning rate and history rows on the host.
            let reference = State::new(&config, &[], &start, &lrs, 32, Device::Cpu).unwrap();
            let mut opt = SphericalOptimizer::new(
                kind,
                reference.opt.params().iter().map(|p| p.shallow_clone()).collect(),
            );
            let (mut best_total, mut best_step) =
                (reference.best_total.copy(), reference.best_step.copy());
            let mut best_latent = reference.best_latent.copy();
            let mut rows = vec![];
            for (step, &lr) in lrs.iter().enumerate() {
                opt.zero_grad();
                let w_plus = to_w_plus(&reference.latent, &fit, layers).unwrap();
                let gen = (synthesis.forward(&w_plus, &reference.noise).unwrap() + 1.0) / 2.0;
                let (total, terms) = loss::evaluate(
                    &config.loss,
                    &down.forward(&gen).unwrap(),
                    &target,
                    &w_plus,
                    config.eps,
                );
                tch::no_grad(|| {
                    let better = total.lt_tensor(&best_total);
                    best_total = total.where_self(&better, &best_total);
                    best_step = Tensor::full([2], step as i64, (Kind::Int64, Device::Cpu))
                        .where_self(&better, &best_step);
                    best_latent =
                        reference.latent.detach().where_self(&better.view([2, 1, 1]), &best_latent);
                    let mut row = vec![total.detach()];
                    row.extend(terms.iter().map(|t| t.detach()));
                    rows.push(Tensor::stack(&row, 0));
                });
                total.sum(Kind::Float).backward();
                opt.step(lr);
            }
            assert!(state.history.equal(&Tensor::stack(&rows, 0)), "{kind:?}: history");
            assert!(state.best_total.equal(&best_total), "{kind:?}: best total");
            assert!(state.best_step.equal(&best_step), "{kind:?}: best step");
            assert!(state.best_latent.equal(&best_latent), "{kind:?}: best latent");
            assert!(state.latent.equal(&reference.latent), "{kind:?}: final latent");
            assert_eq!(Vec::<i64>::try_from(&state.step).unwrap(), [config.steps as i64]);
        }
    }
}
