//! A tool the agent may call, and the bounds every call is held to: a
//! tool's answer is cut to a size, a call that outlives its time is
//! abandoned, and a failure or a panic becomes an observation the model
//! reads, never the end of the run.

use std::time::{Duration, Instant};

/// Something the model may ask for by name, with one string of input.
pub trait Tool: Send + Sync {
    /// The name the model writes (`calc`).
    fn name(&self) -> &str;
    /// One line for the model: what it does and what its input looks like.
    fn description(&self) -> &str;
    /// Does the work. An `Err` is shown to the model as it is.
    fn call(&self, input: &str) -> Result<String, String>;
}

/// How far a call may go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Bytes of an answer the model is shown (the rest is cut, and says so).
    pub max_output: usize,
    /// Time a call may take before it is abandoned.
    pub timeout: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_output: 600,
            timeout: Duration::from_secs(10),
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok(String),
    /// The tool said no (its message).
    Failed(String),
    /// It took longer than the bound.
    TimedOut,
    /// It panicked (its message).
    Panicked(String),
}

/// A call's outcome and the observation the model reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Called {
    pub outcome: Outcome,
    pub observation: String,
    pub elapsed: Duration,
}

// ANCHOR: call_bounded
/// Calls `tool` on its own thread and waits at most `bounds.timeout`. A
/// call that outlives it is abandoned: the thread runs on until the tool
/// returns, its answer thrown away (a tool that runs a process kills it
/// itself, see [`super::tools::Nindub`]). The answer is cut to
/// `bounds.max_output` bytes, on a character boundary.
pub fn call_bounded(tool: std::sync::Arc<dyn Tool>, input: &str, bounds: Bounds) -> Called {
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let input = input.to_string();
    let worker = std::thread::Builder::new()
        .name(format!("tool-{}", tool.name()))
        .spawn(move || {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tool.call(&input)));
            let _ = tx.send(result);
        });
    let outcome = match worker {
        Err(e) => Outcome::Failed(format!("could not start the tool: {e}")),
        Ok(_) => match rx.recv_timeout(bounds.timeout) {
            Ok(Ok(Ok(text))) => Outcome::Ok(text),
            Ok(Ok(Err(message))) => Outcome::Failed(message),
            Ok(Err(panic)) => Outcome::Panicked(panic_message(&panic)),
            Err(_) => Outcome::TimedOut,
        },
    };
    let observation = match &outcome {
        Outcome::Ok(text) => cut(text, bounds.max_output),
        Outcome::Failed(m) => cut(&format!("error: {m}"), bounds.max_output),
        Outcome::TimedOut => format!(
            "error: no answer within {:.1} s",
            bounds.timeout.as_secs_f64()
        ),
        Outcome::Panicked(m) => cut(&format!("error: the tool failed: {m}"), bounds.max_output),
    };
    Called {
        outcome,
        observation,
        elapsed: started.elapsed(),
    }
}
// ANCHOR_END: call_bounded

/// `text` cut to at most `max` bytes on a character boundary, saying how
/// much was cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes cut)", &text[..end], text.len() - end)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Fixed(fn(&str) -> Result<String, String>);
    impl Tool for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn description(&self) -> &str {
            "a test tool"
        }
        fn call(&self, input: &str) -> Result<String, String> {
            (self.0)(input)
        }
    }

    fn bounds(ms: u64) -> Bounds {
        Bounds {
            max_output: 16,
            timeout: Duration::from_millis(ms),
        }
    }

    #[test]
    fn every_way_a_tool_can_go_wrong_is_an_observation() {
        let ok = call_bounded(
            Arc::new(Fixed(|i| Ok(i.to_uppercase()))),
            "abc",
            bounds(1000),
        );
        assert_eq!(
            (ok.outcome, ok.observation.as_str()),
            (Outcome::Ok("ABC".into()), "ABC")
        );
        let long = call_bounded(Arc::new(Fixed(|_| Ok("é".repeat(40)))), "", bounds(1000));
        assert!(
            long.observation.starts_with(&"é".repeat(8)),
            "{}",
            long.observation
        );
        assert!(
            long.observation.ends_with("(64 more bytes cut)"),
            "{}",
            long.observation
        );
        let failed = call_bounded(Arc::new(Fixed(|_| Err("no".into()))), "", bounds(1000));
        assert_eq!(failed.observation, "error: no");
        let slow = call_bounded(
            Arc::new(Fixed(|_| {
                std::thread::sleep(Duration::from_millis(500));
                Ok("late".into())
            })),
            "",
            bounds(50),
        );
        assert_eq!(slow.outcome, Outcome::TimedOut);
        assert!(slow.elapsed < Duration::from_millis(400));
        let panicked = call_bounded(Arc::new(Fixed(|_| panic!("boom"))), "", bounds(1000));
        assert_eq!(panicked.outcome, Outcome::Panicked("boom".into()));
    }
}
