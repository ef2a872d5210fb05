//! PULSE's loss terms (docs/design.md, "Losses"), each computed per batch item so
//! that every image can be judged and kept on its own; the optimized loss is their sum.
use std::fmt;
use std::str::FromStr;
use tch::Tensor;

/// One term of the loss string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// Mean squared error on the downscaled output (alpha-weighted for masked targets).
    L2,
    /// 10 x mean absolute error on the downscaled output.
    L1,
    /// Geodesic cross loss on the W+ rows (PULSE section 3.3); ILO takes it on rows `2k..` of
    /// the unmapped latent instead (docs/design.md, "ILO").
    GeoCross,
    /// ILO's image term: `F.mse_loss` on [-1,1] images, i.e. 4 x the L2 mean on [0,1], not
    /// clamped at eps (alpha-weighted like L2).
    Mse,
    /// LPIPS (Zhang et al. 2018, VGG) between the downscaled output and the target, at the
    /// target's size (at least 256 px): [`crate::metrics::lpips`].
    Lpips,
}

impl Term {
    pub fn name(self) -> &'static str {
        match self {
            Term::L2 => "L2",
            Term::L1 => "L1",
            Term::GeoCross => "GEOCROSS",
            Term::Mse => "MSE",
            Term::Lpips => "LPIPS",
        }
    }
}

/// A parsed loss string such as `100*L2+0.05*GEOCROSS`: a sum of `weight*TERM`.
#[derive(Debug, Clone, PartialEq)]
pub struct LossSpec {
    pub terms: Vec<(f64, Term)>,
}

impl Default for LossSpec {
    fn default() -> Self {
        "100*L2+0.05*GEOCROSS".parse().expect("default loss string parses")
    }
}

impl FromStr for LossSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut terms = vec![];
        for part in s.split('+').map(str::trim) {
            let (weight, name) = match part.split_once('*') {
                Some((w, n)) => {
                    let w = w
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| format!("bad weight '{w}' in loss term '{part}'"))?;
                    (w, n.trim())
                }
                None => (1.0, part),
            };
            let term = match name {
                "L2" => Term::L2,
                "L1" => Term::L1,
                "GEOCROSS" => Term::GeoCross,
                "MSE" => Term::Mse,
                "LPIPS" => Term::Lpips,
                _ => {
                    return Err(format!(
                        "unknown loss term '{name}' (expected L2, L1, MSE, GEOCROSS or LPIPS)"
                    ))
                }
            };
            if !(weight.is_finite() && weight > 0.0) {
                return Err(format!(
                    "the weight of {name} must be a positive finite number, got {weight}"
                ));
            }
            if terms.iter().any(|(_, t)| *t == term) {
                return Err(format!("loss term {name} appears twice"));
            }
            terms.push((weight, term));
        }
        if !terms.iter().any(|(_, t)| matches!(t, Term::L2 | Term::L1 | Term::Mse)) {
            return Err(format!("loss '{s}' has no image term (L2, L1 or MSE)"));
        }
        Ok(Self { terms })
    }
}

impl fmt::Display for LossSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> =
            self.terms.iter().map(|(w, t)| format!("{w}*{}", t.name())).collect();
        write!(f, "{}", parts.join("+"))
    }
}

/// The target of a search: low-res images in [0,1] and optional per-pixel weights (alpha).
#[derive(Debug)]
pub struct LossTarget {
    /// [B,3,s,s]
    pub image: Tensor,
    /// [B,1,s,s] in [0,1]; 0 = unconstrained. `None` means plain (unweighted) terms.
    pub weight: Option<Tensor>,
}

/// Per-item value [B] of each term of `spec`, in order, and the weighted total [B].
/// `w_plus` is what GEOCROSS is taken over (ILO passes its latent rows `2k..`).
pub fn evaluate(
    spec: &LossSpec,
    low_res: &Tensor,
    target: &LossTarget,
    w_plus: &Tensor,
    eps: f64,
) -> (Tensor, Vec<Tensor>) {
    let values: Vec<Tensor> = spec
        .terms
        .iter()
        .map(|(_, term)| match term {
            Term::L2 => {
                weighted_mean(&(low_res - &target.image).square(), &target.weight).clamp_min(eps)
            }
            Term::L1 => {
                weighted_mean(&(low_res - &target.image).abs(), &target.weight).clamp_min(eps)
                    * 10.0
            }
            Term::GeoCross => geocross(w_plus),
            Term::Mse => weighted_mean(&(low_res - &target.image).square(), &target.weight) * 4.0,
            Term::Lpips => crate::metrics::lpips::loss_term(low_res, &target.image),
        })
        .collect();
    let total = spec
        .terms
        .iter()
        .zip(&values)
        .map(|((w, _), v)| v * *w)
        .reduce(|a, b| a + b)
        .expect("loss has terms");
    (total, values)
}

/// Mean over C,H,W of `err * weight`; masked pixels still count in the denominator
/// (docs/design.md, "Losses").
fn weighted_mean(err: &Tensor, weight: &Option<Tensor>) -> Tensor {
    let err = match weight {
        Some(w) => err * w,
        None => err.shallow_clone(),
    };
    err.mean_dim([1i64, 2, 3].as_slice(), false, err.kind())
}

/// GEOCROSS per item (docs/design.md, "Losses"): mean over all ordered pairs of rows of the squared geodesic
/// distance `2 atan2(|x_i - x_j|, |x_i + x_j|)`, times 512 / 8.
pub fn geocross(w_plus: &Tensor) -> Tensor {
    let size = w_plus.size();
    let (b, l, d) = (size[0], size[1], size[2]);
    let x = w_plus.view([b, 1, l, d]);
    let y = w_plus.view([b, l, 1, d]);
    let a = ((&x - &y).square().sum_dim_intlist(-1, false, x.kind()) + 1e-9).sqrt();
    let c = ((&x + &y).square().sum_dim_intlist(-1, false, x.kind()) + 1e-9).sqrt();
    let dist = a.atan2(&c) * 2.0;
    (dist.square() * d as f64).mean_dim([1i64, 2].as_slice(), false, x.kind()) / 8.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_and_alternatives() {
        let spec: LossSpec = "100*L2+0.05*GEOCROSS".parse().unwrap();
        assert_eq!(spec.terms, vec![(100.0, Term::L2), (0.05, Term::GeoCross)]);
        assert_eq!(spec.to_string(), "100*L2+0.05*GEOCROSS");
        let spec: LossSpec = "L1 + 2*L2".parse().unwrap();
        assert_eq!(spec.terms, vec![(1.0, Term::L1), (2.0, Term::L2)]);
        assert!("100*L3".parse::<LossSpec>().is_err());
        assert!("x*L2".parse::<LossSpec>().is_err());
        assert!("GEOCROSS".parse::<LossSpec>().is_err());
        assert!("L2+L2".parse::<LossSpec>().is_err());
    }

    #[test]
    fn l2_is_clamped_at_eps_and_weighted() {
        let target =
            LossTarget { image: Tensor::zeros([2, 3, 4, 4], tch::kind::FLOAT_CPU), weight: None };
        let low = Tensor::ones([2, 3, 4, 4], tch::kind::FLOAT_CPU) * 0.01;
        let w = Tensor::zeros([2, 4, 512], tch::kind::FLOAT_CPU);
        let spec: LossSpec = "L2".parse().unwrap();
        let (total, _) = evaluate(&spec, &low, &target, &w, 2e-3);
        assert_eq!(Vec::<f64>::try_from(&total).unwrap(), vec![2e-3_f32 as f64; 2]);
        let half = Tensor::cat(
            &[
                Tensor::ones([1, 1, 4, 2], tch::kind::FLOAT_CPU),
                Tensor::zeros([1, 1, 4, 2], tch::kind::FLOAT_CPU),
            ],
            3,
        );
        let target = LossTarget { image: target.image, weight: Some(half.repeat([2, 1, 1, 1])) };
        let low = Tensor::ones([2, 3, 4, 4], tch::kind::FLOAT_CPU);
        let (total, _) = evaluate(&spec, &low, &target, &w, 2e-3);
        assert!((total.double_value(&[0]) - 0.5).abs() < 1e-6);
    }
}
