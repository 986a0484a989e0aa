//! The agent's tools: a calculator, a file reader held to a sandbox, a
//! semantic search over the Codex's chapters, and a short whitelisted
//! `nindub` command.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::tool::Tool;

// ANCHOR: calc
/// Arithmetic on `f64`: `+ - * / %`, `^` (right-associative), parentheses
/// and unary minus, by recursive descent. Input is at most 200 bytes and
/// nests at most 32 deep, so no input can exhaust the stack.
pub struct Calc;

impl Tool for Calc {
    fn name(&self) -> &str {
        "calc"
    }
    fn description(&self) -> &str {
        "evaluates arithmetic, e.g. `17 * (23 - 4) / 2`"
    }
    fn call(&self, input: &str) -> Result<String, String> {
        let v = evaluate(input)?;
        // Integers print without a fraction; others with what f64 holds.
        Ok(if v.fract() == 0.0 && v.abs() < 1e15 {
            format!("{v:.0}")
        } else {
            format!("{v}")
        })
    }
}

/// The value of an arithmetic expression.
pub fn evaluate(text: &str) -> Result<f64, String> {
    if text.len() > 200 {
        return Err(format!("{} bytes: at most 200", text.len()));
    }
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    let v = p.sum()?;
    p.space();
    if p.at != p.s.len() {
        return Err(format!("unexpected `{}` at {}", p.s[p.at] as char, p.at));
    }
    if !v.is_finite() {
        return Err("the result is not a finite number".into());
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self.s.get(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.space();
        self.s.get(self.at).copied()
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut v = self.product()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.at += 1;
            let r = self.product()?;
            v = if op == b'+' { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut v = self.power()?;
        while let Some(op @ (b'*' | b'/' | b'%')) = self.peek() {
            self.at += 1;
            let r = self.power()?;
            if op != b'*' && r == 0.0 {
                return Err("division by zero".into());
            }
            v = match op {
                b'*' => v * r,
                b'/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.unary()?;
        if self.peek() == Some(b'^') {
            self.at += 1;
            let exp = self.nested(Self::power)?;
            return Ok(base.powf(exp));
        }
        Ok(base)
    }

    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(b'-') => {
                self.at += 1;
                Ok(-self.nested(Self::unary)?)
            }
            Some(b'(') => {
                self.at += 1;
                let v = self.nested(Self::sum)?;
                if self.peek() != Some(b')') {
                    return Err(format!("a `(` is not closed (at {})", self.at));
                }
                self.at += 1;
                Ok(v)
            }
            _ => self.number(),
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Result<f64, String>) -> Result<f64, String> {
        self.depth += 1;
        if self.depth > 32 {
            return Err("nested more than 32 deep".into());
        }
        let v = f(self);
        self.depth -= 1;
        v
    }

    fn number(&mut self) -> Result<f64, String> {
        self.space();
        let start = self.at;
        while self
            .s
            .get(self.at)
            .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
        {
            self.at += 1;
        }
        if matches!(self.s.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.s.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
                self.at += 1;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.at]).unwrap_or_default();
        if text.is_empty() {
            return Err(match self.s.get(self.at) {
                Some(b) => format!("expected a number at {}, found `{}`", self.at, *b as char),
                None => "expected a number at the end".into(),
            });
        }
        text.parse()
            .map_err(|_| format!("`{text}` is not a number"))
    }
}
// ANCHOR_END: calc

// ANCHOR: sandbox
/// Reads a text file inside one directory, never outside it.
pub struct ReadFile {
    root: PathBuf,
    max_bytes: usize,
}

impl ReadFile {
    /// A reader of the files under `root` (which must exist), showing at
    /// most `max_bytes` of each.
    pub fn new(root: &Path, max_bytes: usize) -> std::io::Result<Self> {
        Ok(ReadFile {
            root: root.canonicalize()?,
            max_bytes,
        })
    }

    /// The file `relative` names, if it lies inside the sandbox once every
    /// `..` and symbolic link is resolved.
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, String> {
        let rel = Path::new(relative.trim());
        if relative.trim().is_empty() {
            return Err("no path given".into());
        }
        if rel.is_absolute() {
            return Err(format!(
                "`{}` is absolute; give a path inside the sandbox",
                rel.display()
            ));
        }
        let full = self
            .root
            .join(rel)
            .canonicalize()
            .map_err(|e| format!("`{}`: {e}", rel.display()))?;
        if !full.starts_with(&self.root) {
            return Err(format!("`{}` leads outside the sandbox", rel.display()));
        }
        if !full.is_file() {
            return Err(format!("`{}` is not a file", rel.display()));
        }
        Ok(full)
    }
}
// ANCHOR_END: sandbox

impl Tool for ReadFile {
    fn name(&self) -> &str {
        "read_file"
    }
    fn description(&self) -> &str {
        "reads a text file in the sandbox, e.g. `notes/plan.md`"
    }
    fn call(&self, input: &str) -> Result<String, String> {
        use std::io::Read;
        let path = self.resolve(input)?;
        let mut bytes = vec![];
        std::fs::File::open(&path)
            .and_then(|f| f.take(self.max_bytes as u64 + 1).read_to_end(&mut bytes))
            .map_err(|e| format!("`{}`: {e}", input.trim()))?;
        let more = bytes.len() > self.max_bytes;
        bytes.truncate(self.max_bytes);
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if more {
            text.push_str("… (the file goes on)");
        }
        Ok(text)
    }
}

/// A sentence embedder: text in, vector out.
pub type Embed = Box<dyn Fn(&str) -> crate::error::Result<Vec<f32>> + Send + Sync>;

/// A semantic search over passages: the question embedded, the passages
/// ranked by cosine ([`crate::search::Index`]).
pub struct Search {
    index: crate::search::Index,
    embed: Embed,
    k: usize,
}

impl Search {
    pub fn new(index: crate::search::Index, embed: Embed, k: usize) -> Self {
        Search { index, embed, k }
    }
}

impl Search {
    /// A search over the Markdown pages under `dir` (the Codex's chapters),
    /// embedded by MiniLM. The index is built once per content: cached in
    /// `cache` under the SHA-256 of the pages, written to a temporary file
    /// and renamed, so an interrupted build leaves no half index.
    pub fn over_pages(dir: &Path, cache: &Path, k: usize) -> crate::error::Result<Search> {
        use crate::error::Error;
        use sha2::{Digest, Sha256};
        let mut pages = vec![];
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
            for entry in entries {
                let path = entry.map_err(|e| Error::io(&d, e))?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "md") {
                    pages.push(path);
                }
            }
        }
        pages.sort();
        if pages.is_empty() {
            return Err(Error::invalid(
                "search pages",
                format!("no Markdown page under {}", dir.display()),
            ));
        }
        let mut hash = Sha256::new();
        let mut passages = vec![];
        for page in &pages {
            let text = std::fs::read_to_string(page).map_err(|e| Error::io(page, e))?;
            hash.update(
                page.strip_prefix(dir)
                    .unwrap_or(page)
                    .to_string_lossy()
                    .as_bytes(),
            );
            hash.update(text.as_bytes());
            passages.extend(crate::search::passages(&text, 12));
        }
        let key: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let (model, _) = crate::compress::qmodel::MiniLm::load(
            &crate::assets::minilm()?,
            None,
            &candle_core::Device::Cpu,
        )?;
        let file = cache.join(format!("search-index-{}.json", &key[..16]));
        let vectors: Vec<Vec<f32>> = match std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Vec<f32>>>(&b).ok())
            .filter(|v| v.len() == passages.len())
        {
            Some(v) => v,
            None => {
                let v = passages
                    .iter()
                    .map(|p| model.embed(&p.text))
                    .collect::<crate::error::Result<Vec<_>>>()?;
                std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
                let bytes = serde_json::to_vec(&v)
                    .map_err(|e| Error::invalid("search index", e.to_string()))?;
                crate::fsx::write_atomic(&file, &bytes)?;
                v
            }
        };
        let index = crate::search::Index::new(passages, vectors)?;
        Ok(Search::new(index, Box::new(move |q| model.embed(q)), k))
    }
}

impl Tool for Search {
    fn name(&self) -> &str {
        "search"
    }
    fn description(&self) -> &str {
        "finds the Codex's passages nearest a question, e.g. `what is a super-block`"
    }
    fn call(&self, input: &str) -> Result<String, String> {
        let q = (self.embed)(input).map_err(|e| e.to_string())?;
        let hits = self.index.search(&q, self.k).map_err(|e| e.to_string())?;
        Ok(hits
            .iter()
            .map(|&(i, score)| {
                let p = &self.index.passages[i];
                format!("[{score:.2}] {}: {}", p.heading, p.text)
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// A short `nindub` command from a whitelist, run as a child process and
/// killed when it outlives its time.
pub struct Nindub {
    exe: PathBuf,
    allowed: Vec<String>,
    timeout: Duration,
}

impl Nindub {
    /// `exe` is the `nindub` executable; `allowed` the subcommands it may
    /// run (`estimate`, `inspect`, `tokenize`).
    pub fn new(exe: PathBuf, allowed: &[&str], timeout: Duration) -> Self {
        Nindub {
            exe,
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            timeout,
        }
    }
}

impl Tool for Nindub {
    fn name(&self) -> &str {
        "nindub"
    }
    fn description(&self) -> &str {
        "runs a nindub command, e.g. `estimate --model llama-3-8b --precision int4-g32`"
    }
    fn call(&self, input: &str) -> Result<String, String> {
        let args: Vec<&str> = input.split_whitespace().collect();
        match args.first() {
            Some(cmd) if self.allowed.iter().any(|a| a == cmd) => {}
            Some(cmd) => {
                return Err(format!(
                    "`{cmd}` is not allowed (allowed: {})",
                    self.allowed.join(", ")
                ));
            }
            None => return Err("no command given".into()),
        }
        let mut child = Command::new(&self.exe)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not run {}: {e}", self.exe.display()))?;
        // Drain both pipes while waiting: a child whose output fills a
        // pipe would otherwise block until it is killed.
        let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = vec![];
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut bytes);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            })
        };
        use std::io::Read;
        let out = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < self.timeout => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("killed after {:.1} s", self.timeout.as_secs_f64()));
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        let (out, err) = (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        );
        if status.success() {
            Ok(out)
        } else {
            Err(format!("{status}: {}", err.trim()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calculator_follows_precedence_and_refuses_what_it_cannot_read() {
        for (text, want) in [
            ("17 * 23", 391.0),
            ("1 + 2 * 3", 7.0),
            ("(1 + 2) * 3", 9.0),
            ("2 ^ 3 ^ 2", 512.0),
            ("-2 ^ 2", 4.0),
            ("10 / 4", 2.5),
            ("7 % 4", 3.0),
            ("1.5e3 - 500", 1000.0),
            (" - ( - 3 ) ", 3.0),
        ] {
            assert_eq!(evaluate(text), Ok(want), "{text}");
        }
        assert_eq!(Calc.call("17*23"), Ok("391".into()));
        assert_eq!(Calc.call("1/3"), Ok((1.0f64 / 3.0).to_string()));
        for (text, says) in [
            ("1 / 0", "division by zero"),
            ("(1 + 2", "not closed"),
            ("2 +", "expected a number"),
            ("two", "expected a number"),
            ("1 2", "unexpected `2`"),
            ("1..2", "not a number"),
            ("10 ^ 400", "finite"),
        ] {
            let e = evaluate(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(evaluate(&"(".repeat(40)).unwrap_err().contains("32 deep"));
        assert!(
            evaluate(&"1+".repeat(120))
                .unwrap_err()
                .contains("at most 200")
        );
    }

    #[test]
    fn the_sandbox_holds_against_dot_dot_absolute_paths_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("box");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/note.txt"), "inside").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
        let tool = ReadFile::new(&root, 4).unwrap();
        assert_eq!(
            tool.call("sub/note.txt"),
            Ok("insi… (the file goes on)".into())
        );
        assert_eq!(
            tool.call("sub/../sub/note.txt").map(|t| !t.is_empty()),
            Ok(true)
        );
        for (path, says) in [
            ("../secret.txt", "outside the sandbox"),
            ("link.txt", "outside the sandbox"),
            ("/etc/passwd", "absolute"),
            ("sub", "not a file"),
            ("missing.txt", "missing.txt"),
            ("", "no path"),
        ] {
            let e = tool.call(path).unwrap_err();
            assert!(e.contains(says), "{path}: {e}");
        }
    }

    #[test]
    fn a_command_runs_only_from_the_whitelist_and_is_killed_in_time() {
        let sleep = Nindub::new(PathBuf::from("sleep"), &["5"], Duration::from_millis(200));
        let started = Instant::now();
        let e = sleep.call("5").unwrap_err();
        assert!(e.contains("killed after 0.2 s"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(sleep.call("rm -rf /").unwrap_err().contains("not allowed"));
        assert!(sleep.call("  ").unwrap_err().contains("no command"));
        let echo = Nindub::new(PathBuf::from("echo"), &["hello"], Duration::from_secs(5));
        assert_eq!(echo.call("hello world"), Ok("hello world\n".into()));
    }
}
