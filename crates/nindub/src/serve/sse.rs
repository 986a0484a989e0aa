//! Server-sent events, read from the client's side.
//!
//! A stream is lines of UTF-8. `field: value` lines accumulate an event
//! (one space after the colon is dropped; several `data` lines join with
//! `\n`), a line starting with `:` is a comment (servers send them to keep
//! a connection alive), and a blank line dispatches the event. Chunks from
//! the network split the stream anywhere, even inside a character, so the
//! parser keeps the incomplete line between calls. (Lines may end in `\n`
//! or `\r\n`; a lone `\r` as a line end is not supported.)

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, when the server named one.
    pub event: Option<String>,
    pub data: String,
}

// ANCHOR: parser
/// An incremental parser: feed it bytes as they arrive.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    data: Option<String>,
    event: Option<String>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events completed by `bytes`.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = vec![];
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    out.push(SseEvent {
                        event: self.event.take(),
                        data,
                    });
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (&*line, ""),
            };
            match field {
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                "event" => self.event = Some(value.to_string()),
                _ => {} // `id`, `retry` and unknown fields: not needed here
            }
        }
        out
    }
}
// ANCHOR_END: parser

/// The `data` of every event of a whole stream, up to `[DONE]` (excluded).
pub fn data_until_done(stream: &[u8]) -> Vec<String> {
    Parser::new()
        .feed(stream)
        .into_iter()
        .map(|e| e.data)
        .take_while(|d| d != "[DONE]")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_split() {
        let stream = ": keep-alive\n\ndata: {\"a\":1}\r\n\ndata:x\ndata: y\n\nevent: error\ndata: é\n\ndata: [DONE]\n\n";
        let whole = Parser::new().feed(stream.as_bytes());
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[0].data, "{\"a\":1}");
        assert_eq!(whole[1].data, "x\ny");
        assert_eq!(whole[2].event.as_deref(), Some("error"));
        assert_eq!(whole[2].data, "é");
        for cut in 0..stream.len() {
            let mut p = Parser::new();
            let mut got = p.feed(&stream.as_bytes()[..cut]);
            got.extend(p.feed(&stream.as_bytes()[cut..]));
            assert_eq!(got, whole, "split at byte {cut}");
        }
        assert_eq!(data_until_done(stream.as_bytes()).len(), 3);
    }
}
