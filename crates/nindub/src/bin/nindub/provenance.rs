//! `nindub provenance`: the Grimoire of Ownership on the command line.
//! Content manifests (show, record, verify), the lineage tree, keys and
//! signatures, the IP-metadata export, and royalty splits.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use nindub::provenance::ip::{IpCreator, IpMetadata, LicenseTerms, ZERO_ADDRESS, metadata_hash};
use nindub::provenance::royalty::{MAX_PERCENT, Policy, format_units, parse_units};
use nindub::provenance::{self, ContentManifest, Parent, Recipe, Registry, Relation, sign};
use nindub::{assets, budget};

#[derive(Args)]
pub struct ProvenanceArgs {
    #[command(subcommand)]
    what: ProvenanceCommand,
}

#[derive(Subcommand)]
enum ProvenanceCommand {
    /// Hash a model (GGUF, safetensors, shard directory) and print its
    /// manifest: the root, the files, the tokenizer, the license, the layers.
    Show {
        /// A cached asset's name or a model path.
        model: String,
        /// Print the whole manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the model's manifest beside it (`<file>.provenance.json`),
    /// with its parents and license terms.
    Record {
        model: String,
        /// A model this one was made from (repeatable).
        #[arg(long)]
        parent: Vec<String>,
        /// How: quantized, split, distilled, fine-tuned.
        #[arg(long, default_value = "quantized")]
        relation: String,
        /// The command that made it (recorded as the recipe).
        #[arg(long)]
        made_by: Option<String>,
        /// The Golden Triangle's run id of that command, if recorded.
        #[arg(long)]
        run: Option<String>,
        /// The license, where the file does not state one (e.g. apache-2.0).
        #[arg(long)]
        license: Option<String>,
        /// Offer commercial use for this percent of derivatives' revenue
        /// (Story's "Commercial Remix" terms).
        #[arg(long)]
        rev_share: Option<f64>,
        /// Offer Story's "Non-Commercial Social Remixing" terms.
        #[arg(long, conflicts_with = "rev_share")]
        non_commercial: bool,
        /// Forbid derivatives in the offered terms.
        #[arg(long)]
        no_derivatives: bool,
    },
    /// Recompute the model's manifest and compare it with the recorded one
    /// (naming the first changed tensor); check its signature if signed, and
    /// each parent edge whose parent is given.
    Verify {
        model: String,
        /// The public key (hex) the signature must be from.
        #[arg(long)]
        trust: Option<String>,
        /// A parent model to check the edge against (repeatable).
        #[arg(long)]
        parent: Vec<String>,
    },
    /// The lineage of every recorded manifest under the directories.
    Tree {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Make an Ed25519 key (written with mode 0600).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign the model's recorded manifest (`<manifest>.sig`).
    Sign {
        model: String,
        #[arg(long)]
        key: PathBuf,
    },
    /// Write the model's IP metadata in Story Protocol's shape, signed:
    /// FILE and FILE.sig; prints its metadataHash.
    Export {
        model: String,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        title: String,
        /// The creator's name.
        #[arg(long)]
        creator: String,
        /// The creator's address (0x and 40 hex digits).
        #[arg(long, default_value = ZERO_ADDRESS)]
        address: String,
        /// Where the file can be fetched.
        #[arg(long, default_value = "")]
        media_url: String,
        /// ISO 8601 (default: now, UTC).
        #[arg(long)]
        created_at: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Split a payment to one model among it and its ancestors, at the
    /// percents their recorded license terms ask.
    Royalty {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// The paid model: its manifest's path or a root prefix.
        #[arg(long)]
        pay: String,
        /// The amount, a decimal number of tokens.
        #[arg(long)]
        amount: String,
        /// The token's decimals (18 for $IP/$WIP).
        #[arg(long, default_value_t = 18)]
        decimals: u32,
        /// lap or lrp.
        #[arg(long, default_value = "lap")]
        policy: String,
    },
}

fn resolve(model: &str) -> Result<PathBuf> {
    Ok(assets::resolve(model)?)
}

fn compute(path: &std::path::Path) -> Result<ContentManifest> {
    let bar = nindub::progress::progress_bar(
        0,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        "hashing",
        "bytes",
    );
    let m = ContentManifest::compute(path, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    Ok(m)
}

pub fn run(args: ProvenanceArgs) -> Result<()> {
    match args.what {
        ProvenanceCommand::Show { model, json } => {
            let path = resolve(&model)?;
            let m = compute(&path)?;
            if json {
                print!("{}", String::from_utf8_lossy(&m.to_bytes()));
            } else {
                print!("{}", summary(&m));
            }
            Ok(())
        }
        ProvenanceCommand::Record {
            model,
            parent,
            relation,
            made_by,
            run,
            license,
            rev_share,
            non_commercial,
            no_derivatives,
        } => {
            let path = resolve(&model)?;
            let relation = Relation::from_name(&relation)?;
            let mut m = compute(&path)?;
            if let Some(l) = license {
                m.license = Some(provenance::manifest::Sourced {
                    value: l,
                    source: "declared".into(),
                });
            }
            let recipe = made_by.map(|c| Recipe {
                command: c.split_whitespace().map(str::to_string).collect(),
                run,
                commit: None,
            });
            for p in &parent {
                let pm = provenance::manifest_of(&resolve(p)?, &mut |_, _| {})?;
                m.parents.push(Parent::of(&pm, relation, recipe.clone()));
            }
            let mut terms = match (rev_share, non_commercial) {
                (Some(pct), _) => {
                    if !(0.0..=100.0).contains(&pct) {
                        bail!("--rev-share must be a percent between 0 and 100, not {pct}");
                    }
                    let units = (pct / 100.0 * f64::from(MAX_PERCENT)).round() as u32;
                    Some(LicenseTerms::commercial_remix(
                        units,
                        ZERO_ADDRESS,
                        ZERO_ADDRESS,
                    )?)
                }
                (None, true) => Some(LicenseTerms::non_commercial_social_remixing()),
                (None, false) => None,
            };
            if no_derivatives {
                let t = terms.get_or_insert_with(LicenseTerms::non_commercial_social_remixing);
                t.derivatives_allowed = false;
            }
            m.terms = terms;
            let written = m.write_recorded(&path)?;
            println!("recorded {} (root {})", written.display(), m.root);
            Ok(())
        }
        ProvenanceCommand::Verify {
            model,
            trust,
            parent,
        } => {
            let path = resolve(&model)?;
            let bar = nindub::progress::progress_bar(
                0,
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
                "hashing",
                "bytes",
            );
            let v = provenance::verify(&path, trust.as_deref(), &mut |d, t| {
                bar.set_length(t);
                bar.set_position(d);
            })?;
            bar.finish_and_clear();
            println!("recorded root {}", v.recorded.root);
            println!("found root    {}", v.found.root);
            for d in &v.discrepancies {
                println!(
                    "CHANGED {}: recorded {}, found {}",
                    d.what, d.recorded, d.found
                );
            }
            match &v.signature {
                None => println!("signature: none"),
                Some(Ok(signer)) if trust.is_some() => {
                    println!("signature: valid, by the trusted key {signer}")
                }
                Some(Ok(signer)) => {
                    println!("signature: valid, by {signer} (give --trust to require that key)")
                }
                Some(Err(why)) => println!("signature: REFUSED: {why}"),
            }
            let mut bad_edges = 0;
            for p in &parent {
                let pm = provenance::manifest_of(&resolve(p)?, &mut |_, _| {})?;
                let problems = provenance::check_edge(&pm, &v.recorded);
                if problems.is_empty() {
                    println!("edge from {}: ok", &pm.root[..16]);
                } else {
                    bad_edges += 1;
                    println!("edge from {}: {}", &pm.root[..16], problems.join("; "));
                }
            }
            if !v.ok() || bad_edges > 0 {
                bail!(
                    "{} does not verify: {} difference(s), {} bad edge(s)",
                    path.display(),
                    v.discrepancies.len(),
                    bad_edges
                );
            }
            println!("verified: {}", path.display());
            Ok(())
        }
        ProvenanceCommand::Tree { dirs } => {
            let reg = Registry::scan(&dirs)?;
            if reg.manifests.is_empty() {
                bail!(
                    "no manifests under {}",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            print!("{}", reg.render());
            Ok(())
        }
        ProvenanceCommand::Keygen { out } => {
            if out.exists() {
                bail!("{} exists; a key is never overwritten", out.display());
            }
            let key = sign::generate()?;
            sign::write_key(&out, &key)?;
            println!(
                "wrote {} (public key {})",
                out.display(),
                sign::public_hex(&key.verifying_key())
            );
            Ok(())
        }
        ProvenanceCommand::Sign { model, key } => {
            let path = resolve(&model)?;
            let key = sign::read_key(&key)?;
            let sig = provenance::sign_recorded(&path, &key)?;
            println!(
                "signed {} (sha256 {}) with {}",
                provenance::sidecar_path(&path).display(),
                sig.sha256,
                sig.public_key
            );
            Ok(())
        }
        ProvenanceCommand::Export {
            model,
            key,
            title,
            creator,
            address,
            media_url,
            created_at,
            out,
        } => {
            let path = resolve(&model)?;
            let key = sign::read_key(&key)?;
            let m = provenance::manifest_of(&path, &mut |_, _| {})?;
            let created_at = created_at.unwrap_or_else(now_iso8601);
            let creators = vec![IpCreator {
                name: creator,
                address,
                contribution_percent: 100,
            }];
            let meta = IpMetadata::of(&m, &title, &created_at, creators, &media_url)?;
            let bytes = meta.to_bytes();
            nindub::fsx::write_atomic(&out, &bytes)?;
            let sig = sign::sign(&key, &bytes);
            let mut sig_path = out.clone().into_os_string();
            sig_path.push(".sig");
            let mut sig_bytes = serde_json::to_vec_pretty(&sig)?;
            sig_bytes.push(b'\n');
            nindub::fsx::write_atomic(std::path::Path::new(&sig_path), &sig_bytes)?;
            println!(
                "wrote {} and {}",
                out.display(),
                PathBuf::from(sig_path).display()
            );
            println!("metadataHash {}", metadata_hash(&bytes));
            Ok(())
        }
        ProvenanceCommand::Royalty {
            dirs,
            pay,
            amount,
            decimals,
            policy,
        } => {
            let reg = Registry::scan(&dirs)?;
            let payee = reg.find(&pay)?;
            let policy = Policy::from_name(&policy)?;
            let amount = parse_units(&amount, decimals)?;
            let lineage = reg.royalty_lineage();
            let shares = lineage
                .split(payee, amount, policy)
                .context("splitting the payment")?;
            println!(
                "{} paid to {} ({policy:?}):",
                format_units(amount, decimals),
                lineage.names[payee]
            );
            for (i, s) in shares.iter().enumerate().filter(|(_, s)| **s > 0) {
                println!("  {:>28}  {}", format_units(*s, decimals), lineage.names[i]);
            }
            let total: u128 = shares.iter().sum();
            println!(
                "  {:>28}  total (exact: {})",
                format_units(total, decimals),
                total == amount
            );
            Ok(())
        }
    }
}

/// Records `child` as made from `parent` (beside the child), with this
/// command line as the recipe and the run's id and commit when tracked;
/// prints the new root and any problem with the edge.
pub fn record_lineage(
    parent: &std::path::Path,
    child: &std::path::Path,
    relation: Relation,
    run: Option<&nindub::track::record::Run>,
) -> Result<()> {
    let recipe = Recipe {
        command: std::env::args().skip(1).collect(),
        run: run.map(|r| r.record().id.clone()),
        commit: run.and_then(|r| r.record().git.as_ref().map(|g| g.commit.clone())),
    };
    let (m, problems) = provenance::record_derivative(parent, child, relation, Some(recipe))?;
    println!(
        "provenance: {} (root {}, {} of {})",
        provenance::sidecar_path(child).display(),
        &m.root[..16],
        relation.name(),
        &m.parents[0].root[..16]
    );
    for p in problems {
        eprintln!(
            "nindub: provenance: the {} edge does not hold: {p}",
            relation.name()
        );
    }
    Ok(())
}

/// A manifest, as a few lines.
fn summary(m: &ContentManifest) -> String {
    let mut s = String::new();
    s.push_str(&format!("root          {}\n", m.root));
    s.push_str(&format!("kind          {:?}\n", m.kind));
    if let Some(n) = &m.name {
        s.push_str(&format!("name          {n}\n"));
    }
    if let Some(a) = &m.architecture {
        s.push_str(&format!("architecture  {a}\n"));
    }
    s.push_str(&format!(
        "parameters    {} in {} tensors, {} groups\n",
        m.parameters,
        m.tensors.len(),
        m.groups.len()
    ));
    for f in &m.files {
        s.push_str(&format!(
            "file          {} ({}) sha256 {}\n",
            f.file,
            budget::human(f.bytes),
            f.sha256
        ));
    }
    if let Some(t) = &m.tokenizer {
        s.push_str(&format!(
            "tokenizer     sha256 {} (from {})\n",
            t.value, t.source
        ));
    }
    match &m.license {
        Some(l) => s.push_str(&format!("license       {} (from {})\n", l.value, l.source)),
        None => s.push_str("license       not stated in the file\n"),
    }
    for g in m.groups.iter().take(3) {
        s.push_str(&format!(
            "group         {:<10} {:>3} tensors root {}\n",
            g.name, g.tensors, g.root
        ));
    }
    if m.groups.len() > 3 {
        s.push_str(&format!("group         … {} more\n", m.groups.len() - 3));
    }
    s
}

/// Now, in ISO 8601 (UTC, seconds).
fn now_iso8601() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
