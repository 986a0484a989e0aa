//! The Speaking Stone against a hostile but fair client: slow and idle
//! connections, more connections than it holds, requests a browser page
//! could forge, limits that would make the server useless. Each test
//! failed before the defence it names existed.

mod common;
use common::raw;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use candle_core::Device;
use nindub::assets;
use nindub::model::generate::Generator;
use nindub::serve::client::Client;
use nindub::serve::{ServeConfig, Server};

fn generator() -> Generator {
    Generator::load(&assets::smollm2().unwrap(), &Device::Cpu).unwrap()
}

fn start(edit: impl FnOnce(&mut ServeConfig)) -> Server {
    let mut cfg = ServeConfig::new("stone");
    cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    edit(&mut cfg);
    Server::start(generator(), cfg).unwrap()
}

fn get(addr: SocketAddr, path: &str, host: &str, extra: &str) -> (u16, String, String) {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n"),
    )
}

/// Whether the server closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 or similar before the close
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_and_idle_connections_are_closed_and_the_server_still_answers() {
    let server = start(|c| {
        c.header_timeout = Duration::from_secs(1);
        c.max_connections = 8;
    });
    let a = server.addr();
    // Idle: connects and says nothing.
    let mut idle = TcpStream::connect(a).unwrap();
    // Slowloris: a header byte every 200 ms, never finishing.
    let mut slow = TcpStream::connect(a).unwrap();
    let started = Instant::now();
    let trickle = {
        let mut s = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for b in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)),
        "idle connection kept"
    );
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)),
        "slowloris kept"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    trickle.join().unwrap();
    // More connections than the cap: the extra ones get a 503 at once,
    // and /health answers as soon as the idle ones are timed out.
    let held: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(a).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let (status, head, body) = get(a, "/health", "127.0.0.1", "");
    assert_eq!(status, 503, "{head}{body}");
    assert!(head.contains("retry-after"), "{head}");
    assert!(body.contains("too_many_connections"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(2));
    let t = Instant::now();
    let answered = loop {
        let (status, _, _) = get(a, "/health", "127.0.0.1", "");
        if status == 200 || t.elapsed() > Duration::from_secs(10) {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(answered, 200, "the server never answered again");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    drop(held);
    let metrics = Client::new(&server.url()).get("/metrics").unwrap().1;
    let refused: f64 = metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("nindub_connections_refused_total ")?
                .parse()
                .ok()
        })
        .unwrap();
    assert!(refused >= 1.0);
}

#[test]
fn a_body_that_never_arrives_is_answered_408() {
    let server = start(|c| c.body_timeout = Duration::from_secs(1));
    let t = Instant::now();
    let (status, _, body) = raw(
        server.addr(),
        "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\":",
    );
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("body_timeout"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn what_a_browser_page_could_forge_is_refused() {
    let server = start(|_| {});
    let a = server.addr();
    let port = a.port();
    // DNS rebinding: the attacker's name, resolved to 127.0.0.1.
    let (status, _, body) = get(a, "/v1/models", &format!("evil.example:{port}"), "");
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("--allowed-host"), "{body}");
    let (status, _, _) = raw(a, "GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(status, 421, "no Host header");
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]".into(),
    ] {
        assert_eq!(get(a, "/health", &host, "").0, 200, "{host}");
    }
    // A "simple" cross-site POST: text/plain needs no preflight.
    let body = r#"{"prompt": "Hi", "max_tokens": 1}"#;
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, _, text) = raw(
            a,
            format!(
                "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert_eq!(status, 415, "{ct}: {text}");
    }
    // Framing and sniffing, on the page and on an error alike.
    for path in ["/", "/nothing"] {
        let (_, head, _) = get(a, path, "127.0.0.1", "");
        assert!(head.contains("x-frame-options: deny"), "{path}: {head}");
        assert!(head.contains("frame-ancestors 'none'"), "{head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    }
    // The page keeps its own policy beside the new directive.
    let (_, head, _) = get(a, "/", "127.0.0.1", "");
    assert!(head.contains("default-src 'self'"), "{head}");
    // A configured name is served.
    let named = start(|c| c.allowed_hosts = vec!["stone.lan".into()]);
    assert_eq!(get(named.addr(), "/health", "stone.lan:8080", "").0, 200);
}

#[test]
fn metrics_are_the_keys_unless_made_public() {
    let keyed = start(|c| c.api_key = Some("k".into()));
    let a = keyed.addr();
    assert_eq!(get(a, "/metrics", "127.0.0.1", "").0, 401);
    assert_eq!(
        get(a, "/metrics", "127.0.0.1", "Authorization: Bearer k\r\n").0,
        200
    );
    // RFC 7235: the scheme's name is case-insensitive.
    assert_eq!(
        get(a, "/metrics", "127.0.0.1", "Authorization: bearer k\r\n").0,
        200
    );
    assert_eq!(
        get(a, "/v1/models", "127.0.0.1", "Authorization: BEARER k\r\n").0,
        200
    );
    assert_eq!(get(a, "/health", "127.0.0.1", "").0, 200);
    let public = start(|c| {
        c.api_key = Some("k".into());
        c.public_metrics = true;
    });
    assert_eq!(get(public.addr(), "/metrics", "127.0.0.1", "").0, 200);
    assert_eq!(get(public.addr(), "/v1/models", "127.0.0.1", "").0, 401);
}

#[test]
fn useless_limits_are_refused_before_the_model_loads() {
    type Edit = Box<dyn Fn(&mut ServeConfig)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("max_body_bytes", Box::new(|c| c.max_body_bytes = 0)),
        ("max_tokens", Box::new(|c| c.max_tokens = 0)),
        ("max_prompt_tokens", Box::new(|c| c.max_prompt_tokens = 0)),
        ("timeout", Box::new(|c| c.timeout = Duration::ZERO)),
        ("max_connections", Box::new(|c| c.max_connections = 0)),
        ("queue", Box::new(|c| c.queue = 0)),
        ("empty", Box::new(|c| c.api_key = Some(String::new()))),
        // A pass holds every decoding sequence's token: at most 64 rows.
        ("parallel 65", Box::new(|c| c.parallel = 65)),
        ("pass_rows 4", Box::new(|c| c.pass_rows = 4)),
        ("pass_rows 65", Box::new(|c| c.pass_rows = 65)),
    ];
    for (needle, edit) in cases {
        let mut cfg = ServeConfig::new("stone");
        edit(&mut cfg);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(ServeConfig::new("stone").validate().is_ok());
}
