//! Data versions the way DVC names them: the md5 of a file's bytes, and
//! for a directory the md5 of a JSON listing of its files, with `.dir`
//! appended. Computing them here, exactly as `dvc add` does, lets a run
//! record say which data it read in DVC's own words, and lets the data be
//! fetched back by that name from a DVC remote without DVC installed.
//!
//! DVC 3.x hashes a file's raw bytes (`md5sum` gives the same hex); DVC 2.x
//! first turned a text file's CRLF into LF (`md5-dos2unix`), which this
//! module does not do. A directory is listed as `[{"md5": …, "relpath":
//! …}, …]`, sorted by relative path (`/` separators), serialised as
//! Python's `json.dumps(…, sort_keys=True)` writes it: with a space after
//! `,` and `:`, and every non-ASCII character escaped. A compact
//! serialisation of the same listing hashes differently.

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What DVC records of a file or a directory: its md5 (a directory's ends
/// in `.dir`), its size in bytes, and for a directory the number of files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHash {
    pub md5: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfiles: Option<u64>,
}

impl DataHash {
    pub fn is_dir(&self) -> bool {
        self.md5.ends_with(".dir")
    }
}

/// One file of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub md5: String,
    pub relpath: String,
}

/// The lowercase hex md5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The md5 and size of one file, streamed (a model of gigabytes is not
/// read into memory).
pub fn hash_file(path: &Path) -> Result<DataHash> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(DataHash {
        md5: hex(&hasher.finalize()),
        size,
        nfiles: None,
    })
}

// ANCHOR: listing
/// The bytes DVC hashes for a directory: the entries sorted by `relpath`,
/// as Python's `json.dumps(entries, sort_keys=True)` prints them.
pub fn dir_listing_json(entries: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.relpath.cmp(&b.relpath));
    let items: Vec<String> = sorted
        .iter()
        .map(|e| {
            format!(
                "{{\"md5\": {}, \"relpath\": {}}}",
                py_json_str(&e.md5),
                py_json_str(&e.relpath)
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii=True`):
/// quotes and backslashes escaped, control characters and everything
/// beyond ASCII as `\uXXXX` (UTF-16, so two escapes past U+FFFF).
fn py_json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}
// ANCHOR_END: listing

/// The regular files under `dir` that DVC would list: (`/`-separated path
/// relative to `dir`, path).
pub fn files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut files = vec![];
    walk(dir, dir, &mut files)?;
    Ok(files)
}

/// A directory's files with their md5s (DVC's listing), and its hash.
pub fn hash_dir(dir: &Path) -> Result<(DataHash, Vec<Entry>)> {
    let files = files(dir)?;
    let mut entries = Vec::with_capacity(files.len());
    let mut size = 0;
    for (relpath, path) in files {
        let h = hash_file(&path)?;
        size += h.size;
        entries.push(Entry {
            md5: h.md5,
            relpath,
        });
    }
    entries.sort_by(|a, b| a.relpath.cmp(&b.relpath));
    let md5 = format!("{}.dir", md5_hex(dir_listing_json(&entries).as_bytes()));
    Ok((
        DataHash {
            md5,
            size,
            nfiles: Some(entries.len() as u64),
        },
        entries,
    ))
}

/// The hash of a file or a directory, as `dvc add PATH` records it.
pub fn hash_path(path: &Path) -> Result<DataHash> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        Ok(hash_dir(path)?.0)
    } else {
        hash_file(path)
    }
}

/// Regular files under `dir`, with `/`-separated paths relative to `root`.
/// DVC's own folders and git's are not data; symbolic links are followed
/// as DVC follows them.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let read = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in read {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        if name == ".git" || name == ".dvc" {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
    Ok(())
}

/// A `.dvc` pointer file: the one output DVC tracks, as it writes it.
pub fn pointer_yaml(path_name: &str, hash: &DataHash) -> String {
    let mut s = format!("outs:\n- md5: {}\n  size: {}\n", hash.md5, hash.size);
    if let Some(n) = hash.nfiles {
        s.push_str(&format!("  nfiles: {n}\n"));
    }
    s.push_str(&format!("  hash: md5\n  path: {path_name}\n"));
    s
}

/// Reads the first output's `md5`, `size`, `nfiles` and `path` from a `.dvc`
/// file's text (the fields DVC writes one per line; no YAML library
/// needed for them).
pub fn parse_pointer(text: &str) -> Result<(String, DataHash)> {
    let field = |key: &str| {
        text.lines()
            .map(|l| l.trim_start_matches(['-', ' ']))
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
    };
    let md5 = field("md5:").ok_or_else(|| Error::invalid(".dvc file", "no `md5:` field"))?;
    let path = field("path:").ok_or_else(|| Error::invalid(".dvc file", "no `path:` field"))?;
    let size = match field("size:") {
        Some(s) => s
            .parse()
            .map_err(|_| Error::invalid(".dvc file", format!("size `{s}` is not a number")))?,
        None => 0,
    };
    let nfiles = field("nfiles:").and_then(|s| s.parse().ok());
    Ok((path, DataHash { md5, size, nfiles }))
}

/// A DVC remote (or cache) on a local disk: objects under
/// `files/md5/<first two hex>/<the other thirty>`, a directory's listing
/// stored as an object named by its `.dir` hash.
#[derive(Clone, Debug)]
pub struct Remote {
    pub root: PathBuf,
}

impl Remote {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Remote { root: root.into() }
    }

    /// Where the object named `md5` lives (DVC 3.x layout).
    pub fn object(&self, md5: &str) -> PathBuf {
        let (head, tail) = md5.split_at(md5.len().min(2));
        self.root.join("files").join("md5").join(head).join(tail)
    }

    /// Whether the remote holds the object (and, for a directory, every
    /// file it lists).
    pub fn has(&self, md5: &str) -> bool {
        if !valid_md5(md5) || !self.object(md5).is_file() {
            return false;
        }
        if md5.ends_with(".dir") {
            return self
                .listing(md5)
                .is_ok_and(|entries| entries.iter().all(|e| self.object(&e.md5).is_file()));
        }
        true
    }

    fn listing(&self, md5: &str) -> Result<Vec<Entry>> {
        let path = self.object(md5);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            context: format!("the DVC directory listing {}", path.display()),
            source: e,
        })
    }

    /// Restores the data named `md5` at `dest` (a file, or a directory
    /// rebuilt from its listing), checking every file's md5 on the way:
    /// a corrupted remote is refused, never copied. Files are written under
    /// a temporary name and renamed.
    pub fn fetch(&self, md5: &str, dest: &Path) -> Result<()> {
        if !valid_md5(md5) {
            return Err(Error::invalid(
                "DVC hash",
                format!("`{md5}` is not an md5 (32 hex digits, `.dir` for a directory)"),
            ));
        }
        if md5.ends_with(".dir") {
            for e in self.listing(md5)? {
                if e.relpath.split('/').any(|c| c == ".." || c.is_empty()) {
                    return Err(Error::invalid(
                        "DVC directory listing",
                        format!("relpath `{}` leaves the directory", e.relpath),
                    ));
                }
                self.fetch_file(&e.md5, &dest.join(&e.relpath))?;
            }
            Ok(())
        } else {
            self.fetch_file(md5, dest)
        }
    }

    fn fetch_file(&self, md5: &str, dest: &Path) -> Result<()> {
        let src = self.object(md5);
        if !src.is_file() {
            return Err(Error::invalid(
                "DVC remote",
                format!(
                    "{} has no object {md5} (was `dvc push` run after `dvc add`?)",
                    self.root.display()
                ),
            ));
        }
        let got = hash_file(&src)?;
        if got.md5 != md5 {
            return Err(Error::invalid(
                "DVC remote",
                format!(
                    "object {} holds md5 {}, not {md5}: the remote is corrupted",
                    src.display(),
                    got.md5
                ),
            ));
        }
        let mut out = crate::fsx::AtomicFile::create(dest)?;
        let mut reader = std::fs::File::open(&src).map_err(|e| Error::io(&src, e))?;
        std::io::copy(&mut reader, out.file_mut()).map_err(|e| Error::io(dest, e))?;
        out.commit()
    }
}

fn valid_md5(md5: &str) -> bool {
    let hex = md5.strip_suffix(".dir").unwrap_or(md5);
    hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_is_pythons_json_dumps() {
        let entries = vec![
            Entry {
                md5: "b".repeat(32),
                relpath: "z/é.txt".into(),
            },
            Entry {
                md5: "a".repeat(32),
                relpath: "a \"q\".txt".into(),
            },
        ];
        assert_eq!(
            dir_listing_json(&entries),
            format!(
                "[{{\"md5\": \"{}\", \"relpath\": \"a \\\"q\\\".txt\"}}, {{\"md5\": \"{}\", \"relpath\": \"z/\\u00e9.txt\"}}]",
                "a".repeat(32),
                "b".repeat(32)
            )
        );
        assert_eq!(py_json_str("𝄞"), "\"\\ud834\\udd1e\"");
    }

    #[test]
    fn md5_of_known_bytes() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"hello\n"), "b1946ac92492d2347c6235b4d2611184");
    }

    #[test]
    fn pointer_round_trips() {
        let h = DataHash {
            md5: format!("{}.dir", "c".repeat(32)),
            size: 42,
            nfiles: Some(3),
        };
        let (path, back) = parse_pointer(&pointer_yaml("digits", &h)).unwrap();
        assert_eq!((path.as_str(), back), ("digits", h));
        assert!(parse_pointer("outs:\n- size: 3\n").is_err());
    }

    #[test]
    fn a_forged_hash_or_a_corrupt_object_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Remote::new(dir.path());
        let out = dir.path().join("out");
        assert!(remote.fetch("../../etc/passwd", &out).is_err());
        let md5 = md5_hex(b"data");
        let obj = remote.object(&md5);
        std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
        std::fs::write(&obj, b"tampered").unwrap();
        let err = remote.fetch(&md5, &out).unwrap_err().to_string();
        assert!(err.contains("corrupted"), "{err}");
        assert!(!out.exists());
        std::fs::write(&obj, b"data").unwrap();
        remote.fetch(&md5, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"data");
    }
}
