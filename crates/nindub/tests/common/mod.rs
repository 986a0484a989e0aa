//! What the tests that run `nindub` as a child process share: a real
//! `nindub serve` on a free loopback port, and the kernel's view of a
//! process's memory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use nindub::assets;

/// A `nindub serve` child process, killed when dropped; what it printed on
/// stderr is collected as it comes.
pub struct Served {
    pub child: Child,
    pub url: String,
    pub stderr: Arc<Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `nindub serve --port 0 --model SMOLLM2 ARGS` and waits for its
/// `listening on URL` line.
pub fn serve(args: &[&str]) -> Served {
    let model = assets::smollm2().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nindub"))
        .args(["serve", "--port", "0", "--model"])
        .arg(&model)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let (sink, pipe) = (stderr.clone(), child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .trim()
        .to_string();
    Served { child, url, stderr }
}

/// A process's resident and peak resident kilobytes (`VmRSS`, `VmHWM`);
/// `None` once it has exited and its memory is gone.
pub fn memory_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
