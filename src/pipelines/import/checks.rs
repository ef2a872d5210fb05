//! What every import checks of its sources before anything is written: finite values, one file
//! per network, one generator family, the Gaussian fit's shape.
use super::{refused, ImportError};
use crate::stylegan::Architecture;
use crate::stylegan::LATENT_DIM;
use crate::weights::{Source, StateDict};
use tch::Tensor;

/// The networks taken from the sources: each with the index of its source.
pub(super) struct Gathered {
    pub synthesis: (StateDict, usize),
    pub mapping: Option<(StateDict, usize)>,
    pub fit: Option<(StateDict, usize)>,
    pub w_avg: Option<Tensor>,
    pub tf_trainables: Option<i64>,
    pub architecture: Architecture,
}

/// Every tensor of a source must be finite: a NaN weight renders black faces far away from
/// the file that caused them.
pub(super) fn check_finite(source: &Source) -> Result<(), ImportError> {
    let finite = |t: &Tensor| bool::try_from(t.isfinite().all()).unwrap_or(false);
    let dicts = [&source.synthesis, &source.mapping, &source.fit];
    for sd in dicts.into_iter().flatten() {
        for (key, t) in sd.iter() {
            if t.is_floating_point() && !finite(t) {
                return Err(refused(&source.path, format!("'{key}' holds NaN or infinite values")));
            }
        }
    }
    if source.w_avg.as_ref().is_some_and(|w| !finite(w)) {
        return Err(refused(&source.path, "dlatent_avg holds NaN or infinite values"));
    }
    Ok(())
}

/// A vector of `LATENT_DIM` values: the fit's `mean` and `std`, NVIDIA's `dlatent_avg`.
pub(super) fn check_latent_vector(
    sd_path: &std::path::Path,
    what: &str,
    t: Option<&Tensor>,
) -> Result<(), ImportError> {
    match t {
        Some(t) if t.size() == [LATENT_DIM] => Ok(()),
        Some(t) => Err(refused(
            sd_path,
            format!("'{what}' has shape {:?}, expected [{LATENT_DIM}]", t.size()),
        )),
        None => Err(refused(sd_path, format!("a Gaussian fit without '{what}'"))),
    }
}

/// Takes each network from exactly one source; all networks must be of one family.
pub(super) fn gather(sources: &[Source]) -> Result<Gathered, ImportError> {
    fn one<'a>(
        sources: &'a [Source],
        what: &str,
        get: impl Fn(&'a Source) -> Option<&'a StateDict>,
    ) -> Result<Option<(StateDict, usize)>, ImportError> {
        let found: Vec<usize> =
            (0..sources.len()).filter(|&i| get(&sources[i]).is_some()).collect();
        match found[..] {
            [] => Ok(None),
            [i] => {
                let sd = get(&sources[i]).expect("found");
                let pairs = sd.iter().map(|(k, t)| (k.to_string(), t.shallow_clone())).collect();
                Ok(Some((StateDict::from_pairs(pairs).with_path(sd.path()), i)))
            }
            [a, b, ..] => Err(ImportError::Usage(format!(
                "both {} and {} hold a {what}: give one",
                crate::files::escaped(&sources[a].path),
                crate::files::escaped(&sources[b].path)
            ))),
        }
    }
    let mut families = sources.iter().filter_map(|s| s.architecture.map(|a| (a, &s.path)));
    let Some((architecture, first)) = families.next() else {
        let names: Vec<String> = sources.iter().map(|s| crate::files::escaped(&s.path)).collect();
        return Err(ImportError::Refused(format!(
            "{}: no synthesis network (a model needs one: NVIDIA's pickles, lernapparat's for_g_all.pt, rosinality's checkpoint or PULSE's synthesis.pt)",
            names.join(", ")
        )));
    };
    if let Some((other, path)) = families.find(|(a, _)| *a != architecture) {
        return Err(ImportError::Usage(format!(
            "{} holds a {} network and {} a {} network: give files of one generator",
            crate::files::escaped(first),
            architecture.name(),
            crate::files::escaped(path),
            other.name()
        )));
    }
    let synthesis = one(sources, "synthesis network", |s| s.synthesis.as_ref())?.ok_or_else(|| {
        let names: Vec<String> = sources.iter().map(|s| crate::files::escaped(&s.path)).collect();
        ImportError::Refused(format!(
            "{}: no synthesis network (a model needs one: NVIDIA's pickles, lernapparat's for_g_all.pt, rosinality's checkpoint or PULSE's synthesis.pt)",
            names.join(", ")
        ))
    })?;
    let w_avgs: Vec<&Tensor> = sources.iter().filter_map(|s| s.w_avg.as_ref()).collect();
    Ok(Gathered {
        synthesis,
        mapping: one(sources, "mapping network", |s| s.mapping.as_ref())?,
        fit: one(sources, "Gaussian fit", |s| s.fit.as_ref())?,
        w_avg: w_avgs.first().map(|t| t.shallow_clone()),
        tf_trainables: sources.iter().find_map(|s| s.tf_trainables),
        architecture,
    })
}
