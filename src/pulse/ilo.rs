//! ILO, Intermediate Layer Optimization (Daras, Dean, Jalal, Dimakis, ICML 2021; their code
//! giannisdaras/ilo, `LatentOptimizer.invert_`), as docs/design.md ("ILO") states it: PULSE's
//! start, then round by round the synthesis runs from a later block, whose input feature map is
//! optimized too, with the unmapped latent and the first noise maps.
//!
//! Three deliberate differences from ILO's code, each what the paper describes: the RGB skip of
//! the blocks before the round's first block is carried (ILO passes `skip=None`), GEOCROSS is
//! taken over latent rows `2k..` (ILO's `latent_z[2k:]` slices the batch axis: empty, NaN, no
//! gradient from round 1 on), and the result is the lowest-MSE iterate of every round, not of
//! the last one only. Pure-black target pixels are not masked (that is `--mask`'s job).
use super::loss::{self, LossTarget, Term};
use super::search::{to_w_plus, Progress, SearchConfig, SearchOutcome, Start, StepValues};
use super::{Downscaler, GaussianFit, Outcome};
use crate::stylegan::{BlockInput, SynthesisNetwork};
use crate::Invalid;
use anyhow::ensure;
use std::f64::consts::PI;
use tch::{Device, Kind, Tensor};

/// ILO's learning rate at fraction `t` = step/steps of a round: the StyleGAN2 projector's ramp
/// (rampup 0.05, cosine rampdown over the last 0.75), restarted every round; 0 at t = 0.
pub fn lr_ramp(t: f64) -> f64 {
    let down = 0.5 - 0.5 * (PI * (1.0 - t).min(0.75) / 0.75).cos();
    (t / 0.05).min(1.0) * down
}

/// ILO's noise rule: round k optimizes noise maps `0 .. min(5 + 2k, count) - 1`.
pub fn trainable_noise(round: usize, count: usize) -> usize {
    (5 + 2 * round).min(count)
}

/// The loss terms ILO accepts: its image term MSE, GEOCROSS on the latent rows, and LPIPS (ILO's
/// super-resolution example uses MSE + LPIPS).
const ILO_TERMS: [Term; 3] = [Term::Mse, Term::GeoCross, Term::Lpips];

/// Checks the ILO settings against the network; the message names the setting.
pub fn check(config: &SearchConfig, blocks: usize) -> Result<(), Invalid> {
    let steps = &config.ilo.steps;
    if steps.is_empty() || steps.contains(&0) {
        return Err(Invalid(format!(
            "--ilo-steps needs at least one round and at least one step per round, got {}",
            config.ilo.steps_string()
        )));
    }
    if steps.len() > blocks {
        return Err(Invalid(format!(
            "--ilo-steps asks for {} rounds, the model has {blocks} synthesis blocks (one round per block at most)",
            steps.len()
        )));
    }
    if !(config.lr.is_finite() && config.lr > 0.0) {
        return Err(Invalid(format!(
            "the learning rate must be a positive finite number, got {}",
            config.lr
        )));
    }
    if !(config.eps.is_finite() && config.eps > 0.0) {
        return Err(Invalid(format!("eps must be a positive finite number, got {}", config.eps)));
    }
    if let Some((_, t)) = config.loss.terms.iter().find(|(_, t)| !ILO_TERMS.contains(t)) {
        return Err(Invalid(format!(
            "the loss term {} does not work with --method ilo (ILO's terms: MSE, GEOCROSS and LPIPS, e.g. 1*MSE+0.01*GEOCROSS)",
            t.name()
        )));
    }
    if !config.loss.terms.iter().any(|(_, t)| *t == Term::Mse) {
        return Err(Invalid("--method ilo needs the MSE term in --loss".into()));
    }
    if let Some(r) = &config.ilo.radius {
        for (name, v) in [("latent", &r.latent), ("noise", &r.noise), ("feature", &r.feature)] {
            if v.is_empty() || v.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
                return Err(Invalid(format!(
                    "--ilo-radius {name} must be one or more positive numbers"
                )));
            }
        }
    }
    Ok(())
}

/// Adam with PyTorch's defaults (`torch/optim/adam.py`, single-tensor form: betas 0.9/0.999,
/// eps 1e-8, moments from zero), fresh every round, then ILO's projections: each latent row and
/// each noise map back to its start-of-run norm (PULSE's sphere), the feature map not at all.
struct RoundAdam {
    params: Vec<Tensor>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    t: i32,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

impl RoundAdam {
    fn new(params: Vec<Tensor>) -> Self {
        let zeros = |p: &Tensor| p.detach().zeros_like();
        let first = params.iter().map(zeros).collect();
        let second = params.iter().map(zeros).collect();
        Self { params, first, second, t: 0 }
    }

    fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// One Adam update at `lr` (a real step at lr 0: the moments advance).
    fn step(&mut self, lr: f64) {
        self.t += 1;
        let bc1 = 1.0 - BETA1.powi(self.t);
        let bc2_sqrt = (1.0 - BETA2.powi(self.t)).sqrt();
        tch::no_grad(|| {
            for ((p, m), v) in self.params.iter_mut().zip(&mut self.first).zip(&mut self.second) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.lerp_(&g, 1.0 - BETA1);
                let _ = v.g_mul_scalar_(BETA2).g_add_(&(&g * (1.0 - BETA2) * &g));
                let denom = v.sqrt() / bc2_sqrt + ADAM_EPS;
                let _ = p.g_add_(&(&*m * (-lr / bc1) / denom));
            }
        });
    }
}

/// `sqrt(sum x^2 + 1e-9)` over the dims after the first two (per latent row, per noise map).
fn norms(x: &Tensor) -> Tensor {
    let dims: Vec<i64> = (2..x.dim() as i64).collect();
    (x.square().sum_dim_intlist(dims.as_slice(), true, x.kind()) + 1e-9).sqrt()
}

/// Puts `x` back on the norms `radius` (PULSE's `div_(norm).mul_(radius)`), in place.
fn project_to_sphere(x: &mut Tensor, radius: &Tensor) {
    tch::no_grad(|| {
        let n = norms(x);
        let _ = x.g_div_(&n).g_mul_(radius);
    });
}

/// Euclidean projection of each batch item of `delta` onto the l1 ball of `radius` (Duchi et
/// al. 2008, the sort-based form ILO's `project_onto_l1_ball` uses).
fn project_onto_l1_ball(delta: &Tensor, radius: f64) -> Tensor {
    let b = delta.size()[0];
    let flat = delta.reshape([b, -1]);
    let abs = flat.abs();
    let inside = abs.sum_dim_intlist(1, true, abs.kind()).le(radius);
    let (sorted, _) = abs.sort(1, true);
    let n = sorted.size()[1];
    let cumsum = sorted.cumsum(1, abs.kind());
    let idx = Tensor::arange_start(1, n + 1, (abs.kind(), abs.device()));
    let cond = (&sorted * &idx).gt_tensor(&(&cumsum - radius));
    // rho: the last index where the condition holds.
    let rho =
        (cond.to_kind(Kind::Int64) * Tensor::arange(n, (Kind::Int64, abs.device()))).amax(1, true);
    let theta = (cumsum.gather(1, &rho, false) - radius) / (rho.to_kind(abs.kind()) + 1.0);
    let projected = flat.sign() * (abs - theta).clamp_min(0.0);
    flat.where_self(&inside, &projected).reshape(delta.size())
}

/// One batch item's best iterate so far (the lowest MSE).
struct Best {
    mse: f64,
    step: usize,
    image: Tensor,
    latent: Tensor,
    noise: Vec<Tensor>,
    input: Option<BlockInput>,
}

/// Runs ILO for a batch: `start` holds the unmapped latent z [B,rows,512] and noise, `target`
/// the low-resolution images. Called by [`super::search::search`] for [`super::Method::Ilo`];
/// the outcomes carry the best iterate's block input (`SearchOutcome::block_input`).
pub fn search(
    synthesis: &dyn SynthesisNetwork,
    fit: &GaussianFit,
    config: &SearchConfig,
    target: &LossTarget,
    start: Start,
    device: Device,
    on_step: &mut dyn FnMut(Progress) -> bool,
) -> anyhow::Result<Outcome<Vec<SearchOutcome>>> {
    let layout = synthesis.layout();
    let (rows, resolution, count) = (layout.w_rows, layout.resolution, layout.noise_maps());
    check(config, synthesis.blocks())?;
    let size = start.latent.size();
    if size.len() != 3 || size[1] != rows as i64 || size[2] != crate::stylegan::LATENT_DIM {
        return Err(Invalid(format!(
            "ILO optimizes one latent row per W+ row ({rows}); the start latent has shape {size:?} (tiled latents do not work with --method ilo)"
        ))
        .into());
    }
    ensure!(
        start.noise.len() == count,
        "start has {} noise maps, the network has {count}",
        start.noise.len()
    );
    let batch = size[0];
    let down = Downscaler::for_target(resolution, target.image.size()[3], device)?;
    let mse_col = config.loss.terms.iter().position(|(_, t)| *t == Term::Mse).expect("checked");
    let total_steps: usize = config.ilo.steps.iter().sum();

    let mut z = start.latent.to_device(device).detach().copy().set_requires_grad(true);
    let mut noise: Vec<Tensor> =
        start.noise.iter().map(|n| n.to_device(device).detach().copy()).collect();
    let (z_radius, noise_radius): (Tensor, Vec<Tensor>) =
        tch::no_grad(|| (norms(&z), noise.iter().map(norms).collect()));

    let mut history: Vec<(usize, usize, f64, Tensor)> = vec![]; // (round, step, lr, [1+terms, B])
    let mut best: Vec<Option<Best>> = (0..batch).map(|_| None).collect();
    let mut frames = super::search::Frames::default();
    let mut input: Option<BlockInput> = None;
    let mut global = 0usize;
    let mut reached_eps = false;
    'rounds: for (k, &steps) in config.ilo.steps.iter().enumerate() {
        // The input of block k from round k-1's final parameters (after its last update and
        // projection), carrying the skip, not taken from its last forward pass.
        let features = if k >= 1 {
            let w = tch::no_grad(|| to_w_plus(&z, fit, rows))?;
            let entering = tch::no_grad(|| synthesis.block_input(&w, &noise, input.as_ref(), k))?;
            let features = entering.features.detach().copy().set_requires_grad(true);
            input = Some(BlockInput {
                block: k,
                features: features.shallow_clone(),
                skip: entering.skip,
            });
            Some(features)
        } else {
            None
        };
        let trainable = trainable_noise(k, count);
        for (i, n) in noise.iter_mut().enumerate() {
            *n = n.detach().set_requires_grad(i < trainable);
        }
        let mut params = vec![z.shallow_clone()];
        params.extend(noise[..trainable].iter().map(|n| n.shallow_clone()));
        params.extend(features.iter().map(|f| f.shallow_clone()));
        let round_start: Vec<Tensor> = params.iter().map(|p| p.detach().copy()).collect();
        let mut adam = RoundAdam::new(params);
        for i in 0..steps {
            let lr = config.lr * lr_ramp(i as f64 / steps as f64);
            adam.zero_grad();
            let w = to_w_plus(&z, fit, rows)?;
            let img = match &input {
                None => synthesis.forward(&w, &noise)?,
                Some(from) => synthesis.forward_from(&w, &noise, from)?,
            };
            let gen = (img + 1.0) / 2.0;
            let geo_rows = z.narrow(1, 2 * k as i64, (rows - 2 * k) as i64);
            let (total, terms) =
                loss::evaluate(&config.loss, &down.forward(&gen)?, target, &geo_rows, config.eps);
            let mut row = vec![total.detach()];
            row.extend(terms.iter().map(|t| t.detach()));
            let row = Tensor::stack(&row, 0);
            let mse: Vec<f64> = Vec::try_from(row.get(1 + mse_col as i64).to_kind(Kind::Double))?;
            tch::no_grad(|| {
                for (b, slot) in best.iter_mut().enumerate() {
                    if slot.as_ref().is_some_and(|s| s.mse <= mse[b]) || mse[b].is_nan() {
                        continue;
                    }
                    let b = b as i64;
                    *slot = Some(Best {
                        mse: mse[b as usize],
                        step: global,
                        image: gen.detach().narrow(0, b, 1).copy(),
                        latent: z.detach().narrow(0, b, 1).copy(),
                        noise: noise.iter().map(|n| item(n, b, batch)).collect(),
                        // A copy: Adam updates the feature map in place.
                        input: input.as_ref().map(|f| BlockInput {
                            block: f.block,
                            features: f.features.detach().narrow(0, b, 1).copy(),
                            skip: f.skip.as_ref().map(|s| s.detach().narrow(0, b, 1).copy()),
                        }),
                    });
                }
            });
            history.push((k, i, lr, row.shallow_clone()));
            if config.keep_intermediate {
                tch::no_grad(|| {
                    frames.offer(global, || {
                        let images: Vec<Tensor> = best
                            .iter()
                            .map(|s| s.as_ref().expect("recorded above").image.shallow_clone())
                            .collect();
                        super::search::preview(&Tensor::cat(&images, 0))
                    })
                });
            }
            // --eps: stop once every item's MSE/4 (its L2 on [0,1]) has reached eps.
            reached_eps = mse.iter().all(|m| m / 4.0 <= config.eps);
            if !reached_eps {
                total.sum(Kind::Float).backward();
                adam.step(lr);
                tch::no_grad(|| -> anyhow::Result<()> {
                    project_to_sphere(&mut z, &z_radius);
                    for (n, r) in noise.iter_mut().zip(&noise_radius) {
                        project_to_sphere(n, r);
                    }
                    if let Some(r) = &config.ilo.radius {
                        let radii = [&r.latent, &r.noise, &r.feature];
                        let count = adam.params.len();
                        for (j, p) in adam.params.iter_mut().enumerate() {
                            let which = if j == 0 {
                                0
                            } else if features.is_some() && j == count - 1 {
                                2
                            } else {
                                1
                            };
                            let list = radii[which];
                            let radius = list[k.min(list.len() - 1)];
                            let delta = project_onto_l1_ball(&(&*p - &round_start[j]), radius);
                            p.copy_(&(&round_start[j] + delta));
                        }
                    }
                    Ok(())
                })?;
            }
            let values = row.get(1 + mse_col as i64) / 4.0;
            if !on_step(Progress { step: global, steps: total_steps, values: &values }) {
                return Ok(Outcome::Interrupted);
            }
            global += 1;
            if reached_eps {
                break 'rounds;
            }
        }
    }
    let _ = reached_eps;

    // One host transfer for the whole history: [steps, 1 + terms, B].
    let table =
        Tensor::stack(&history.iter().map(|(_, _, _, r)| r.shallow_clone()).collect::<Vec<_>>(), 0)
            .to_device(Device::Cpu)
            .to_kind(Kind::Double);
    let fit_cpu = fit.to_device(Device::Cpu);
    let final_state = config.keep_final.then(|| {
        (
            z.detach().to_device(Device::Cpu),
            noise.iter().map(|n| n.detach().to_device(Device::Cpu)).collect::<Vec<_>>(),
        )
    });
    let mut outcomes = vec![];
    for (b, slot) in best.into_iter().enumerate() {
        let best = slot.ok_or_else(|| anyhow::anyhow!("every MSE of item {b} was NaN"))?;
        let item: Vec<StepValues> = history
            .iter()
            .enumerate()
            .map(|(s, (round, _, lr, _))| {
                let v: Vec<f64> =
                    Vec::try_from(table.get(s as i64).select(1, b as i64)).expect("history row");
                StepValues {
                    step: s,
                    round: Some(*round),
                    lr: *lr,
                    total: v[0],
                    terms: v[1..].to_vec(),
                }
            })
            .collect();
        let converged = item.iter().any(|v| v.terms[mse_col] / 4.0 <= config.eps * (1.0 + 1e-6));
        let latent = best.latent.to_device(Device::Cpu);
        let w_plus = tch::no_grad(|| to_w_plus(&latent, &fit_cpu, rows))?;
        outcomes.push(SearchOutcome {
            image: best.image.to_device(Device::Cpu).squeeze_dim(0).clamp(0.0, 1.0),
            best_step: best.step,
            best: item[best.step].clone(),
            converged,
            latent,
            w_plus,
            noise: best.noise.iter().map(|n| n.to_device(Device::Cpu)).collect(),
            block_input: best.input.map(|f| f.to_device(Device::Cpu)),
            intermediate: frames.frames.iter().map(|t| t.get(b as i64)).collect(),
            history: item,
            final_state: final_state.as_ref().map(|(z, noise)| {
                (z.narrow(0, b as i64, 1), noise.iter().map(|n| n.narrow(0, b as i64, 1)).collect())
            }),
        });
    }
    Ok(Outcome::Completed(outcomes))
}

/// Item `b` of a noise map that may be shared by the batch ([1,1,S,S]), copied.
fn item(n: &Tensor, b: i64, batch: i64) -> Tensor {
    let b = if n.size()[0] == batch { b } else { 0 };
    n.detach().narrow(0, b, 1).copy()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ramp: 0 at a round's first step, full lr from t = 0.05 to 0.25, cosine down to 0 at
    /// t = 1 (ILO's `get_lr`).
    #[test]
    fn lr_ramp_is_the_stylegan2_projectors() {
        assert_eq!(lr_ramp(0.0), 0.0);
        assert!((lr_ramp(0.025) - 0.5).abs() < 1e-12);
        assert!((lr_ramp(0.1) - 1.0).abs() < 1e-12);
        assert!((lr_ramp(0.25) - 1.0).abs() < 1e-12);
        assert!((lr_ramp(0.625) - 0.5).abs() < 1e-12);
        assert!(lr_ramp(1.0).abs() < 1e-12);
        assert_eq!(trainable_noise(0, 17), 5);
        assert_eq!(trainable_noise(3, 17), 11);
        assert_eq!(trainable_noise(3, 9), 9);
    }

    /// The l1-ball projection keeps vectors inside the ball and moves others onto its surface,
    /// as the closest point (checked against the soft-threshold it must equal).
    #[test]
    fn l1_ball_projection() {
        let x = Tensor::from_slice(&[3.0f32, -1.0, 0.5, 0.2, 0.1, 0.0]).view([2, 3]);
        let p = project_onto_l1_ball(&x, 2.0);
        let v: Vec<f32> = Vec::try_from(p.view([-1])).unwrap();
        // Item 0: |3|+|1|+|.5| > 2 -> threshold 1: (2, 0, 0)... check the sum and the shape.
        assert!((v[0].abs() + v[1].abs() + v[2].abs() - 2.0).abs() < 1e-6, "{v:?}");
        assert!((v[0] - 2.0).abs() < 1e-6 && v[1] == 0.0 && v[2] == 0.0, "{v:?}");
        // Item 1 is inside: unchanged.
        assert_eq!(&v[3..], &[0.2, 0.1, 0.0]);
        let x = Tensor::from_slice(&[1.0f32, 1.0, -1.0]).view([1, 3]);
        let v: Vec<f32> = Vec::try_from(project_onto_l1_ball(&x, 1.5).view([-1])).unwrap();
        assert!(v.iter().all(|a| (a.abs() - 0.5).abs() < 1e-6), "{v:?}");
    }
}
