//! `nindub models`: fetch the pinned models and data, or list them.

use anyhow::{Context, Result};
use clap::Args;
use nindub::assets;

#[derive(Args)]
pub struct ModelsArgs {
    /// Asset names (default: all).
    names: Vec<String>,
    /// Re-hash the cached files against their pinned SHA-256.
    #[arg(long)]
    verify: bool,
    /// Only list the assets and whether they are cached.
    #[arg(long)]
    list: bool,
}

pub fn run(args: ModelsArgs) -> Result<()> {
    let (names, verify, list) = (&args.names, args.verify, args.list);
    let selected: Vec<_> = if names.is_empty() {
        assets::ASSETS.iter().collect()
    } else {
        names
            .iter()
            .map(|n| assets::asset(n))
            .collect::<nindub::Result<_>>()?
    };
    println!(
        "cache: {} (set {} to move it)",
        assets::cache_dir().display(),
        assets::CACHE_ENV
    );
    for a in selected {
        if list {
            let state = if a.is_cached() {
                "cached"
            } else {
                "not fetched"
            };
            println!(
                "{:<8} {:<28} {state:<12} {}",
                a.name, a.requirement, a.about
            );
            continue;
        }
        let dir = a.ensure().with_context(|| format!("fetching {}", a.name))?;
        if verify {
            assets::verify(a)?;
        }
        let files: Vec<_> = a.files.iter().map(|f| f.file).collect();
        println!(
            "{:<8} {} {}{}",
            a.name,
            dir.display(),
            files.join(", "),
            if verify { " (sha256 verified)" } else { "" }
        );
    }
    Ok(())
}
