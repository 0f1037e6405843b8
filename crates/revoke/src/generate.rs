//! `revoke completions SHELL` and `revoke man DIR`: shell completions and
//! man pages generated from the same clap definitions as the parser, so they
//! cannot drift from the flags revoke really takes.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::run::Ended;

/// The completion script for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<Ended> {
    let mut command = Cli::command();
    // Into a buffer first: clap_complete panics on a write error, and a
    // closed pipe (`| head`) is not worth a panic.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "revoke", &mut script);
    match std::io::Write::write_all(&mut std::io::stdout().lock(), &script) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(error).context("cannot write the completion script"))
        }
        _ => Ok(Ended::Done),
    }
}

/// `revoke.1` and one page per command (`revoke-flush.1`, ...) into `dir`.
pub fn man(dir: &Path) -> anyhow::Result<Ended> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    eprintln!(
        "Wrote the man pages into {} (try: man -l {}/revoke.1)",
        dir.display(),
        dir.display()
    );
    Ok(Ended::Done)
}
