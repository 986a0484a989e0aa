use std::path::Path;

use super::Lcg;
use exercises::archmage::sovereign as sv;

/// Trial 1 against the engine: the same choices compiled as a JSON Schema
/// `enum`, the same vocabulary walked as a trie.
pub fn enum_mask() {
    assert_eq!(
        sv::enum_mask(&["yes", "no"], "y", &["e", "es", "yes", "", "n"]),
        vec![true, true, false, false, false],
        "choices yes, no after `y`"
    );
    assert_eq!(
        sv::enum_mask(&["1", "12"], "1", &["", "2", "23", "1"]),
        vec![true, true, false, false],
        "after `1`, which is a choice and the start of another: the end and `2`"
    );
    let values = [
        serde_json::json!("calc"),
        serde_json::json!("search"),
        serde_json::json!("read_file"),
        serde_json::json!(true),
        serde_json::json!(12),
        serde_json::json!(1),
    ];
    let choices: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    let choices: Vec<&str> = choices.iter().map(String::as_str).collect();
    let schema = serde_json::json!({ "enum": values }).to_string();
    let grammar = nindub::constrain::Grammar::from_json(&schema).unwrap();
    let mut rng = Lcg(7);
    let pieces = [
        "\"", "c", "ca", "calc", "\"calc\"", "al", "c\"", "s", "search\"", "\"se", "r", "read",
        "_file\"", "t", "true", "rue", "1", "2", "12", "",
    ];
    for round in 0..200 {
        let choice = choices[(rng.step() >> 33) as usize % choices.len()];
        let cut = (rng.step() >> 33) as usize % (choice.len() + 1);
        let written = &choice[..cut];
        let vocab: Vec<&str> = (0..8)
            .map(|_| pieces[(rng.step() >> 33) as usize % pieces.len()])
            .collect();
        let tokens: Vec<Option<Vec<u8>>> = vocab
            .iter()
            .map(|t| (!t.is_empty()).then(|| t.as_bytes().to_vec()))
            .collect();
        let end: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&i| vocab[i as usize].is_empty())
            .collect();
        let engine = nindub::constrain::Vocab::new(&tokens, &end);
        let mut state = nindub::constrain::State::new(&grammar);
        assert!(state.feed_all(&grammar, written.as_bytes()));
        let mask = engine.allowed(&grammar, &state);
        let want: Vec<bool> = (0..vocab.len() as u32).map(|i| mask.allows(i)).collect();
        assert_eq!(
            sv::enum_mask(&choices, written, &vocab),
            want,
            "round {round}: choices {choices:?}, written {written:?}, vocabulary {vocab:?}"
        );
    }
}

/// Trial 2 against serde_json: a text your steps accept, ending where a
/// number may end, is exactly a text serde_json reads as one number.
pub fn number_step() {
    use sv::Num;
    let accepts = |text: &str| {
        let mut s = Num::Start;
        for b in text.bytes() {
            match sv::number_step(s, b) {
                Some(n) => s = n,
                None => return false,
            }
        }
        matches!(s, Num::Zero | Num::Int | Num::Frac | Num::ExpDigits)
    };
    for ok in [
        "0", "-0", "7", "-12", "3.25", "0.5", "1e9", "2E-3", "-0.0e+10",
    ] {
        assert!(accepts(ok), "`{ok}` is a JSON number");
    }
    for bad in [
        "", "-", "01", "1.", ".5", "1e", "1e+", "+1", "--1", "1.2.3", "0x1", "1e2.5",
    ] {
        assert!(!accepts(bad), "`{bad}` is not a JSON number");
    }
    let alphabet = b"-+.eE0123456789";
    let mut rng = Lcg(11);
    for _ in 0..20_000 {
        let len = 1 + (rng.step() >> 33) as usize % 7;
        let text: String = (0..len)
            .map(|_| alphabet[(rng.step() >> 33) as usize % alphabet.len()] as char)
            .collect();
        let parsed = serde_json::from_str::<serde_json::Value>(&text);
        if parsed
            .as_ref()
            .is_err_and(|e| e.to_string().contains("out of range"))
        {
            continue; // a valid number too large for f64: serde_json's limit, not the grammar's
        }
        let want = parsed.is_ok_and(|v| v.is_number());
        assert_eq!(accepts(&text), want, "`{text}`: serde_json says {want}");
    }
}

/// Trial 3 against the agent loop's own budget.
pub fn step_budget() {
    assert_eq!(
        sv::step_budget(6, 1024, 256, 0, 0),
        Some(256),
        "a fresh run"
    );
    assert_eq!(
        sv::step_budget(6, 1024, 256, 3, 900),
        Some(124),
        "the tokens left"
    );
    assert_eq!(
        sv::step_budget(6, 1024, 256, 6, 0),
        None,
        "the steps are spent"
    );
    assert_eq!(
        sv::step_budget(6, 1024, 256, 2, 1024),
        None,
        "the tokens are spent"
    );
    assert_eq!(
        sv::step_budget(6, 1024, 256, 2, 5000),
        None,
        "more used than allowed"
    );
    assert_eq!(
        sv::step_budget(6, 1024, 0, 0, 0),
        None,
        "a step of 0 tokens"
    );
    for max_steps in 0..4 {
        for max_tokens in [0, 1, 100, 300] {
            for step_tokens in [0, 1, 128] {
                for steps_done in 0..5 {
                    for tokens_used in [0, 1, 99, 100, 299, 300, 400] {
                        let cfg = nindub::agent::AgentConfig {
                            max_steps,
                            max_tokens,
                            step_tokens,
                            ..Default::default()
                        };
                        assert_eq!(
                            sv::step_budget(
                                max_steps,
                                max_tokens,
                                step_tokens,
                                steps_done,
                                tokens_used
                            ),
                            nindub::agent::run::step_budget(&cfg, steps_done, tokens_used),
                            "max_steps {max_steps}, max_tokens {max_tokens}, step_tokens {step_tokens}, steps_done {steps_done}, tokens_used {tokens_used}"
                        );
                    }
                }
            }
        }
    }
}

/// Trial 4 against the agent's file tool on real files (without links,
/// where the text alone decides).
pub fn sandboxed() {
    let root = Path::new("/sandbox");
    assert_eq!(sv::sandboxed(root, "a/../b.txt"), Ok(root.join("b.txt")));
    assert_eq!(sv::sandboxed(root, "./a/./b.txt"), Ok(root.join("a/b.txt")));
    for bad in [
        "a/../../b.txt",
        "../b.txt",
        "/etc/passwd",
        "",
        "a/../../sandbox/b.txt",
    ] {
        assert!(sv::sandboxed(root, bad).is_err(), "`{bad}` must be refused");
    }
    let dir = std::env::temp_dir().join(format!("codex-sandbox-{}", std::process::id()));
    let inside = dir.join("box");
    std::fs::create_dir_all(inside.join("a")).unwrap();
    std::fs::write(inside.join("b.txt"), "b").unwrap();
    std::fs::write(inside.join("a/c.txt"), "c").unwrap();
    std::fs::write(dir.join("outside.txt"), "o").unwrap();
    let tool = nindub::agent::tools::ReadFile::new(&inside, 64).unwrap();
    let root = inside.canonicalize().unwrap();
    for path in [
        "b.txt",
        "a/c.txt",
        "a/../b.txt",
        "./a/./c.txt",
        "../outside.txt",
        "a/../../outside.txt",
        "/etc/hostname",
    ] {
        let engine = tool.resolve(path);
        let yours = sv::sandboxed(&root, path);
        assert_eq!(
            yours.is_ok(),
            engine.is_ok(),
            "`{path}`: yours {yours:?}, the file tool's {engine:?}"
        );
        if let (Ok(a), Ok(b)) = (yours, engine) {
            assert_eq!(a, b, "`{path}`");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
