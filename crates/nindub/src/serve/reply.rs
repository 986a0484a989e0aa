//! The OpenAI answers' bodies: a request's samples collected into one
//! JSON answer, or streamed as server-sent events chunk by chunk; usage and
//! logprobs in each API's shape; an error as its status and body.

use std::convert::Infallible;

use axum::http::StatusCode;
use axum::response::sse::{Event as SseFrame, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use super::protocol::ApiError;
use super::queue::{Event, Summary, TokenInfo};

/// Which API a request came through.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Endpoint {
    Completion,
    Chat,
}

/// An error as its HTTP status and OpenAI's error body.
pub(super) fn error(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(e.body())).into_response()
}

pub(super) struct Meta {
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) endpoint: Endpoint,
    pub(super) logprobs: bool,
    pub(super) include_usage: bool,
    /// Samples (choices) in the answer.
    pub(super) n: usize,
}

impl Meta {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }
}

/// The usage of a request's samples: the prompt counted once (it ran
/// once), the generated tokens of every sample.
fn usage(samples: &[Summary]) -> Value {
    let prompt = samples.first().map_or(0, |s| s.prompt_tokens);
    let completion: usize = samples.iter().map(|s| s.completion_tokens).sum();
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

// ANCHOR: logprobs
/// Chat's logprobs entry for one token.
fn chat_logprob(t: &TokenInfo) -> Value {
    let entry =
        |text: &str, lp: f32| json!({ "token": text, "logprob": lp, "bytes": text.as_bytes() });
    let mut e = entry(&t.text, t.logprob);
    e["top_logprobs"] = t.top.iter().map(|(text, lp)| entry(text, *lp)).collect();
    e
}

/// The legacy completions' logprobs for tokens starting at `offset`.
fn completion_logprobs(tokens: &[TokenInfo], mut offset: usize) -> Value {
    let mut text_offset = vec![];
    for t in tokens {
        text_offset.push(offset);
        offset += t.text.len();
    }
    json!({
        "tokens": tokens.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(),
        "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": tokens.iter().map(|t| {
            t.top.iter().map(|(text, lp)| (text.clone(), json!(lp))).collect::<serde_json::Map<_, _>>()
        }).collect::<Vec<_>>(),
        "text_offset": text_offset,
    })
}
// ANCHOR_END: logprobs

/// A non-streamed answer: wait for the end of every sample.
pub(super) async fn collect(meta: Meta, mut rx: UnboundedReceiver<Event>) -> Response {
    let mut tokens: Vec<Vec<TokenInfo>> = vec![vec![]; meta.n];
    let mut done: Vec<Summary> = vec![];
    while done.len() < meta.n {
        match rx.recv().await {
            Some(Event::Token { sample, token, .. }) => {
                if let Some(t) = tokens.get_mut(sample) {
                    t.push(token);
                }
            }
            Some(Event::Done(s)) => done.push(s),
            Some(Event::Failed(e)) => return error(e),
            None => {
                return error(ApiError::new(
                    503,
                    "server_error",
                    "shutting_down",
                    "the server stopped before the answer was complete",
                ));
            }
        }
    }
    done.sort_by_key(|s| s.sample);
    let choices: Vec<Value> = done
        .iter()
        .map(|summary| {
            let tokens = tokens.get(summary.sample).map_or(&[][..], Vec::as_slice);
            let logprobs = match (meta.logprobs, meta.endpoint) {
                (false, _) => Value::Null,
                (true, Endpoint::Chat) => {
                    json!({ "content": tokens.iter().map(chat_logprob).collect::<Vec<_>>() })
                }
                (true, Endpoint::Completion) => completion_logprobs(tokens, 0),
            };
            match meta.endpoint {
                Endpoint::Chat => json!({
                    "index": summary.sample,
                    "message": { "role": "assistant", "content": summary.text },
                    "logprobs": logprobs,
                    "finish_reason": summary.finish_reason,
                }),
                Endpoint::Completion => json!({
                    "index": summary.sample,
                    "text": summary.text,
                    "logprobs": logprobs,
                    "finish_reason": summary.finish_reason,
                }),
            }
        })
        .collect();
    let mut body = meta.envelope(false, Value::Array(choices));
    body["usage"] = usage(&done);
    axum::Json(body).into_response()
}

/// A streamed answer: one SSE `data:` chunk per token (its choice's
/// `index` says which sample it belongs to), a last chunk per sample with
/// its `finish_reason`, then the usage if asked, then `[DONE]`.
/// When the client goes away, the stream (and with it the receiver) is
/// dropped, and the worker stops at its next token.
pub(super) fn stream(meta: Meta, rx: UnboundedReceiver<Event>) -> Response {
    struct St {
        meta: Meta,
        rx: UnboundedReceiver<Event>,
        out: std::collections::VecDeque<String>,
        /// Each sample's text offset so far.
        offsets: Vec<usize>,
        finished: Vec<Summary>,
        done: bool,
    }
    let mut st = St {
        offsets: vec![0; meta.n],
        meta,
        rx,
        out: Default::default(),
        finished: vec![],
        done: false,
    };
    if st.meta.endpoint == Endpoint::Chat {
        for i in 0..st.meta.n {
            let first = st.meta.envelope(
                true,
                json!([{ "index": i, "delta": { "role": "assistant", "content": "" }, "logprobs": null, "finish_reason": null }]),
            );
            st.out.push_back(first.to_string());
        }
    }
    let frames = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(data) = st.out.pop_front() {
                return Some((Ok::<_, Infallible>(SseFrame::default().data(data)), st));
            }
            if st.done {
                return None;
            }
            match st.rx.recv().await {
                Some(Event::Token {
                    sample,
                    text,
                    token,
                }) => {
                    let Some(offset) = st.offsets.get_mut(sample) else {
                        continue;
                    };
                    let chunk = token_chunk(&st.meta, sample, &text, Some(&token), *offset);
                    *offset += token.text.len();
                    st.out.push_back(chunk.to_string());
                }
                Some(Event::Done(summary)) => {
                    let i = summary.sample;
                    if !summary.tail.is_empty() {
                        let offset = st.offsets.get(i).copied().unwrap_or(0);
                        let chunk = token_chunk(&st.meta, i, &summary.tail, None, offset);
                        st.out.push_back(chunk.to_string());
                    }
                    let last = match st.meta.endpoint {
                        Endpoint::Chat => {
                            json!([{ "index": i, "delta": {}, "logprobs": null, "finish_reason": summary.finish_reason }])
                        }
                        Endpoint::Completion => {
                            json!([{ "index": i, "text": "", "logprobs": null, "finish_reason": summary.finish_reason }])
                        }
                    };
                    st.out.push_back(st.meta.envelope(true, last).to_string());
                    st.finished.push(summary);
                    if st.finished.len() == st.meta.n {
                        if st.meta.include_usage {
                            let mut u = st.meta.envelope(true, json!([]));
                            u["usage"] = usage(&st.finished);
                            st.out.push_back(u.to_string());
                        }
                        st.out.push_back("[DONE]".into());
                        st.done = true;
                    }
                }
                Some(Event::Failed(e)) => {
                    st.out.push_back(e.body().to_string());
                    st.out.push_back("[DONE]".into());
                    st.done = true;
                }
                None => st.done = true,
            }
        }
    });
    Sse::new(frames)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One streamed chunk: `text` released now, with the token's logprobs.
fn token_chunk(
    meta: &Meta,
    sample: usize,
    text: &str,
    token: Option<&TokenInfo>,
    offset: usize,
) -> Value {
    let logprobs = match (meta.logprobs, token, meta.endpoint) {
        (true, Some(t), Endpoint::Chat) => json!({ "content": [chat_logprob(t)] }),
        (true, Some(t), Endpoint::Completion) => {
            completion_logprobs(std::slice::from_ref(t), offset)
        }
        _ => Value::Null,
    };
    let choice = match meta.endpoint {
        Endpoint::Chat => {
            json!({ "index": sample, "delta": { "content": text }, "logprobs": logprobs, "finish_reason": null })
        }
        Endpoint::Completion => {
            json!({ "index": sample, "text": text, "logprobs": logprobs, "finish_reason": null })
        }
    };
    meta.envelope(true, json!([choice]))
}
