use super::Lcg;
use exercises::apprentice::speaking_stone as ss;
use nindub::serve::admission;
use nindub::serve::auth::ApiKey;
use nindub::serve::protocol::{Limits, parse_completion};
use nindub::serve::sse::{Parser, data_until_done};
use serde_json::{Value, json};

// === Trial 1: server-sent events ===

/// The kind of answer a stream carries.
#[derive(Clone, Copy, PartialEq)]
enum Endpoint {
    Chat,
    Completion,
}

/// A chunk's envelope, as `nindub::serve` writes it.
fn envelope(endpoint: Endpoint, choices: Value) -> Value {
    let (id, object) = match endpoint {
        Endpoint::Chat => ("chatcmpl-7", "chat.completion.chunk"),
        Endpoint::Completion => ("cmpl-7", "text_completion"),
    };
    json!({
        "id": id,
        "object": object,
        "created": 1_700_000_000,
        "model": "nindub-test",
        "choices": choices,
    })
}

/// One token's chunk (the shapes of `token_chunk` in `nindub::serve`),
/// with a log-probability for some, as a client that asked for them gets.
fn token_chunk(endpoint: Endpoint, text: &str, with_logprobs: bool) -> Value {
    let logprobs = match (with_logprobs, endpoint) {
        (false, _) => Value::Null,
        (true, Endpoint::Chat) => json!({ "content": [{
            "token": text, "logprob": -0.25, "bytes": text.as_bytes(),
            "top_logprobs": [{ "token": text, "logprob": -0.25, "bytes": text.as_bytes() }],
        }] }),
        (true, Endpoint::Completion) => json!({
            "tokens": [text], "token_logprobs": [-0.25],
            "top_logprobs": [{ text: -0.25 }], "text_offset": [0],
        }),
    };
    let choice = match endpoint {
        Endpoint::Chat => {
            json!({ "index": 0, "delta": { "content": text }, "logprobs": logprobs, "finish_reason": null })
        }
        Endpoint::Completion => {
            json!({ "index": 0, "text": text, "logprobs": logprobs, "finish_reason": null })
        }
    };
    envelope(endpoint, json!([choice]))
}

/// The `data` of every event of a whole answer, as the server sends them:
/// the chat's opening chunk, one chunk per token, the last chunk (its
/// `finish_reason`), the usage chunk, `[DONE]`.
fn answer(endpoint: Endpoint, tokens: &[&str], finish: &str, usage: bool) -> Vec<String> {
    let mut out = vec![];
    if endpoint == Endpoint::Chat {
        out.push(envelope(
            endpoint,
            json!([{ "index": 0, "delta": { "role": "assistant", "content": "" }, "logprobs": null, "finish_reason": null }]),
        ));
    }
    for (i, t) in tokens.iter().enumerate() {
        out.push(token_chunk(endpoint, t, i % 3 == 1));
    }
    let last = match endpoint {
        Endpoint::Chat => {
            json!([{ "index": 0, "delta": {}, "logprobs": null, "finish_reason": finish }])
        }
        Endpoint::Completion => {
            json!([{ "index": 0, "text": "", "logprobs": null, "finish_reason": finish }])
        }
    };
    out.push(envelope(endpoint, last));
    if usage {
        let mut u = envelope(endpoint, json!([]));
        u["usage"] = json!({ "prompt_tokens": 5, "completion_tokens": tokens.len(), "total_tokens": 5 + tokens.len() });
        out.push(u);
    }
    let mut data: Vec<String> = out.iter().map(Value::to_string).collect();
    data.push("[DONE]".into());
    data
}

/// Events framed as axum frames them: `data: ...` and a blank line.
fn frame(events: &[String]) -> String {
    events.iter().map(|d| format!("data: {d}\n\n")).collect()
}

/// The reference: nindub's SSE parser, then the token text of each chunk.
fn reference_tokens(stream: &str) -> Vec<String> {
    data_until_done(stream.as_bytes())
        .iter()
        .filter_map(|d| {
            let chunk: Value = serde_json::from_str(d).ok()?;
            let choice = chunk.get("choices")?.as_array()?.first()?;
            if !choice["finish_reason"].is_null() {
                return None;
            }
            match choice.get("delta") {
                Some(delta) if delta.get("role").is_some() => None,
                Some(delta) => delta["content"].as_str().map(str::to_string),
                None => choice["text"].as_str().map(str::to_string),
            }
        })
        .collect()
}

/// The learner's tokens must be nindub's, and those `expected`.
fn check_stream(what: &str, stream: &str, expected: &[&str]) {
    let reference = reference_tokens(stream);
    assert_eq!(
        reference, expected,
        "{what}: the reference disagrees with the check's table (a bug in the Codex)"
    );
    let mine = ss::stream_tokens(stream);
    assert_eq!(
        mine,
        reference,
        "{what}: expected {reference:?}, got {mine:?}; the stream was\n{}",
        stream.escape_debug()
    );
}

pub fn stream_tokens() {
    let hello = ["Hel", "lo", ",", " wor", "ld", "!"];
    // Text held back (the start of a stop string) still sends one chunk per
    // token; multi-byte characters; text that looks like framing.
    let tricky = [
        "é",
        "",
        "日本",
        "",
        "🦀",
        "\n\n",
        "data: [DONE]",
        ": not a comment",
        "\r\n",
    ];

    let small = frame(&[
        json!({"choices":[{"index":0,"text":"Hel","finish_reason":null}]}).to_string(),
        json!({"choices":[{"index":0,"text":"lo","finish_reason":null}]}).to_string(),
        "[DONE]".into(),
    ]);
    check_stream("the example of the doc comment", &small, &["Hel", "lo"]);

    let chat = answer(Endpoint::Chat, &hello, "stop", true);
    check_stream("a chat stream as nindub sends it", &frame(&chat), &hello);
    let completion = answer(Endpoint::Completion, &hello, "length", false);
    check_stream(
        "a completions stream as nindub sends it",
        &frame(&completion),
        &hello,
    );
    check_stream(
        "multi-byte characters, empty texts, and texts that look like framing",
        &frame(&answer(Endpoint::Chat, &tricky, "stop", false)),
        &tricky,
    );
    check_stream(
        "the same in a completions stream",
        &frame(&answer(Endpoint::Completion, &tricky, "stop", true)),
        &tricky,
    );
    check_stream(
        "no tokens at all",
        &frame(&answer(Endpoint::Chat, &[], "length", true)),
        &[],
    );
    check_stream("an empty stream", "", &[]);
    check_stream("keep-alives only", ":\n\n: ping\n\n:\n\n", &[]);

    let crlf = frame(&chat).replace('\n', "\r\n");
    check_stream("lines that end in \\r\\n", &crlf, &hello);

    // Keep-alives (axum sends `:` and a blank line), comments, other fields.
    let mut busy = String::from(": welcome\n\n:\n\nretry: 3000\n\n");
    for (i, d) in chat.iter().enumerate() {
        busy.push_str(&format!(
            ":\n\nid: {i}\nevent: message\n: a comment inside an event\ndata: {d}\n\n"
        ));
    }
    check_stream("comments, keep-alives, id, event and retry", &busy, &hello);

    // One event's data over several lines: they join with `\n`.
    let multi: String = completion
        .iter()
        .map(|d| {
            let pretty = serde_json::from_str::<Value>(d)
                .map_or(d.clone(), |v| serde_json::to_string_pretty(&v).unwrap());
            let lines: String = pretty.lines().map(|l| format!("data: {l}\n")).collect();
            lines + "\n"
        })
        .collect();
    let events = Parser::new().feed(multi.as_bytes());
    assert!(
        events[0].data.contains('\n'),
        "the multi-line stream has multi-line data (a bug in the Codex)"
    );
    check_stream("JSON chunks spread over several data lines", &multi, &hello);

    let tight: String = chat.iter().map(|d| format!("data:{d}\n\n")).collect();
    check_stream("`data:` without a space", &tight, &hello);

    let mut after_done = frame(&chat);
    after_done.push_str(&frame(&answer(Endpoint::Chat, &["more"], "stop", false)));
    check_stream(
        "chunks after [DONE] are not part of the answer",
        &after_done,
        &hello,
    );

    let error = frame(&[
        token_chunk(Endpoint::Chat, "Hel", false).to_string(),
        json!({ "error": { "message": "the request took longer than the server's time limit", "type": "timeout_error", "param": null, "code": "request_timeout" } }).to_string(),
        "[DONE]".into(),
    ]);
    check_stream("an error in the middle of the stream", &error, &["Hel"]);

    // The connection dropped: the last event never got its blank line.
    let mut cut = frame(&chat[..3]);
    cut.push_str(&format!("data: {}\n", chat[3]));
    check_stream(
        "a stream cut before the end of its last event",
        &cut,
        &["Hel", "lo"],
    );
    let mut cut = frame(&chat[..3]);
    cut.push_str(&format!("data: {}", chat[3]));
    check_stream("a stream cut in the middle of a line", &cut, &["Hel", "lo"]);
}

// === Trial 2: request validation ===

fn limits(max_tokens: usize) -> Limits {
    Limits {
        max_tokens,
        max_prompt_tokens: 4096,
        context: 8192,
        // A server that generates one sequence at a time: `n` must be 1.
        samples: 1,
    }
}

/// What the server answers a body: accepted, or (status, param).
type Verdict = Result<(), (u16, Option<String>)>;

pub fn validate() {
    // (body, max_tokens limit, what nindub answers)
    let ok = Ok(());
    let none = Err((400, None));
    let field = |f: &str| Err((400, Some(f.to_string())));
    let cases: Vec<(&str, usize, Verdict)> = vec![
        // 1, 2: the body as a whole.
        ("", 512, none.clone()),
        ("   \n", 512, none.clone()),
        (r#"{"prompt": "Hi","#, 512, none.clone()),
        (r#"{"prompt": 'Hi'}"#, 512, none.clone()),
        (r#"{"prompt": "Hi"} trailing"#, 512, none.clone()),
        (r#""Hi""#, 512, none.clone()),
        ("42", 512, none.clone()),
        ("null", 512, none.clone()),
        ("true", 512, none.clone()),
        ("[]", 512, none.clone()),
        (r#"["Hi", 16]"#, 512, none.clone()),
        (r#"[{"prompt": "Hi"}]"#, 512, none.clone()),
        // 3: types.
        (r#"{"prompt": 42}"#, 512, field("prompt")),
        (r#"{"prompt": {"text": "Hi"}}"#, 512, field("prompt")),
        (
            r#"{"prompt": "Hi", "temperature": "hot"}"#,
            512,
            field("temperature"),
        ),
        (
            r#"{"prompt": "Hi", "temperature": true}"#,
            512,
            field("temperature"),
        ),
        (r#"{"prompt": "Hi", "top_p": "0.9"}"#, 512, field("top_p")),
        (
            r#"{"prompt": "Hi", "max_tokens": "16"}"#,
            512,
            field("max_tokens"),
        ),
        (
            r#"{"prompt": "Hi", "max_tokens": 16.0}"#,
            512,
            field("max_tokens"),
        ),
        (
            r#"{"prompt": "Hi", "max_tokens": 2.5}"#,
            512,
            field("max_tokens"),
        ),
        (
            r#"{"prompt": "Hi", "max_tokens": [16]}"#,
            512,
            field("max_tokens"),
        ),
        (r#"{"prompt": "Hi", "n": "2"}"#, 512, field("n")),
        // A type error comes before a missing prompt.
        (r#"{"temperature": "hot"}"#, 512, field("temperature")),
        (
            r#"{"prompt": "", "max_tokens": "16"}"#,
            512,
            field("max_tokens"),
        ),
        // 4: the prompt.
        ("{}", 512, field("prompt")),
        (
            r#"{"model": "nindub", "max_tokens": 16}"#,
            512,
            field("prompt"),
        ),
        (r#"{"prompt": null}"#, 512, field("prompt")),
        (r#"{"prompt": ""}"#, 512, field("prompt")),
        (r#"{"prompt": "", "temperature": 5}"#, 512, field("prompt")),
        // 5: n.
        (r#"{"prompt": "Hi", "n": 2}"#, 512, field("n")),
        (r#"{"prompt": "Hi", "n": 0}"#, 512, field("n")),
        (r#"{"prompt": "Hi", "n": -1}"#, 512, field("n")),
        (
            r#"{"prompt": "Hi", "n": 2, "max_tokens": 0}"#,
            512,
            field("n"),
        ),
        (r#"{"prompt": "Hi", "n": 1}"#, 512, ok.clone()),
        (r#"{"prompt": "Hi", "n": null}"#, 512, ok.clone()),
        // 6: max_tokens.
        (
            r#"{"prompt": "Hi", "max_tokens": 0}"#,
            512,
            field("max_tokens"),
        ),
        (
            r#"{"prompt": "Hi", "max_tokens": -5}"#,
            512,
            field("max_tokens"),
        ),
        (
            r#"{"prompt": "Hi", "max_tokens": 513}"#,
            512,
            field("max_tokens"),
        ),
        (
            r#"{"prompt": "Hi", "max_tokens": 1000}"#,
            512,
            field("max_tokens"),
        ),
        (
            r#"{"prompt": "Hi", "max_tokens": 2}"#,
            1,
            field("max_tokens"),
        ),
        (r#"{"prompt": "Hi", "max_tokens": 512}"#, 512, ok.clone()),
        (r#"{"prompt": "Hi", "max_tokens": 1}"#, 1, ok.clone()),
        (r#"{"prompt": "Hi", "max_tokens": 4096}"#, 4096, ok.clone()),
        (
            r#"{"prompt": "Hi", "max_tokens": 9223372036854775807}"#,
            512,
            field("max_tokens"),
        ),
        (
            r#"{"prompt": "Hi", "max_tokens": 1000, "temperature": 9}"#,
            512,
            field("max_tokens"),
        ),
        // 7: temperature.
        (
            r#"{"prompt": "Hi", "temperature": 3}"#,
            512,
            field("temperature"),
        ),
        (
            r#"{"prompt": "Hi", "temperature": 2.5}"#,
            512,
            field("temperature"),
        ),
        (
            r#"{"prompt": "Hi", "temperature": -0.5}"#,
            512,
            field("temperature"),
        ),
        (
            r#"{"prompt": "Hi", "temperature": -1, "top_p": 0}"#,
            512,
            field("temperature"),
        ),
        (r#"{"prompt": "Hi", "temperature": 0}"#, 512, ok.clone()),
        (r#"{"prompt": "Hi", "temperature": 2}"#, 512, ok.clone()),
        (r#"{"prompt": "Hi", "temperature": 0.7}"#, 512, ok.clone()),
        (r#"{"prompt": "Hi", "temperature": null}"#, 512, ok.clone()),
        // 8: top_p.
        (r#"{"prompt": "Hi", "top_p": 0}"#, 512, field("top_p")),
        (r#"{"prompt": "Hi", "top_p": 0.0}"#, 512, field("top_p")),
        (r#"{"prompt": "Hi", "top_p": -0.1}"#, 512, field("top_p")),
        (r#"{"prompt": "Hi", "top_p": 1.5}"#, 512, field("top_p")),
        (r#"{"prompt": "Hi", "top_p": 1}"#, 512, ok.clone()),
        (r#"{"prompt": "Hi", "top_p": 0.01}"#, 512, ok.clone()),
        // Valid bodies.
        (r#"{"prompt": "Hi"}"#, 512, ok.clone()),
        (r#"{"prompt": " "}"#, 512, ok.clone()),
        (r#"{"prompt": "Il était une fois 🦀"}"#, 512, ok.clone()),
        (
            r#"{"model": "nindub", "prompt": "Once upon a time", "max_tokens": 64, "temperature": 0.8, "top_p": 0.95, "n": 1, "stream": true, "stop": ["\n\n"], "seed": 42, "user": "ada"}"#,
            512,
            ok.clone(),
        ),
        (
            "\n  {\n  \"prompt\" : \"Hi\" ,\n  \"max_tokens\" : 1\n  }\n",
            512,
            ok.clone(),
        ),
    ];
    for (body, limit, expected) in cases {
        let theirs = parse_completion(body.as_bytes(), &limits(limit))
            .map(|_| ())
            .map_err(|e| (e.status, e.param));
        assert_eq!(
            theirs, expected,
            "body {body:?}: nindub disagrees with the check's table (a bug in the Codex)"
        );
        let mine = ss::validate(body, limit);
        assert_eq!(
            mine, theirs,
            "body {body:?} (max_tokens limit {limit}): the server answers {theirs:?}, you {mine:?}"
        );
    }
}

// === Trial 3: admission ===

pub fn admit() {
    let examples = [
        ((1, 1, 2, 3.0), Ok(())),
        ((2, 1, 2, 3.0), Err(9)),
        ((0, 0, 0, 0.0), Err(1)),
        ((100, 1, 4, 10.0), Err(120)),
        ((3, 1, 3, 0.3), Err(2)),
        ((8, 0, 8, 0.01), Err(1)),
        ((8, 1, 8, -2.0), Err(1)),
        ((8, 1, 8, f64::INFINITY), Err(120)),
        ((usize::MAX, 0, 8, 0.5), Err(120)),
    ];
    for ((w, r, c, m), expected) in examples {
        assert_eq!(
            admission::admit(w, r, c, m),
            expected,
            "nindub disagrees with the check's table (a bug in the Codex)"
        );
        let mine = ss::admit(w, r, c, m);
        assert_eq!(
            mine, expected,
            "admit(waiting {w}, running {r}, capacity {c}, mean {m} s): expected {expected:?}, got {mine:?}"
        );
    }
    let waitings = [0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 1000, 1 << 40];
    let runnings = [0, 1, 2];
    let capacities = [0, 1, 2, 8, 64];
    let means = [
        0.0,
        1e-9,
        0.001,
        0.1,
        0.25,
        0.3,
        0.5,
        0.9,
        1.0,
        1.5,
        2.7,
        7.0,
        10.0,
        39.99,
        60.0,
        1e9,
        -1.0,
        f64::INFINITY,
        f64::NAN,
    ];
    let mut count = 0;
    for w in waitings {
        for r in runnings {
            for c in capacities {
                for m in means {
                    let expected = admission::admit(w, r, c, m);
                    let mine = ss::admit(w, r, c, m);
                    assert_eq!(
                        mine, expected,
                        "admit(waiting {w}, running {r}, capacity {c}, mean {m} s): expected {expected:?}, got {mine:?}"
                    );
                    count += 1;
                }
            }
        }
    }
    assert_eq!(count, 12 * 3 * 5 * 19);
}

// === Trial 4: constant-time comparison ===

/// `n` pseudo-random bytes.
fn bytes(rng: &mut Lcg, n: usize) -> Vec<u8> {
    (0..n).map(|_| (rng.step() >> 33) as u8).collect()
}

fn same_as_eq(a: &[u8], b: &[u8], what: &str) {
    let mine = ss::constant_time_eq(a, b);
    assert_eq!(
        mine,
        a == b,
        "{what}: {a:?} and {b:?} are {}, you said {}",
        if a == b { "equal" } else { "different" },
        if mine { "equal" } else { "different" }
    );
}

pub fn constant_time_eq() {
    same_as_eq(b"", b"", "two empty slices");
    same_as_eq(b"", b"k", "empty against one byte");
    same_as_eq(b"s3cret", b"s3cret", "the key itself");
    same_as_eq(b"s3cret", b"s3creT", "the last byte differs");
    same_as_eq(b"s3cret", b"S3cret", "the first byte differs");
    same_as_eq(b"s3cret", b"s3cre", "a prefix");
    same_as_eq(b"s3cre", b"s3cret", "a longer guess");
    same_as_eq(b"s3cret", b"s3cret\0", "a trailing zero byte");
    same_as_eq(&[0; 32], &[0; 31], "zeros of different lengths");
    // Differences that cancel if accumulated with ^ or a wrapping +.
    same_as_eq(
        &[1, 1],
        &[0, 0],
        "two equal differences (XOR-ing them cancels)",
    );
    same_as_eq(&[1, 255], &[0, 0], "differences that add up to 256");
    same_as_eq(&[0x0f, 0xf0], &[0xf0, 0x0f], "swapped nibbles");
    for bit in 0..8 {
        let a = [7u8, 42, 0b1010_1010];
        let mut b = a;
        b[2] ^= 1 << bit;
        same_as_eq(&a, &b, &format!("bit {bit} of the last byte differs"));
    }
    let mut rng = Lcg(2025);
    for n in [1, 2, 7, 16, 32, 33, 100, 1000] {
        let a = bytes(&mut rng, n);
        same_as_eq(&a, &a.clone(), &format!("{n} equal random bytes"));
        for i in [0, n / 2, n - 1] {
            let mut b = a.clone();
            b[i] = b[i].wrapping_add(1 + ((rng.step() >> 33) % 255) as u8);
            same_as_eq(&a, &b, &format!("{n} random bytes, byte {i} differs"));
        }
        let b = bytes(&mut rng, n);
        same_as_eq(&a, &b, &format!("{n} random bytes against {n} others"));
        same_as_eq(
            &a,
            &a[..n - 1],
            &format!("{n} random bytes and all but the last"),
        );
    }
    // The server compares the SHA-256 digests of the two keys (always 32
    // bytes, so the length does not leak); the answers must agree.
    let key = "sk-nindub-4f9a0c2e";
    let server = ApiKey::new(key);
    for guess in [
        key,
        "",
        "sk-",
        "sk-nindub-4f9a0c2f",
        "sk-nindub-4f9a0c2e ",
        "SK-NINDUB-4F9A0C2E",
    ] {
        assert_eq!(
            ss::constant_time_eq(key.as_bytes(), guess.as_bytes()),
            server.verify(guess),
            "key {key:?}, guess {guess:?}: the server's ApiKey::verify disagrees with you"
        );
    }
}

// === Trial 5: the compute-bound batch ===

pub fn compute_bound_batch() {
    use nindub::model::fused::compute_bound_batch as reference;
    let examples = [
        ((100e6, 270e6, 20e9, 100e9), Some(2)),
        ((100e6, 270e6, 20e9, 10e9), Some(1)),
        // SmolLM2-135M Q4_1 (~96 MB read a token, ~270 MFLOP) on a
        // laptop: ~20 GB/s, ~200 GFLOP/s of int8 arithmetic.
        ((96e6, 270e6, 20e9, 200e9), Some(4)),
        // A 4 GB card: 360 GB/s and 9 TFLOP/s, an 8B model in 4 bits.
        ((4.5e9, 16e9, 360e9, 9e12), Some(8)),
        ((0.0, 1.0, 1.0, 1.0), None),
        ((1.0, -1.0, 1.0, 1.0), None),
        ((1.0, 1.0, f64::NAN, 1.0), None),
        ((1.0, 1.0, 1.0, f64::INFINITY), None),
        ((1e300, 1e-300, 1e-10, 1e10), Some(u64::MAX)),
    ];
    for ((w, f, bw, peak), expected) in examples {
        assert_eq!(
            reference(w, f, bw, peak),
            expected,
            "nindub disagrees with the check's table (a bug in the Codex)"
        );
        let mine = ss::compute_bound_batch(w, f, bw, peak);
        assert_eq!(
            mine, expected,
            "compute_bound_batch(weights {w} B, {f} FLOP/token, {bw} B/s, {peak} FLOP/s): expected {expected:?}, got {mine:?}"
        );
    }
    let mut rng = Lcg(23);
    for _ in 0..500 {
        let w = 1e6 * (1.0 + 1e4 * rng.unit());
        let f = 2.0 * w * (0.5 + rng.unit());
        let bw = 1e9 * (1.0 + 500.0 * rng.unit());
        let peak = 1e9 * (1.0 + 2e4 * rng.unit());
        let ratio = (w / bw) / (f / peak);
        // Exact integers are left out: there, rounding decides.
        if (ratio - ratio.round()).abs() < 1e-9 {
            continue;
        }
        let (want, mine) = (
            reference(w, f, bw, peak),
            ss::compute_bound_batch(w, f, bw, peak),
        );
        assert_eq!(
            mine, want,
            "compute_bound_batch({w}, {f}, {bw}, {peak}): expected {want:?}, got {mine:?}"
        );
    }
}
