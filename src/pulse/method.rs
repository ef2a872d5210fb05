//! Which search `upsample`, `restore` and `eval` run: PULSE (Menon et al., CVPR 2020) over the
//! generator's input, or ILO (Daras et al., ICML 2021), which after PULSE's start also optimizes
//! the feature map entering an intermediate block, round by round (docs/design.md, "ILO").

/// The search method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// PULSE: the W+ latent on the sphere plus trainable noise.
    #[default]
    Pulse,
    /// Intermediate Layer Optimization: PULSE's latent, then round by round the input of a later
    /// synthesis block too.
    Ilo,
}

crate::named_variants!(Method, "method", {
    Pulse => "pulse",
    Ilo => "ilo",
});

/// ILO's settings (its defaults are the paper's code's).
#[derive(Debug, Clone, PartialEq)]
pub struct IloConfig {
    /// Steps of each round; round k starts the synthesis at block k, so there are at most as
    /// many rounds as the generator has blocks.
    pub steps: Vec<usize>,
    /// The l1-ball projections of each round's change (off by default, as in ILO).
    pub radius: Option<IloRadius>,
}

impl Default for IloConfig {
    fn default() -> Self {
        Self { steps: vec![50, 50, 25, 25], radius: None }
    }
}

impl IloConfig {
    /// The rounds' steps as `--ilo-steps` writes them (`50,50,25,25`).
    pub fn steps_string(&self) -> String {
        self.steps.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")
    }

    /// Parses `--ilo-steps` (`50,50,25,25`).
    pub fn parse_steps(s: &str) -> Result<Vec<usize>, String> {
        let steps: Result<Vec<usize>, _> =
            s.split(',').map(|p| p.trim().parse::<usize>()).collect();
        match steps {
            Ok(v) if !v.is_empty() && !v.contains(&0) => Ok(v),
            _ => Err(format!(
                "'{s}' is not a list of round lengths (positive step counts separated by commas, e.g. 50,50,25,25)"
            )),
        }
    }
}

/// Radii of ILO's l1-ball projections, per round (round k uses entry `min(k, len-1)`): the
/// change of the latent, of the noise maps and of the feature map since the round began is
/// projected onto the l1 ball of that radius (per batch item). ILO's values: latent
/// `[100, 1000, 6000]`, noise and feature `[1000, 1000, 6000]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IloRadius {
    pub latent: Vec<f64>,
    pub noise: Vec<f64>,
    pub feature: Vec<f64>,
}

impl Default for IloRadius {
    fn default() -> Self {
        Self {
            latent: vec![100.0, 1000.0, 6000.0],
            noise: vec![1000.0, 1000.0, 6000.0],
            feature: vec![1000.0, 1000.0, 6000.0],
        }
    }
}

impl std::str::FromStr for IloRadius {
    type Err = String;

    /// `latent=100:1000:6000,noise=1000,feature=6000`: per-round radii separated by `:`; a part
    /// left out keeps ILO's value.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut r = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, values)) = part.split_once('=') else {
                return Err(format!(
                    "'{part}' is not NAME=RADII (latent=.., noise=.., feature=..)"
                ));
            };
            let values: Vec<f64> = values
                .split(':')
                .map(|v| v.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .ok()
                .filter(|v: &Vec<f64>| v.iter().all(|x| x.is_finite() && *x > 0.0))
                .ok_or_else(|| {
                    format!("'{part}': radii must be positive numbers separated by ':'")
                })?;
            match name.trim() {
                "latent" => r.latent = values,
                "noise" => r.noise = values,
                "feature" => r.feature = values,
                other => {
                    return Err(format!(
                        "unknown radius '{other}' (expected latent, noise or feature)"
                    ))
                }
            }
        }
        Ok(r)
    }
}

impl std::fmt::Display for IloRadius {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[f64]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(":");
        write!(
            f,
            "latent={},noise={},feature={}",
            list(&self.latent),
            list(&self.noise),
            list(&self.feature)
        )
    }
}
