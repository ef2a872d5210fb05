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
}

impl Default for IloConfig {
    fn default() -> Self {
        Self { steps: vec![50, 50, 25, 25] }
    }
}
