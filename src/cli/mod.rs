//! The command line: clap's definition of every command ([`Cli`]) and [`run`], which hands each
//! to its file. This is the edge: the only place that prints. Exit codes: [`exit::Exit`].
//!
//! One file per command holds its arguments and its run function (`upsample.rs`:
//! `UpsampleArgs` and `upsample`). What several commands share lives in files that use no
//! command: `shared_args.rs` (argument groups and value parsers, a leaf), `setup.rs` (the
//! device, the model, output checks, Ctrl-C, search settings, shards), `progress.rs` (bars) and
//! `exit.rs` (errors to exit codes). No module here uses one that uses it back (a test below
//! checks it).
mod align;
mod bench;
mod completions;
mod convert;
mod direction;
mod download;
mod downscale;
mod edit;
mod embed;
mod eval;
pub mod exit;
mod fit_gaussian;
mod generate;
mod import;
mod info;
mod man;
mod progress;
mod render;
mod report;
mod restore;
mod setup;
mod shared_args;
mod target;
mod upsample;

use clap::{CommandFactory, Parser, Subcommand};
use exit::Exit;

#[derive(Debug, Parser)]
#[command(
    name = "pulse",
    version,
    about = "PULSE face super-resolution: search a StyleGAN's latent space for a face that downscales to your image"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run; boxing buys nothing
pub enum Command {
    /// Print the libtorch version, CUDA, GPUs and CPU threads, and check the model folders
    /// (what each holds, and the next command to run when something is missing).
    Info(info::InfoArgs),
    /// Upscale low-resolution faces to the generator's resolution with PULSE.
    Upsample(Box<upsample::UpsampleArgs>),
    /// Find the faces in photos and align them as FFHQ was (MTCNN landmarks), at low resolution.
    Align(align::AlignArgs),
    /// Restore every face of photos: each photo enlarged (--upscale), its faces upsampled by
    /// PULSE and pasted back in place; the result, downscaled, is the photo again.
    Restore(Box<restore::RestoreArgs>),
    /// Render random faces (z -> w -> truncation -> synthesis).
    Generate(generate::GenerateArgs),
    /// Render a latent file exactly.
    Render(render::RenderArgs),
    /// Convert any supported weight file to safetensors (same keys, float32).
    Convert(convert::ConvertArgs),
    /// Compute the model's Gaussian fit from its mapping network and save it in the folder.
    FitGaussian(fit_gaussian::FitGaussianArgs),
    /// Direction in W+ from latent FROM to latent TO (the mean difference over several pairs).
    Direction(direction::DirectionArgs),
    /// Render a latent moved along a direction at several scales, side by side.
    Edit(edit::EditArgs),
    /// Embed a photo into W+ (Image2StyleGAN) and write its latent file.
    Embed(embed::EmbedArgs),
    /// Build an RGBA target from a region map and a colour per region.
    Target(target::TargetArgs),
    /// Time PULSE steps (FFHQ-size random network unless --model): ms per step, faces per hour,
    /// peak memory.
    Bench(bench::BenchArgs),
    /// Import weight files (NVIDIA's .pkl, lernapparat's .pt, PULSE's .pt, safetensors) into a
    /// model folder.
    Import(import::ImportArgs),
    /// Download a real model (ffhq: StyleGAN, CC BY-NC 4.0; ffhq-stylegan2: StyleGAN2, NVIDIA
    /// Source Code License-NC), verify it and import it; or torchvision's VGG16 (vgg16) for
    /// LPIPS.
    Download(download::DownloadArgs),
    /// Measure fidelity: shrink high-resolution faces (yours, or --generated ones the model
    /// draws), upsample them with each --method and compare with the truth (PSNR, SSIM, LPIPS,
    /// success, time, diversity); writes eval.json, eval.csv, eval.png and sheet.png.
    Eval(Box<eval::EvalArgs>),
    /// Join the reports of a job's shards into one, with the verdict for the whole job.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Shrink an image the way PULSE's loss does (bicubic, by a power of two), e.g. a generated
    /// face to a 32x32 target.
    Downscale(downscale::DownscaleArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), or write every page into a folder.
    Man(man::ManArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Info(a) => info::info(a),
        Command::Upsample(a) => upsample::upsample(*a),
        Command::Align(a) => align::align(a),
        Command::Restore(a) => restore::restore(*a),
        Command::Generate(a) => generate::generate(a),
        Command::Render(a) => render::render(a),
        Command::Convert(a) => convert::convert(a),
        Command::FitGaussian(a) => fit_gaussian::fit_gaussian(a),
        Command::Direction(a) => direction::direction(a),
        Command::Edit(a) => edit::edit(a),
        Command::Embed(a) => embed::embed(a),
        Command::Target(a) => target::target(a),
        Command::Bench(a) => bench::bench(a),
        Command::Import(a) => import::import(a),
        Command::Download(a) => download::download(a),
        Command::Eval(a) => eval::eval(*a),
        Command::Report(c) => report::report(c),
        Command::Downscale(a) => downscale::downscale(a),
        Command::Completions(a) => completions::completions(a, Cli::command()),
        Command::Man(a) => man::man(a, Cli::command()),
    }
}

#[cfg(test)]
mod tests {
    use super::shared_args::{finite, positive, BatchSize, LayerList};
    use super::*;
    use pulse::pipelines::shard::Shard;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--help` shows a line for every flag and argument of every command.
    #[test]
    fn every_argument_has_help() {
        for sub in Cli::command().get_subcommands() {
            for arg in sub.get_arguments() {
                if arg.get_id() == "help" || arg.get_id() == "version" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some_and(|h| !h.to_string().trim().is_empty()),
                    "pulse {} {}: no help text",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
    }

    #[test]
    fn structured_flags_parse_and_refuse() {
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard { index: 2, count: 3 });
        for bad in ["3/2", "0/0", "1", "a/b", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!("auto".parse::<BatchSize>().unwrap(), BatchSize::Auto);
        assert_eq!("4".parse::<BatchSize>().unwrap(), BatchSize::Fixed(4));
        assert!("0".parse::<BatchSize>().is_err());
        assert_eq!("16.17".parse::<LayerList>().unwrap(), LayerList(vec![16, 17]));
        assert!("x".parse::<LayerList>().is_err());
        for bad in ["nan", "inf", "-1", "0", "1e400"] {
            assert!(positive(bad).is_err(), "{bad}");
        }
        assert!(finite("-0.5").is_ok() && finite("nan").is_err());
    }

    /// Every bad value of an enumerated or numeric flag is clap's usage error (exit code 2).
    #[test]
    fn bad_values_are_usage_errors() {
        let cases: [&[&str]; 12] = [
            &["upsample", "x.png", "--optimizer", "foo"],
            &["upsample", "x.png", "--shard", "3/2"],
            &["upsample", "x.png", "--precision", "fp8"],
            &["upsample", "x.png", "--lr", "nan"],
            &["upsample", "x.png", "--eps", "-1"],
            &["upsample", "x.png", "--loss", "1e400*L2"],
            &["upsample", "x.png", "--loss", "0*L2"],
            &["upsample", "x.png", "--schedule", "cosine"],
            &["upsample", "x.png", "--device", "gpu"],
            &["upsample", "x.png", "--batch-size", "0"],
            &["generate", "-o", "x.png", "--truncation", "inf"],
            &["embed", "p.png", "-o", "l", "--noise", "pink"],
        ];
        for args in cases {
            let e = Cli::try_parse_from(std::iter::once("pulse").chain(args.iter().copied()))
                .expect_err(&args.join(" "));
            assert_eq!(e.exit_code(), 2, "{}: {e}", args.join(" "));
        }
        let ok = Cli::try_parse_from(["pulse", "upsample", "x.png", "--precision", "tf32"]);
        assert!(ok.is_ok());
    }

    /// `restore` takes every search flag `upsample` takes, meaning the same; `upsample`'s flags
    /// about its own inputs are clap's usage error there, not hidden flags refused later.
    #[test]
    fn restore_takes_the_search_flags_and_refuses_upsamples_input_flags() {
        let search = [
            "--method",
            "ilo",
            "--ilo-steps",
            "2,2",
            "--lr",
            "0.2",
            "--eps",
            "1e-3",
            "--seed",
            "5",
            "--batch-size",
            "auto",
            "--restarts",
            "2",
            "--precision",
            "tf32",
            "--cuda-graph",
        ];
        for command in ["upsample", "restore"] {
            let args = ["pulse", command, "p.png"].into_iter().chain(search);
            let parsed = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{command}: {e}"));
            let a = match parsed.command {
                Command::Upsample(a) => a.search,
                Command::Restore(a) => a.search,
                _ => unreachable!(),
            };
            assert_eq!((a.seed, a.restarts, a.lr, a.cuda_graph), (Some(5), 2, Some(0.2), true));
            assert_eq!(a.batch_size, BatchSize::Auto);
        }
        for flag in [&["--align"][..], &["--mask", "m.png"], &["--ignore-alpha"], &["--init", "l"]]
            .into_iter()
            .chain([&["--save-intermediate"][..]])
        {
            let args = ["pulse", "restore", "p.png"].into_iter().chain(flag.iter().copied());
            let e = Cli::try_parse_from(args).expect_err(flag[0]);
            assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{}", flag[0]);
            let args = ["pulse", "upsample", "p.png"].into_iter().chain(flag.iter().copied());
            assert!(Cli::try_parse_from(args).is_ok(), "upsample {}", flag[0]);
        }
    }

    /// Which modules of `src/cli` each one uses: `super::x` and `crate::cli::x` paths (in `use`
    /// lines and inline, grouped `super::{a, b}` too), outside comments and test modules; an
    /// item of `mod.rs` itself (`super::Cli`) counts as using `mod`, which uses every module it
    /// declares.
    fn module_uses() -> BTreeMap<String, BTreeSet<String>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
        let mut sources = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                let code: Vec<&str> =
                    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
                sources.insert(name, code.join("\n"));
            }
        }
        let names: BTreeSet<String> = sources.keys().cloned().collect();
        let ident = |s: &str| -> String {
            s.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
        };
        let mut uses = BTreeMap::new();
        for (name, code) in &sources {
            let mut used = BTreeSet::new();
            if name == "mod" {
                for line in code.lines() {
                    if let Some(m) =
                        line.trim().strip_prefix("pub mod ").or(line.trim().strip_prefix("mod "))
                    {
                        used.insert(ident(m));
                    }
                }
            } else {
                for prefix in ["super::", "crate::cli::"] {
                    for (at, _) in code.match_indices(prefix) {
                        let rest = &code[at + prefix.len()..];
                        let firsts: Vec<String> = match rest.strip_prefix('{') {
                            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                                .split(',')
                                .map(ident)
                                .collect(),
                            None => vec![ident(rest)],
                        };
                        for first in firsts.into_iter().filter(|f| !f.is_empty()) {
                            used.insert(if names.contains(&first) { first } else { "mod".into() });
                        }
                    }
                }
            }
            used.remove(name);
            uses.insert(name.clone(), used);
        }
        uses
    }

    /// A cycle of `uses` (its modules in order, the first repeated at the end), if any.
    fn cycle(uses: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        fn visit(
            m: &str,
            uses: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| p == m) {
                let mut found = path[i..].to_vec();
                found.push(m.to_string());
                return Some(found);
            }
            if done.contains(m) {
                return None;
            }
            path.push(m.to_string());
            for next in uses.get(m).into_iter().flatten() {
                if let Some(found) = visit(next, uses, path, done) {
                    return Some(found);
                }
            }
            path.pop();
            done.insert(m.to_string());
            None
        }
        let mut done = BTreeSet::new();
        uses.keys().find_map(|m| visit(m, uses, &mut vec![], &mut done))
    }

    /// No module of `src/cli` uses one that uses it back, directly or through others: what
    /// commands share sits below them (`shared_args`, `setup`, `progress`, `exit`), and a
    /// command uses another only one way (`upsample` uses `align`'s run, never back).
    #[test]
    fn no_module_of_cli_uses_one_that_uses_it_back() {
        let uses = module_uses();
        // The reader sees the uses that are there (so an empty graph cannot pass).
        assert!(uses["upsample"].contains("setup") && uses["upsample"].contains("align"));
        assert!(uses["mod"].contains("upsample") && uses["mod"].len() >= 20);
        assert!(uses["shared_args"].is_empty(), "a leaf: {:?}", uses["shared_args"]);
        assert_eq!(cycle(&uses), None);
        // And it finds a cycle when there is one.
        let mut looped = uses.clone();
        looped.get_mut("setup").unwrap().insert("upsample".into());
        let found = cycle(&looped).expect("setup -> upsample -> setup");
        assert_eq!(found.first(), found.last());
        assert!(found.contains(&"setup".to_string()) && found.contains(&"upsample".to_string()));
    }
}
