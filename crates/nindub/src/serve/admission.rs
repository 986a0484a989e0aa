//! The server's two pure rules, apart from the machinery that applies them
//! (so a learner's trial and a unit test can check them without a runtime):
//! whether a request may wait, and how much streamed text to hold back
//! while it could still become a stop string.

// ANCHOR: admit
/// The admission rule: accept while fewer than `capacity` requests wait;
/// otherwise refuse, saying when to retry: the time the work ahead should
/// take (`waiting + running` jobs at `mean_service_secs` each), in whole
/// seconds between 1 and 120.
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
    Err((ahead.ceil() as u64).clamp(1, 120))
}
// ANCHOR_END: admit

// ANCHOR: held_back
/// How many bytes at the end of `text` could still become a stop string:
/// the longest suffix that is a proper prefix of one of them.
pub fn held_back(text: &str, stops: &[String]) -> usize {
    let mut keep = 0;
    for stop in stops {
        for (i, _) in stop.char_indices().skip(1) {
            if i > keep && text.ends_with(&stop[..i]) {
                keep = i;
            }
        }
    }
    keep
}
// ANCHOR_END: held_back

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_bounded_and_says_when_to_return() {
        assert_eq!(admit(0, 1, 2, 3.0), Ok(()));
        assert_eq!(admit(1, 1, 2, 3.0), Ok(()));
        assert_eq!(admit(2, 1, 2, 3.0), Err(9));
        assert_eq!(admit(0, 0, 0, 0.0), Err(1));
        assert_eq!(admit(100, 1, 4, 10.0), Err(120));
    }

    #[test]
    fn stop_prefixes_are_held_back() {
        let stops = vec!["END".to_string(), "\n\n".to_string()];
        assert_eq!(held_back("the E", &stops), 1);
        assert_eq!(held_back("the EN", &stops), 2);
        assert_eq!(held_back("the\n", &stops), 1);
        assert_eq!(held_back("the", &stops), 0);
        assert_eq!(held_back("é", &["éa".to_string()]), 2);
    }
}
