//! The speed rewrites of the forward pass, shared by both families (docs/design.md, "Speed
//! rewrites").
use super::layers::{leaky_relu, leaky_relu_reference};
use tch::Tensor;

/// The speed rewrites of the forward pass, each an exact reformulation of PULSE's form (the
/// reference form is kept beside it and tested against it, forward and backward, in float64).
/// All on by default; `pulse bench` switches them off one at a time to measure each
/// (docs/performance.md). StyleGAN2 honours `epilogue` and `leaky` (docs/design.md,
/// "StyleGAN2"); `convt` and `blurbias` are v1's alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Noise as one `addcmul`, instance norm and style modulation as one batch norm.
    pub epilogue: bool,
    /// libtorch's leaky ReLU (instead of PReLU with a one-element weight).
    pub leaky: bool,
    /// Nearest 2x upsample + 3x3 conv as one stride-2 transposed conv (blocks below 128).
    pub convt: bool,
    /// The conv bias added inside the blur's conv.
    pub blurbias: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self::ALL_ON
    }
}

impl Tuning {
    pub const ALL_ON: Tuning = Tuning { epilogue: true, leaky: true, convt: true, blurbias: true };
    pub const ALL_OFF: Tuning =
        Tuning { epilogue: false, leaky: false, convt: false, blurbias: false };
    /// The names `pulse bench --untuned` takes.
    pub const NAMES: [&'static str; 4] = ["epilogue", "leaky", "convt", "blurbias"];

    /// All on except the named rewrites (a comma-separated list of [`Tuning::NAMES`]).
    pub fn without(list: &str) -> Result<Self, String> {
        let mut t = Self::ALL_ON;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "epilogue" => t.epilogue = false,
                "leaky" => t.leaky = false,
                "convt" => t.convt = false,
                "blurbias" => t.blurbias = false,
                "all" => t = Self::ALL_OFF,
                _ => {
                    return Err(format!(
                        "unknown rewrite '{name}' (expected {} or all)",
                        Self::NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(t)
    }

    pub(crate) fn leaky_relu(self, x: &Tensor, slope: f64) -> anyhow::Result<Tensor> {
        if self.leaky {
            leaky_relu(x, slope)
        } else {
            leaky_relu_reference(x, slope)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_lists_parse() {
        assert_eq!(Tuning::without("").unwrap(), Tuning::ALL_ON);
        assert_eq!(Tuning::without("all").unwrap(), Tuning::ALL_OFF);
        let t = Tuning::without("convt, leaky").unwrap();
        assert!(!t.convt && !t.leaky && t.epilogue && t.blurbias);
        assert!(Tuning::without("alloc").unwrap_err().contains("unknown rewrite 'alloc'"));
    }
}
