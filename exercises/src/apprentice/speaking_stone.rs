//! Trials of "The Speaking Stone": the model behind an HTTP service.
//!
//! Four pieces of a server that many clients share: reading a streamed
//! answer as a client does, refusing a bad request with the status and the
//! field a client can act on, refusing work the queue cannot take (and
//! saying when to come back), and comparing a secret without leaking it
//! through the clock. The checks compare your answers with `nindub::serve`,
//! the Codex's own server (`sse`, `protocol`, `queue` and `auth`).
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

/// Trial 1. The tokens' texts of one streamed answer, in order.
///
/// With `"stream": true`, an OpenAI-style server answers with
/// **server-sent events** (SSE): a text stream of lines, each ending in
/// `\n` or `\r\n` (drop the `\r`).
///
/// ```text
/// : keep-alive                       a comment (starts with ':'): skip it
/// data: {"choices":[...]}            a field: name, ':', value
///                                    a blank line ends the event
/// data: [DONE]                       the end of the answer
/// ```
///
/// - A `data:` line adds its value to the current event; drop **one**
///   space after the colon, if there is one (`data:x` and `data: x` both
///   give `x`). Several `data` lines in one event join with `\n`.
/// - Other fields (`event:`, `id:`, `retry:`) do not matter here.
/// - A blank line ends the event, if it has data (a blank line after a
///   comment alone dispatches nothing). An event that no blank line ends,
///   because the stream was cut, is incomplete: ignore it.
/// - An event whose data is `[DONE]` ends the stream: ignore what follows.
///
/// Every other event's data is one JSON chunk (`serde_json::from_str` into
/// a `serde_json::Value`). Its token text is `choices[0].delta.content` in
/// a chat stream, `choices[0].text` in a completions stream. Not every
/// chunk carries a token:
///
/// - no `choices`, or an empty list: the usage chunk (or an `error`);
/// - `choices[0].finish_reason` is not `null`: the last chunk, which says
///   why the answer ended;
/// - `choices[0].delta` has a `role`: the chat's first chunk, which only
///   opens the assistant's turn.
///
/// Keep empty texts: a server that holds text back (it might be the start
/// of a stop string) still sends one chunk per token, with `""`.
///
/// Example: `data: {"choices":[{"index":0,"text":"Hel","finish_reason":null}]}`,
/// a blank line, the same with `"lo"`, a blank line, `data: [DONE]` and a
/// blank line → `["Hel", "lo"]`.
pub fn stream_tokens(stream: &str) -> Vec<String> {
    todo!("split into lines, gather each event's data, stop at [DONE], read each chunk's text")
}

/// Trial 2. Validate a `POST /v1/completions` body as the server does:
/// `Ok(())`, or the HTTP status and the field (`param`) to blame.
///
/// A refusal should tell the client what to fix. Every problem with the
/// body itself is **400 Bad Request**, with `param` naming the field
/// (`None` when the body as a whole is wrong). Check in this order, and
/// report the first problem:
///
/// 1. The body is not valid JSON (an empty body included) → `(400, None)`.
/// 2. It is valid JSON but not an object (`"hi"`, `42`, `null`, `[1]`)
///    → `(400, None)`.
/// 3. A field has the wrong type → `(400, Some(field))`: `prompt` must be
///    a string, `max_tokens` and `n` integers (`16.0` is not one),
///    `temperature` and `top_p` numbers. A field set to `null` counts as
///    absent. (The server checks more: other fields, and a `prompt` given
///    as a list of one string. The trial does not.)
/// 4. `prompt` is absent or `""` → `(400, Some("prompt"))`.
/// 5. `n` is present and not 1 → `(400, Some("n"))`: this server generates
///    one sequence at a time, so one choice per request.
/// 6. `max_tokens` is present and outside `[1, max_tokens_limit]` →
///    `(400, Some("max_tokens"))`.
/// 7. `temperature` (default 1) is outside `[0, 2]` →
///    `(400, Some("temperature"))`.
/// 8. `top_p` (default 1) is outside `(0, 1]` → `(400, Some("top_p"))`.
///
/// Examples, with a limit of 512: `{"prompt": "Hi"}` → `Ok(())`;
/// `{"prompt": "Hi", "max_tokens": 1000}` → `Err((400, Some("max_tokens")))`;
/// `{"prompt": "Hi",` → `Err((400, None))`.
pub fn validate(body: &str, max_tokens_limit: usize) -> Result<(), (u16, Option<String>)> {
    todo!("parse with serde_json, then check the fields in the order above")
}

/// Trial 3. The bounded queue's admission rule.
///
/// One model serves one request at a time; the others wait in a queue of
/// `capacity` places. A request that finds `waiting < capacity` is admitted
/// (`Ok(())`). Otherwise it is refused at once (503 Service Unavailable)
/// with a `Retry-After` of as many seconds as the work ahead should take:
///
/// ```text
/// retry_after = ⌈(waiting + running) · mean_service_secs⌉, clamped to [1, 120]
/// ```
///
/// A negative `mean_service_secs` counts as 0 (the `f64::max` with 0 also
/// turns NaN into 0). Never ask a client to come back in 0 s (it would
/// hammer the server), nor in more than two minutes.
///
/// Examples: `admit(1, 1, 2, 3.0)` → `Ok(())`; `admit(2, 1, 2, 3.0)` →
/// `Err(9)`; `admit(0, 0, 0, 0.0)` → `Err(1)` (no queue at all);
/// `admit(100, 1, 4, 10.0)` → `Err(120)`.
pub fn admit(
    waiting: usize,
    running: usize,
    capacity: usize,
    mean_service_secs: f64,
) -> Result<(), u64> {
    todo!("admit below capacity; else the time of the work ahead, rounded up and clamped")
}

/// Trial 4. Compare two secrets in time that does not depend on where they
/// differ: `true` exactly when `a == b`.
///
/// `a == b` on slices stops at the first differing byte, so a wrong guess
/// is answered a little sooner the earlier it goes wrong. Timed over many
/// requests, that difference reveals the key one byte at a time. Instead,
/// when the lengths are equal, visit **every** pair of bytes and
/// accumulate their differences without branching:
///
/// ```text
/// diff = (a₀ ^ b₀) | (a₁ ^ b₁) | … | (aₙ₋₁ ^ bₙ₋₁)      equal ⇔ diff == 0
/// ```
///
/// Slices of different lengths are not equal (return `false` at once: the
/// length is what this function may leak; the server hides it too, by
/// comparing hashes of the two keys, which always have 32 bytes).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    todo!("different lengths: false; otherwise OR together the XOR of every pair")
}

/// Trial 5. The batch size at which a decode step turns compute-bound.
///
/// A step of a batch of `b` sequences reads every weight once, whatever
/// `b`, and does each sequence's arithmetic (about 2 FLOPs per weight per
/// token). On a machine that reads `bandwidth` bytes/s and computes
/// `peak_flops` FLOP/s, the step takes the longer of the two (the roofline):
///
/// ```text
/// t(b) = max(weight_bytes / bandwidth,  b · flops_per_token / peak_flops)
/// ```
///
/// Return the smallest `b ≥ 1` with
/// `b · flops_per_token / peak_flops ≥ weight_bytes / bandwidth`: up to it,
/// more sequences ride along almost free; past it, each adds its own time.
/// `None` unless all four inputs are positive and finite.
///
/// Example: 100 MB of weights at 20 GB/s (5 ms to read) and 270 MFLOP a
/// token at 100 GFLOP/s (2.7 ms) → `Some(2)`; when the arithmetic alone
/// already takes longer than the reading → `Some(1)`.
pub fn compute_bound_batch(
    weight_bytes: f64,
    flops_per_token: f64,
    bandwidth: f64,
    peak_flops: f64,
) -> Option<u64> {
    todo!(
        "check the inputs; then the reading time over one token's arithmetic time, rounded up, at least 1"
    )
}
