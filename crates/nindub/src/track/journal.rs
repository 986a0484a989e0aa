//! The local journal: one run record per line (JSON lines), appended. It
//! is where every record goes first, server or not, so nothing is lost
//! offline; `nindub runs sync` replays it into MLflow later.
//!
//! A line is written with one `write` call on a file opened for appending,
//! then flushed to disk: an interruption leaves at worst a torn last line,
//! which reading reports (with its line number) and skips, keeping every
//! record before and after it.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::record::RunRecord;
use crate::error::{Error, Result};

/// A journal file.
#[derive(Clone, Debug)]
pub struct Journal {
    pub path: PathBuf,
}

/// What reading a journal found.
#[derive(Debug, Default)]
pub struct Read {
    pub records: Vec<RunRecord>,
    /// Lines that are not records: (line number from 1, why).
    pub bad_lines: Vec<(usize, String)>,
}

impl Journal {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Journal { path: path.into() }
    }

    /// `$NINDUB_RUNS`, else `runs.jsonl` in nindub's cache
    /// (`~/.cache/nindub`).
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("NINDUB_RUNS").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        crate::assets::cache_dir().join("runs.jsonl")
    }

    pub fn append(&self, record: &RunRecord) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|e| Error::Json {
            context: "serialising a run record".into(),
            source: e,
        })?;
        line.push(b'\n');
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Every record; a missing journal is an empty one.
    pub fn read(&self) -> Result<Read> {
        let text = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::default()),
            Err(e) => return Err(Error::io(&self.path, e)),
        };
        let mut read = Read::default();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<RunRecord>(line) {
                Ok(r) => read.records.push(r),
                Err(e) => read.bad_lines.push((i + 1, e.to_string())),
            }
        }
        Ok(read)
    }

    /// The one record whose id starts with `prefix` (at least 4 digits).
    pub fn find(&self, prefix: &str) -> Result<RunRecord> {
        if prefix.len() < 4 {
            return Err(Error::invalid(
                "run id",
                format!("`{prefix}` is too short: give at least 4 hex digits"),
            ));
        }
        let read = self.read()?;
        let mut found = read
            .records
            .into_iter()
            .filter(|r| r.id.starts_with(prefix));
        match (found.next(), found.next()) {
            (Some(r), None) => Ok(r),
            (None, _) => Err(Error::invalid(
                "run id",
                format!("no run {prefix} in {}", display(&self.path)),
            )),
            (Some(_), Some(_)) => Err(Error::invalid(
                "run id",
                format!("`{prefix}` names more than one run; give more digits"),
            )),
        }
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::record::{Agreement, RunRecord};

    fn rec(id: &str) -> RunRecord {
        RunRecord {
            id: id.into(),
            experiment: "e".into(),
            name: "n".into(),
            command: vec![],
            git: None,
            inputs: vec![],
            params: Default::default(),
            metrics: vec![],
            artifacts: vec![],
            agreement: Agreement::Exact,
            start_ms: 1,
            end_ms: 2,
        }
    }

    #[test]
    fn a_torn_line_loses_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path().join("runs.jsonl"));
        assert!(j.read().unwrap().records.is_empty());
        j.append(&rec("aaaa1111")).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&j.path)
            .unwrap();
        f.write_all(b"{\"id\": \"torn").unwrap();
        f.write_all(b"\n").unwrap();
        j.append(&rec("bbbb2222")).unwrap();
        let read = j.read().unwrap();
        assert_eq!(read.records.len(), 2);
        assert_eq!(read.bad_lines.len(), 1);
        assert_eq!(read.bad_lines[0].0, 2);
        assert_eq!(j.find("bbbb").unwrap().id, "bbbb2222");
        assert!(j.find("cccc").is_err());
        assert!(j.find("b").is_err());
    }
}
