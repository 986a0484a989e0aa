//! Trials of "The Speaking Stone": reference solutions.

use serde_json::Value;

/// Trial 1. The tokens' texts of one streamed answer, in order.
pub fn stream_tokens(stream: &str) -> Vec<String> {
    let mut tokens = vec![];
    let mut data: Option<String> = None;
    // `split` leaves the text after the last `\n`: a line the stream cut,
    // which never ends its event.
    let mut lines: Vec<&str> = stream.split('\n').collect();
    lines.pop();
    for line in lines {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            match data.take().as_deref() {
                None => {}
                Some("[DONE]") => break,
                Some(d) => tokens.extend(chunk_text(d)),
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            }
        }
    }
    tokens
}

/// The token text of one JSON chunk, if it carries one.
fn chunk_text(data: &str) -> Option<String> {
    let chunk: Value = serde_json::from_str(data).ok()?;
    let choice = chunk.get("choices")?.get(0)?;
    if !choice.get("finish_reason").is_none_or(Value::is_null) {
        return None;
    }
    let text = match choice.get("delta") {
        Some(delta) if delta.get("role").is_some() => return None,
        Some(delta) => delta.get("content")?,
        None => choice.get("text")?,
    };
    text.as_str().map(str::to_string)
}

/// Trial 2. Validate a `POST /v1/completions` body as the server does.
pub fn validate(body: &str, max_tokens_limit: usize) -> Result<(), (u16, Option<String>)> {
    let bad = |param: Option<&str>| Err((400, param.map(str::to_string)));
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return bad(None);
    };
    let Some(fields) = json.as_object() else {
        return bad(None);
    };
    let get = |name: &str| fields.get(name).filter(|v| !v.is_null());
    for (name, ok) in [
        ("prompt", Value::is_string as fn(&Value) -> bool),
        ("max_tokens", Value::is_i64),
        ("n", Value::is_i64),
        ("temperature", Value::is_number),
        ("top_p", Value::is_number),
    ] {
        if get(name).is_some_and(|v| !ok(v)) {
            return bad(Some(name));
        }
    }
    if get("prompt")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return bad(Some("prompt"));
    }
    if get("n").and_then(Value::as_i64).is_some_and(|n| n != 1) {
        return bad(Some("n"));
    }
    let limit = i64::try_from(max_tokens_limit).unwrap_or(i64::MAX);
    if let Some(m) = get("max_tokens").and_then(Value::as_i64)
        && !(1..=limit).contains(&m)
    {
        return bad(Some("max_tokens"));
    }
    let temperature = get("temperature").and_then(Value::as_f64).unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return bad(Some("temperature"));
    }
    let top_p = get("top_p").and_then(Value::as_f64).unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return bad(Some("top_p"));
    }
    Ok(())
}

/// Trial 3. The bounded queue's admission rule.
pub fn admit(
    waiting: usize,
    running: usize,
    capacity: usize,
    mean_service_secs: f64,
) -> Result<(), u64> {
    if waiting < capacity {
        return Ok(());
    }
    let ahead = (waiting + running) as f64 * mean_service_secs.max(0.0);
    // `as` saturates: +∞ becomes u64::MAX, then 120.
    Err((ahead.ceil() as u64).clamp(1, 120))
}

/// Trial 4. Compare two secrets in time that does not depend on where they
/// differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the compiler from turning the fold back into an early exit.
    std::hint::black_box(diff) == 0
}

pub fn compute_bound_batch(
    weight_bytes: f64,
    flops_per_token: f64,
    bandwidth: f64,
    peak_flops: f64,
) -> Option<u64> {
    let inputs = [weight_bytes, flops_per_token, bandwidth, peak_flops];
    if !inputs.iter().all(|v| v.is_finite() && *v > 0.0) {
        return None;
    }
    let read = weight_bytes / bandwidth;
    let compute = flops_per_token / peak_flops;
    Some(((read / compute).ceil() as u64).max(1))
}
