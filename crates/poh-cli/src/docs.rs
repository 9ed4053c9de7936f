//! `poh completions SHELL` and `poh man`: shell completions and manual pages generated from
//! the command definitions themselves, so they never drift from the flags.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::Cli;

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Write poh.1 and a page per command (poh-serve.1, …) into this directory instead of
    /// printing poh.1.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Prints the completion script; e.g. `poh completions bash > /etc/bash_completion.d/poh`.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "poh", &mut std::io::stdout());
    Ok(())
}

/// Prints poh.1 as roff, or writes every page into `--dir`.
pub fn man(args: &ManArgs) -> anyhow::Result<()> {
    let command = Cli::command();
    match &args.dir {
        None => clap_mangen::Man::new(command)
            .render(&mut std::io::stdout())
            .context("cannot write the manual page"),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))
        }
    }
}
