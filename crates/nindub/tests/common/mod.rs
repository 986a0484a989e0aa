//! What the tests that run `nindub` as a child process or talk to a server
//! share: a real `nindub serve` on a free loopback port, one raw HTTP
//! exchange, and the kernel's view of a process's memory.

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

/// One raw HTTP/1.1 exchange, the request sent as it is: (status, the
/// head in lowercase, body). A connection the server resets counts as the
/// end of the answer.
pub fn raw(addr: std::net::SocketAddr, request: impl AsRef<[u8]>) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    s.write_all(request.as_ref()).unwrap();
    let mut out = vec![];
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// A series' value on the server's `/metrics` page (`name` with its
/// trailing space, or with its labels).
pub fn metric(client: &nindub::serve::client::Client, name: &str) -> f64 {
    let (_, text) = client.get("/metrics").unwrap();
    text.as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// Polls `/health` until `what` holds (at most a minute).
pub fn wait_for_health(
    client: &nindub::serve::client::Client,
    what: &dyn Fn(&serde_json::Value) -> bool,
) {
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(60) {
        if what(&client.get("/health").unwrap().1) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the server never reached the expected state");
}

/// The "fixed overhead N B" a process printed on stderr.
pub fn overhead(stderr: &str) -> u64 {
    let at = stderr
        .find("fixed overhead ")
        .unwrap_or_else(|| panic!("no overhead reported:\n{stderr}"));
    stderr[at + 15..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable overhead:\n{stderr}"))
}

/// Runs `nindub ARGS` to its end: (stdout, stderr, peak resident bytes).
///
/// The peak is the kernel's high-water mark of the process after `exec`,
/// read every 2 ms until the process is gone (it only grows, and nothing
/// after the last reading but the exit's teardown). Not `ru_maxrss`: Linux
/// keeps in it the test process's own size from before the `exec`.
pub fn run_measured(args: &[String]) -> (String, String, u64) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nindub"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut o, mut e) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || std::io::read_to_string(&mut o).unwrap());
    let err = std::thread::spawn(move || std::io::read_to_string(&mut e).unwrap());
    let mut peak = 0;
    let status = loop {
        if let Some((_, hwm)) = memory_kb(child.id()) {
            peak = peak.max(hwm * 1024);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "nindub {args:?} failed:\n{err}");
    assert!(peak > 0, "no reading of the process's memory");
    (out, err, peak)
}
