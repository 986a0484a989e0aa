//! Energy per token: measured where the kernel exposes RAPL (Intel's
//! Running Average Power Limit counters, which Linux also offers on recent
//! AMD processors under the same name), otherwise estimated from a power
//! figure and a throughput, and then said to be estimated, and why.
//!
//! RAPL counts the energy of a whole CPU package (every process on it, not
//! only the one generating) in microjoules, in
//! `/sys/class/powercap/intel-rapl:N/energy_uj`, wrapping around at
//! `max_energy_range_uj`. It says nothing about a GPU. Many machines have no
//! such counter (virtual machines, most ARM boards), and kernels patched for
//! CVE-2020-8694 let only root read it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where Linux exposes power-capping zones.
pub const POWERCAP: &str = "/sys/class/powercap";

/// Joules in a kilowatt-hour.
pub const JOULES_PER_KWH: f64 = 3.6e6;

/// Energy per generated token, and how it was obtained.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum EnergyPerToken {
    /// Read from RAPL around a run.
    Measured {
        joules_per_token: f64,
        joules: f64,
        seconds: f64,
        tokens: u64,
        /// The zones summed (`package-0`, …).
        zones: Vec<String>,
    },
    /// Power × time: `watts / tokens_per_second`.
    Estimated {
        joules_per_token: f64,
        /// Why nothing was measured.
        reason: String,
    },
}

impl EnergyPerToken {
    // ANCHOR: estimate
    /// The estimate when nothing is measured: a device drawing `watts`
    /// while it generates `tokens_per_second` spends `watts /
    /// tokens_per_second` joules on each token.
    pub fn estimate(watts: f64, tokens_per_second: f64, reason: impl Into<String>) -> Result<Self> {
        let watts = super::inputs::non_negative("power under load", watts, "W")?;
        if !(tokens_per_second.is_finite() && tokens_per_second > 0.0) {
            return Err(Error::invalid(
                "throughput",
                format!("{tokens_per_second} tokens/s: it must be a finite number above 0"),
            ));
        }
        Ok(EnergyPerToken::Estimated {
            joules_per_token: watts / tokens_per_second,
            reason: reason.into(),
        })
    }
    // ANCHOR_END: estimate

    /// A measurement: `joules` spent while `tokens` were generated in
    /// `seconds`.
    pub fn measured(joules: f64, seconds: f64, tokens: u64, zones: Vec<String>) -> Result<Self> {
        if tokens == 0 {
            return Err(Error::invalid(
                "energy measurement",
                "no token was generated: there is nothing to divide the energy by",
            ));
        }
        if !(joules.is_finite() && joules >= 0.0) {
            return Err(Error::invalid(
                "energy measurement",
                format!("{joules} J is not an energy"),
            ));
        }
        Ok(EnergyPerToken::Measured {
            joules_per_token: joules / tokens as f64,
            joules,
            seconds,
            tokens,
            zones,
        })
    }

    pub fn joules_per_token(&self) -> f64 {
        match self {
            EnergyPerToken::Measured {
                joules_per_token, ..
            }
            | EnergyPerToken::Estimated {
                joules_per_token, ..
            } => *joules_per_token,
        }
    }

    /// Kilowatt-hours per million tokens.
    pub fn kwh_per_million(&self) -> f64 {
        self.joules_per_token() * 1e6 / JOULES_PER_KWH
    }

    pub fn is_measured(&self) -> bool {
        matches!(self, EnergyPerToken::Measured { .. })
    }

    /// One line: the figure, and whether it was measured or estimated.
    pub fn describe(&self) -> String {
        match self {
            EnergyPerToken::Measured {
                joules_per_token,
                joules,
                seconds,
                tokens,
                zones,
            } => format!(
                "{joules_per_token:.3} J a token, measured by RAPL ({}): {joules:.1} J over {seconds:.2} s for {tokens} tokens, the whole CPU package, other processes included",
                zones.join(" + ")
            ),
            EnergyPerToken::Estimated {
                joules_per_token,
                reason,
            } => format!(
                "{joules_per_token:.3} J a token, estimated (power under load / tokens per second): {reason}"
            ),
        }
    }
}

/// A RAPL package zone.
#[derive(Debug, Clone)]
struct Zone {
    /// Its `name` file (`package-0`), or its directory's name.
    name: String,
    energy_uj: PathBuf,
    /// Where the counter wraps around (0: unknown).
    max_range_uj: u64,
}

/// The package-level RAPL counters of this machine.
#[derive(Debug, Clone)]
pub struct Rapl {
    zones: Vec<Zone>,
}

fn read_u64(path: &Path) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.trim().parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("`{}` is not a counter: {e}", text.trim()),
        )
    })
}

impl Rapl {
    /// The counters under [`POWERCAP`], or why there are none.
    pub fn probe() -> std::result::Result<Rapl, String> {
        Self::probe_at(Path::new(POWERCAP))
    }

    /// The package zones under `root` (`intel-rapl:0`, `intel-rapl:1`;
    /// their subzones `intel-rapl:0:0` are parts of the package and are not
    /// added again), each readable, or the reason there are none.
    pub fn probe_at(root: &Path) -> std::result::Result<Rapl, String> {
        let entries = std::fs::read_dir(root).map_err(|e| {
            format!(
                "RAPL is absent: {} cannot be read ({e}); the kernel exposes no power-capping zones here",
                root.display()
            )
        })?;
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix("intel-rapl:"))
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains(':'))
            })
            .collect();
        dirs.sort();
        if dirs.is_empty() {
            return Err(format!(
                "RAPL is absent: {} has no intel-rapl:N zone (no RAPL counter on this machine, as in most virtual machines)",
                root.display()
            ));
        }
        let mut zones = vec![];
        for dir in dirs {
            let energy_uj = dir.join("energy_uj");
            if let Err(e) = read_u64(&energy_uj) {
                let why = if e.kind() == std::io::ErrorKind::PermissionDenied {
                    " (kernels patched for CVE-2020-8694 let only root read it)"
                } else {
                    ""
                };
                return Err(format!(
                    "RAPL is unreadable: {}: {e}{why}",
                    energy_uj.display()
                ));
            }
            let name = std::fs::read_to_string(dir.join("name"))
                .map(|n| n.trim().to_string())
                .unwrap_or_else(|_| {
                    dir.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
            zones.push(Zone {
                name,
                energy_uj,
                max_range_uj: read_u64(&dir.join("max_energy_range_uj")).unwrap_or(0),
            });
        }
        Ok(Rapl { zones })
    }

    /// The zones' names.
    pub fn zones(&self) -> Vec<String> {
        self.zones.iter().map(|z| z.name.clone()).collect()
    }

    /// Every zone's counter now, in microjoules.
    pub fn read(&self) -> Result<Vec<u64>> {
        self.zones
            .iter()
            .map(|z| read_u64(&z.energy_uj).map_err(|e| Error::io(&z.energy_uj, e)))
            .collect()
    }

    /// Joules spent between two readings, each counter's wrap-around
    /// undone (one wrap at most between the readings).
    pub fn joules_between(&self, before: &[u64], after: &[u64]) -> Result<f64> {
        if before.len() != self.zones.len() || after.len() != self.zones.len() {
            return Err(Error::invalid(
                "RAPL readings",
                format!(
                    "{} and {} counters for {} zones",
                    before.len(),
                    after.len(),
                    self.zones.len()
                ),
            ));
        }
        let mut uj = 0u128;
        for ((z, &b), &a) in self.zones.iter().zip(before).zip(after) {
            uj += if a >= b {
                u128::from(a - b)
            } else if z.max_range_uj >= b {
                u128::from(z.max_range_uj - b) + u128::from(a)
            } else {
                return Err(Error::invalid(
                    "RAPL readings",
                    format!(
                        "zone {} went back from {b} to {a} µJ with no known wrap-around",
                        z.name
                    ),
                ));
            };
        }
        Ok(uj as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(root: &Path, dir: &str, name: &str, uj: u64, max: u64) {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(d.join("energy_uj"), format!("{uj}\n")).unwrap();
        std::fs::write(d.join("max_energy_range_uj"), format!("{max}\n")).unwrap();
    }

    #[test]
    fn absent_rapl_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = Rapl::probe_at(&tmp.path().join("powercap")).unwrap_err();
        assert!(missing.contains("absent"), "{missing}");
        // A powercap directory with other zones only.
        std::fs::create_dir_all(tmp.path().join("dtpm")).unwrap();
        let none = Rapl::probe_at(tmp.path()).unwrap_err();
        assert!(none.contains("no intel-rapl:N zone"), "{none}");
    }

    #[test]
    fn packages_are_summed_and_subzones_left_out() {
        let tmp = tempfile::tempdir().unwrap();
        zone(
            tmp.path(),
            "intel-rapl:0",
            "package-0",
            1_000_000,
            10_000_000,
        );
        zone(tmp.path(), "intel-rapl:0:0", "core", 500_000, 10_000_000);
        zone(
            tmp.path(),
            "intel-rapl:1",
            "package-1",
            9_999_000,
            10_000_000,
        );
        let rapl = Rapl::probe_at(tmp.path()).unwrap();
        assert_eq!(rapl.zones(), ["package-0", "package-1"]);
        let before = rapl.read().unwrap();
        assert_eq!(before, [1_000_000, 9_999_000]);
        // Package 0 spends 2 J; package 1 wraps: 1 000 µJ to the top of
        // its range, then 499 000 from 0.
        let after = [3_000_000, 499_000];
        let j = rapl.joules_between(&before, &after).unwrap();
        assert!((j - (2.0 + 0.5)).abs() < 1e-9, "{j}");
        assert!(rapl.joules_between(&before, &after[..1]).is_err());
    }

    #[test]
    fn the_estimate_is_power_over_throughput() {
        let e = EnergyPerToken::estimate(70.0, 64.5, "no RAPL").unwrap();
        assert!((e.joules_per_token() - 70.0 / 64.5).abs() < 1e-12);
        assert!(!e.is_measured());
        assert!(e.describe().contains("estimated"));
        assert!(e.describe().contains("no RAPL"));
        assert!(EnergyPerToken::estimate(70.0, 0.0, "").is_err());
        assert!(EnergyPerToken::estimate(f64::NAN, 1.0, "").is_err());
        assert!(EnergyPerToken::estimate(-1.0, 1.0, "").is_err());
        let m = EnergyPerToken::measured(10.0, 2.0, 20, vec!["package-0".into()]).unwrap();
        assert_eq!(m.joules_per_token(), 0.5);
        assert!(m.describe().contains("measured by RAPL"));
        assert!(EnergyPerToken::measured(10.0, 2.0, 0, vec![]).is_err());
    }
}
