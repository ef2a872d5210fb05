//! `pulse man`: the man pages, generated from the same clap definition that parses the command
//! line (README, "Shell completions and the man page").
use super::exit::Exit;
use anyhow::Context;
use clap::Args;
use pulse::files::escaped;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `pulse.1` and one page per command (`pulse-upsample.1`, ...) into this folder
    /// instead of printing `pulse.1` on stdout.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// The man page `pulse.1` (roff) on stdout, or with `-o DIR` every page in that folder (each
/// written atomically).
/// `cli` is the whole command line's definition, as for `completions`.
pub fn man(a: ManArgs, cli: clap::Command) -> anyhow::Result<Exit> {
    let pages = man_pages(cli)?;
    let Some(dir) = a.out_dir else {
        let mut out = std::io::stdout().lock();
        out.write_all(&pages[0].1)?;
        out.flush()?;
        return Ok(Exit::Success);
    };
    if dir.exists() && !dir.is_dir() {
        return Err(pulse::Invalid(format!(
            "{}: exists and is not a folder; -o takes the folder to write the pages in",
            escaped(&dir)
        ))
        .into());
    }
    pulse::files::check_writable_dir(&dir)
        .map_err(|e| pulse::Invalid(format!("{}: cannot write there: {e}", escaped(&dir))))?;
    for (name, page) in &pages {
        let path = dir.join(name);
        pulse::files::write_bytes_atomic(&path, page)
            .with_context(|| format!("writing {}", escaped(&path)))?;
    }
    eprintln!("pulse: wrote {} man pages in {}", pages.len(), escaped(&dir));
    Ok(Exit::Success)
}

/// `(file name, roff)` of `pulse.1` first, then one page per command and per subcommand of a
/// command (`pulse-report-merge.1`), named as clap_mangen names them, so that every page
/// another one points to (`pulse-report(1)` lists `pulse-report-merge(1)`) is there.
fn man_pages(cli: clap::Command) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = cli.disable_help_subcommand(true);
    cmd.build();
    fn add(c: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        let man = clap_mangen::Man::new(c.clone());
        let mut page = Vec::new();
        man.render(&mut page)?;
        pages.push((man.get_filename(), page));
        for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
            add(sub, pages)?;
        }
        Ok(())
    }
    let mut pages = vec![];
    add(&cmd, &mut pages)?;
    Ok(pages)
}
