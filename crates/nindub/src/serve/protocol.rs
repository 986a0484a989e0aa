//! The wire protocol: OpenAI-style JSON requests, validated into settings
//! the Ritual understands, and the errors a client reads.
//!
//! Parsing is a pure function of the body's bytes ([`parse_completion`],
//! [`parse_chat`]): it never panics, whatever the bytes, and every refusal
//! is an [`ApiError`] with an HTTP status, a type and the field it concerns
//! (a property test throws random bodies at it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::sample::SamplingConfig;

/// A refusal, as the client will read it:
/// `{"error": {"message", "type", "param", "code"}}` with `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400: the request is wrong; `param` names the field.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code: None,
        }
    }

    /// Any other status, with its type and code.
    pub fn new(
        status: u16,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: Some(code),
        }
    }

    /// The JSON body: `{"error": {...}}`.
    pub fn body(&self) -> Value {
        serde_json::json!({ "error": self })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.kind, self.message)
    }
}

/// What one server accepts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest `max_tokens` a request may ask for.
    pub max_tokens: usize,
    /// The longest prompt, in tokens.
    pub max_prompt_tokens: usize,
    /// The model's context, and the KV cache the server reserved: each of
    /// a request's `n` samples holds prompt + max_tokens positions, and
    /// all of them must fit in it together.
    pub context: usize,
    /// The most samples (`n`) one request may ask for: the sequences the
    /// server generates at once.
    pub samples: usize,
}

/// A request body as sent: the fields of both endpoints in one struct
/// (not `#[serde(flatten)]`, which would lose the path of a bad field).
#[derive(Debug, Default, Deserialize)]
struct Body {
    // completions
    prompt: Option<PromptField>,
    echo: Option<bool>,
    // chat
    messages: Option<Vec<ChatMessage>>,
    top_logprobs: Option<i64>,
    /// A number (completions: candidates per token) or a bool (chat).
    logprobs: Option<Value>,
    // both
    model: Option<String>,
    max_tokens: Option<i64>,
    /// The newer name of `max_tokens` in chat requests.
    max_completion_tokens: Option<i64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i64>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    seed: Option<i64>,
    stop: Option<Stop>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    n: Option<i64>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    response_format: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PromptField {
    Text(String),
    Batch(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    content: Content,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

/// What the client asked for, checked: ready for the Ritual.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The model the client named (it must be the one served).
    pub model: Option<String>,
    pub input: Input,
    pub sampling: SamplingConfig,
    /// `None`: until the end of the context (capped by the server's limit).
    pub max_tokens: Option<usize>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    /// Report the chosen token's log-probability.
    pub logprobs: bool,
    /// And this many candidates per token.
    pub top_logprobs: usize,
    /// Independent samples of the same prompt (`n`): sample `i` draws
    /// with `seed + i`.
    pub n: usize,
    /// The JSON Schema the answer must follow (`response_format`), compiled.
    pub constraint: Option<std::sync::Arc<crate::constrain::Grammar>>,
}

/// A raw prompt (completions) or a conversation (chat).
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Prompt(String),
    Chat(Vec<(String, String)>),
}

/// Parses and checks a `POST /v1/completions` body.
pub fn parse_completion(body: &[u8], limits: &Limits) -> Result<Request, ApiError> {
    let mut b: Body = from_json(body)?;
    if b.max_completion_tokens.is_some() {
        return Err(ApiError::invalid(
            Some("max_completion_tokens"),
            "completions take `max_tokens`",
        ));
    }
    if b.echo == Some(true) {
        return Err(ApiError::invalid(Some("echo"), "echo is not supported"));
    }
    let prompt = match b.prompt.take() {
        None => return Err(ApiError::invalid(Some("prompt"), "`prompt` is required")),
        Some(PromptField::Text(t)) => t,
        Some(PromptField::Batch(mut v)) if v.len() == 1 => v.remove(0),
        Some(PromptField::Batch(_)) => {
            return Err(ApiError::invalid(
                Some("prompt"),
                "one prompt per request (this server does not batch)",
            ));
        }
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid(Some("prompt"), "`prompt` is empty"));
    }
    let top = match &b.logprobs {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(in_range("logprobs", n.as_i64().unwrap_or(-1), 0, 20)?),
        Some(other) => {
            return Err(ApiError::invalid(
                Some("logprobs"),
                format!("`logprobs` must be an integer in [0, 20] here, not {other}"),
            ));
        }
    };
    let format = b.response_format.take();
    let mut r = common(b, limits, Input::Prompt(prompt))?;
    r.constraint = response_format(format, body)?;
    r.logprobs = top.is_some();
    r.top_logprobs = top.unwrap_or(0);
    Ok(r)
}

/// Parses and checks a `POST /v1/chat/completions` body.
pub fn parse_chat(body: &[u8], limits: &Limits) -> Result<Request, ApiError> {
    let mut b: Body = from_json(body)?;
    let messages = b
        .messages
        .take()
        .ok_or_else(|| ApiError::invalid(Some("messages"), "`messages` is required"))?;
    if messages.is_empty() {
        return Err(ApiError::invalid(Some("messages"), "`messages` is empty"));
    }
    let mut turns = vec![];
    for (i, m) in messages.into_iter().enumerate() {
        if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
            return Err(ApiError::invalid(
                Some(&format!("messages[{i}].role")),
                format!("role `{}` is not system, user or assistant", m.role),
            ));
        }
        let text = match m.content {
            Content::Text(t) => t,
            Content::Parts(parts) => {
                let mut text = String::new();
                for p in parts {
                    match (p.kind.as_str(), p.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        (kind, _) => {
                            return Err(ApiError::invalid(
                                Some(&format!("messages[{i}].content")),
                                format!("content part `{kind}` is not supported (only text)"),
                            ));
                        }
                    }
                }
                text
            }
        };
        turns.push((m.role, text));
    }
    if turns.iter().all(|(_, t)| t.trim().is_empty()) {
        return Err(ApiError::invalid(
            Some("messages"),
            "every message is empty",
        ));
    }
    let top = match b.top_logprobs {
        None => 0,
        Some(n) => in_range("top_logprobs", n, 0, 20)?,
    };
    let logprobs = match &b.logprobs {
        None | Some(Value::Null) => false,
        Some(Value::Bool(v)) => *v,
        Some(other) => {
            return Err(ApiError::invalid(
                Some("logprobs"),
                format!("`logprobs` must be true or false here, not {other}"),
            ));
        }
    };
    if top > 0 && !logprobs {
        return Err(ApiError::invalid(
            Some("top_logprobs"),
            "`top_logprobs` needs `logprobs: true`",
        ));
    }
    let format = b.response_format.take();
    let mut r = common(b, limits, Input::Chat(turns))?;
    r.constraint = response_format(format, body)?;
    r.logprobs = logprobs;
    r.top_logprobs = top;
    Ok(r)
}

/// The shared fields, with OpenAI's defaults where the client is silent
/// (temperature 1, top-p 1, no penalty) and the project's extensions
/// (`top_k`, `min_p`, `repeat_penalty`).
fn common(c: Body, limits: &Limits, input: Input) -> Result<Request, ApiError> {
    let n = match c.n {
        None => 1,
        Some(n) if n >= 1 && n <= limits.samples as i64 => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(
                Some("n"),
                format!(
                    "n = {n}: this server generates 1 to {} samples per request (its parallel sequences)",
                    limits.samples
                ),
            ));
        }
    };
    for (name, v) in [
        ("frequency_penalty", c.frequency_penalty),
        ("presence_penalty", c.presence_penalty),
    ] {
        if v.is_some_and(|v| v != 0.0) {
            return Err(ApiError::invalid(
                Some(name),
                format!("`{name}` is not supported; use `repeat_penalty`"),
            ));
        }
    }
    let max_tokens = match c.max_tokens.or(c.max_completion_tokens) {
        None => None,
        Some(n) => Some(in_range("max_tokens", n, 1, limits.max_tokens as i64)?),
    };
    // ANCHOR: ranges
    let temperature = c.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(
            Some("temperature"),
            format!("temperature {temperature} is outside [0, 2]"),
        ));
    }
    let top_p = c.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid(
            Some("top_p"),
            format!("top_p {top_p} is outside (0, 1]"),
        ));
    }
    let top_k = match c.top_k {
        None | Some(0) => None,
        Some(k) => Some(in_range("top_k", k, 1, 1_000_000)?),
    };
    let min_p = c.min_p.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&min_p) {
        return Err(ApiError::invalid(
            Some("min_p"),
            format!("min_p {min_p} is outside [0, 1]"),
        ));
    }
    let repeat_penalty = c.repeat_penalty.unwrap_or(1.0);
    if !(repeat_penalty > 0.0 && repeat_penalty <= 10.0) {
        return Err(ApiError::invalid(
            Some("repeat_penalty"),
            format!("repeat_penalty {repeat_penalty} is outside (0, 10]"),
        ));
    }
    // ANCHOR_END: ranges
    let stop = match c.stop {
        None => vec![],
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if stop.len() > 4 || stop.iter().any(|s| s.is_empty() || s.len() > 256) {
        return Err(ApiError::invalid(
            Some("stop"),
            "at most 4 stop strings, each 1 to 256 bytes",
        ));
    }
    let include_usage = c
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    if c.stream_options.is_some() && c.stream != Some(true) {
        return Err(ApiError::invalid(
            Some("stream_options"),
            "`stream_options` needs `stream: true`",
        ));
    }
    let seed = match c.seed {
        Some(s) => s as u64,
        None => rand::random(),
    };
    Ok(Request {
        model: c.model,
        input,
        sampling: SamplingConfig {
            temperature,
            top_k,
            top_p: (top_p < 1.0).then_some(top_p),
            min_p: (min_p > 0.0).then_some(min_p),
            repeat_penalty,
            repeat_window: 64,
            seed,
        },
        max_tokens,
        stop,
        stream: c.stream.unwrap_or(false),
        include_usage,
        logprobs: false,
        top_logprobs: 0,
        n,
        constraint: None,
    })
}

/// Deserializes JSON, naming the field that has the wrong type.
fn from_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            None,
            "the body is empty: send a JSON object",
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(None, format!("the body is not valid JSON: {e}")))?;
    let kind = match &value {
        Value::Object(_) => None,
        Value::Array(_) => Some("an array"),
        Value::String(_) => Some("a string"),
        Value::Number(_) => Some("a number"),
        Value::Bool(_) => Some("a boolean"),
        Value::Null => Some("null"),
    };
    if let Some(kind) = kind {
        return Err(ApiError::invalid(
            None,
            format!("the body must be a JSON object, not {kind}"),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(Some(&path), format!("`{path}`: {}", e.into_inner()))
    })
}

fn in_range(name: &str, n: i64, lo: i64, hi: i64) -> Result<usize, ApiError> {
    if n < lo || n > hi {
        return Err(ApiError::invalid(
            Some(name),
            format!("{name} {n} is outside [{lo}, {hi}]"),
        ));
    }
    Ok(n as usize)
}

impl Request {
    /// Checks the tokenized prompt against the limits and settles
    /// `max_tokens`: what the client asked, or what the context leaves
    /// (capped by the server's limit).
    pub fn budget(&self, prompt_tokens: usize, limits: &Limits) -> Result<usize, ApiError> {
        if prompt_tokens == 0 {
            return Err(ApiError::invalid(
                Some("prompt"),
                "the prompt encodes to no tokens",
            ));
        }
        if prompt_tokens > limits.max_prompt_tokens {
            return Err(ApiError::invalid(
                Some("prompt"),
                format!(
                    "the prompt has {prompt_tokens} tokens; this server accepts at most {}",
                    limits.max_prompt_tokens
                ),
            ));
        }
        // Each of the n samples holds the prompt and its own tokens.
        let n = self.n.max(1);
        let room = (limits.context / n).saturating_sub(prompt_tokens);
        match self.max_tokens {
            Some(m) if m > room && n == 1 => Err(ApiError::invalid(
                Some("max_tokens"),
                format!(
                    "{prompt_tokens} prompt tokens + max_tokens {m} exceed the model's context of {}",
                    limits.context
                ),
            )),
            Some(m) if m > room => Err(ApiError::invalid(
                Some("max_tokens"),
                format!(
                    "n = {n} samples of {prompt_tokens} prompt tokens + max_tokens {m} need {} KV positions; the server holds {}",
                    n * (prompt_tokens + m),
                    limits.context
                ),
            )),
            Some(m) => Ok(m),
            None if room == 0 => Err(ApiError::invalid(
                Some("n"),
                format!(
                    "n = {n} samples of {prompt_tokens} prompt tokens do not fit in the server's {} KV positions",
                    limits.context
                ),
            )),
            None => Ok(room.min(limits.max_tokens)),
        }
    }
}

// ANCHOR: response_format
/// OpenAI's `response_format`, as llama.cpp's server takes it: `text`,
/// `json_object` (any JSON object), or `json_schema` with the schema under
/// `json_schema.schema`. The schema is compiled from the body's own text,
/// so that its properties are written in the order the client gave them.
fn response_format(
    format: Option<Value>,
    body: &[u8],
) -> Result<Option<std::sync::Arc<crate::constrain::Grammar>>, ApiError> {
    use crate::constrain::Grammar;
    let Some(f) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    let grammar = match f.get("type").and_then(Value::as_str) {
        Some("text") => return Ok(None),
        Some("json_object") => Grammar::any_object(),
        Some("json_schema") => {
            if f.pointer("/json_schema/schema").is_none() {
                return Err(ApiError::invalid(
                    Some("response_format.json_schema.schema"),
                    "`json_schema` needs a `schema`",
                ));
            }
            Grammar::from_json_at(body, "/response_format/json_schema/schema").map_err(|e| {
                ApiError::invalid(Some("response_format.json_schema.schema"), e.to_string())
            })?
        }
        Some(other) => {
            return Err(ApiError::invalid(
                Some("response_format.type"),
                format!("`{other}` is not text, json_object or json_schema"),
            ));
        }
        None => {
            return Err(ApiError::invalid(
                Some("response_format"),
                "`response_format` needs a `type`",
            ));
        }
    };
    Ok(Some(std::sync::Arc::new(grammar)))
}
// ANCHOR_END: response_format

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_tokens: 512,
            max_prompt_tokens: 1000,
            context: 2048,
            samples: 4,
        }
    }

    #[test]
    fn a_minimal_chat_gets_openai_defaults() {
        let r = parse_chat(
            br#"{"messages":[{"role":"user","content":"hi"}]}"#,
            &limits(),
        )
        .unwrap();
        assert_eq!(r.sampling.temperature, 1.0);
        assert_eq!(r.sampling.top_p, None);
        assert_eq!(r.sampling.repeat_penalty, 1.0);
        assert!(!r.stream && !r.logprobs);
        assert_eq!(r.input, Input::Chat(vec![("user".into(), "hi".into())]));
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_completion(br#"{"prompt":"x","temperature":"hot"}"#, &limits()).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("temperature")));
        let e = parse_completion(br#"{"prompt":"x","temperature":3}"#, &limits()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e = parse_completion(br#"{"prompt":"x","max_tokens":0}"#, &limits()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = parse_chat(
            br#"{"messages":[{"role":"robot","content":"x"}]}"#,
            &limits(),
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = parse_completion(b"{\"prompt\":", &limits()).unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{e}");
        let e = parse_completion(b"[1,2]", &limits()).unwrap_err();
        assert_eq!(e.status, 400);
        let e = parse_completion(br#"{"prompt":""}"#, &limits()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("prompt"));
    }

    #[test]
    fn response_format_compiles_the_schema_in_the_order_written() {
        use crate::constrain::State;
        let chat = |format: &str| {
            parse_chat(
                format!(r#"{{"messages":[{{"role":"user","content":"hi"}}],"response_format":{format}}}"#)
                    .as_bytes(),
                &limits(),
            )
        };
        assert_eq!(chat(r#"{"type":"text"}"#).unwrap().constraint, None);
        assert_eq!(chat("null").unwrap().constraint, None);
        let any = chat(r#"{"type":"json_object"}"#)
            .unwrap()
            .constraint
            .unwrap();
        let mut s = State::new(&any);
        assert!(s.feed_all(&any, br#"{"k": [1, "v"]}"#) && s.is_done());
        // "zebra" before "apple", as written (serde_json's map would sort them).
        let g = chat(
            r#"{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":{"type":"object","properties":{"zebra":{"type":"integer"},"apple":{"type":"boolean"}},"required":["zebra","apple"],"additionalProperties":false}}}"#,
        )
        .unwrap()
        .constraint
        .unwrap();
        let mut s = State::new(&g);
        assert!(s.feed_all(&g, br#"{"zebra": 1, "apple": true}"#) && s.is_done());
        let mut s = State::new(&g);
        assert!(!s.feed_all(&g, br#"{"apple""#));
        for (format, param, says) in [
            (r#"{"type":"xml"}"#, "response_format.type", "xml"),
            (r#"{"kind":"json_object"}"#, "response_format", "type"),
            (
                r#"{"type":"json_schema","json_schema":{"name":"x"}}"#,
                "response_format.json_schema.schema",
                "schema",
            ),
            (
                r#"{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"string","pattern":"a+"}}}"#,
                "response_format.json_schema.schema",
                "`pattern`",
            ),
        ] {
            let e = chat(format).unwrap_err();
            assert_eq!(
                (e.status, e.param.as_deref()),
                (400, Some(param)),
                "{format}"
            );
            assert!(e.message.contains(says), "{format}: {e}");
        }
    }

    #[test]
    fn the_budget_fits_the_context() {
        let r = parse_completion(br#"{"prompt":"x","max_tokens":100}"#, &limits()).unwrap();
        assert_eq!(r.budget(10, &limits()), Ok(100));
        assert_eq!(
            r.budget(1001, &limits()).unwrap_err().param.as_deref(),
            Some("prompt")
        );
        let small = Limits {
            context: 50,
            ..limits()
        };
        assert_eq!(
            r.budget(10, &small).unwrap_err().param.as_deref(),
            Some("max_tokens")
        );
        let open = parse_completion(br#"{"prompt":"x"}"#, &limits()).unwrap();
        assert_eq!(
            open.budget(
                2000,
                &Limits {
                    max_prompt_tokens: 4000,
                    ..limits()
                }
            ),
            Ok(48)
        );
    }

    #[test]
    fn samples_share_the_kv_positions() {
        let r = parse_completion(br#"{"prompt":"x","n":4,"max_tokens":100}"#, &limits()).unwrap();
        assert_eq!(r.n, 4);
        // 4 × (10 + 100) fit in 2048; 4 × (500 + 100) do not.
        assert_eq!(r.budget(10, &limits()), Ok(100));
        let e = r.budget(500, &limits()).unwrap_err();
        assert!(e.message.contains("need 2400 KV positions"), "{e}");
        // Without max_tokens, each sample gets its share of the context.
        let open = parse_completion(br#"{"prompt":"x","n":4}"#, &limits()).unwrap();
        assert_eq!(open.budget(500, &limits()), Ok(12));
        assert_eq!(
            open.budget(600, &limits()).unwrap_err().param.as_deref(),
            Some("n")
        );
        for body in [&br#"{"prompt":"x","n":0}"#[..], br#"{"prompt":"x","n":5}"#] {
            let e = parse_completion(body, &limits()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("n"), "{e}");
        }
    }
}
