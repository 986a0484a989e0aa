//! Constrained decoding: the schema compiler, the automaton against
//! serde_json, the trie mask against feeding every token, and the real
//! SmolLM2 held to schemas.

use std::sync::Arc;

use nindub::constrain::{Constraint, Grammar, State, Vocab};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

fn accepts(g: &Grammar, text: &str) -> bool {
    let mut s = State::new(g);
    s.feed_all(g, text.as_bytes()) && s.can_end(g)
}

const TOOL: &str = r#"{
  "type": "object",
  "properties": {
    "tool": {"enum": ["calc", "search", "read_file"]},
    "args": {
      "type": "object",
      "properties": {
        "expression": {"type": "string", "maxLength": 40},
        "limit": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "exact": {"type": "boolean"}
      },
      "required": ["expression"]
    },
    "why": {"type": "string"}
  },
  "required": ["tool", "args"]
}"#;

/// A small validator for the subset: the test's own reading of the schema.
fn valid(schema: &Value, v: &Value) -> bool {
    if let Some(e) = schema.get("enum") {
        return e.as_array().unwrap().contains(v);
    }
    if let Some(c) = schema.get("const") {
        return c == v;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(o) = v.as_object() else { return false };
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                if !req.iter().all(|r| o.contains_key(r.as_str().unwrap())) {
                    return false;
                }
            }
            match props {
                None => true,
                Some(p) => o.iter().all(|(k, x)| p.get(k).is_some_and(|s| valid(s, x))),
            }
        }
        Some("array") => {
            let Some(a) = v.as_array() else { return false };
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
            let max = schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX) as usize;
            a.len() >= min
                && a.len() <= max
                && schema
                    .get("items")
                    .is_none_or(|s| a.iter().all(|x| valid(s, x)))
        }
        Some("string") => {
            let Some(s) = v.as_str() else { return false };
            let n = s.chars().count();
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let max = schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX) as usize;
            n >= min && n <= max
        }
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some("null") => v.is_null(),
        _ => true,
    }
}

#[test]
fn valid_texts_are_accepted_and_invalid_ones_refused() {
    let g = Grammar::from_json(TOOL).unwrap();
    for ok in [
        r#"{"tool":"calc","args":{"expression":"2+2"}}"#,
        r#"{"tool": "calc", "args": {"expression": "2+2", "limit": -30}}"#,
        r#"{"tool":"search","args":{"expression":"a \"quoted\" \u00e9 word","tags":["x","y"],"exact":true},"why":"é—✓"}"#,
        r#"{"tool":"read_file","args":{"expression":"","exact":false},"why":""}"#,
    ] {
        assert!(accepts(&g, ok), "{ok}");
        assert!(valid(
            &serde_json::from_str(TOOL).unwrap(),
            &serde_json::from_str(ok).unwrap()
        ));
    }
    for bad in [
        r#"{"args":{"expression":"2"},"tool":"calc"}"#, // order
        r#"{"tool":"calc"}"#,                           // args missing
        r#"{"tool":"calculator","args":{"expression":""}}"#, // not in enum
        r#"{"tool":"calc","args":{"expression":"x","limit":1.5}}"#, // not an integer
        r#"{"tool":"calc","args":{"expression":"x","tags":["a","b","c","d"]}}"#, // maxItems
        r#"{"tool":"calc","args":{"expression":"\x"}}"#, // bad escape
        r#"{"tool":"calc","args":{"expression":"x"},"extra":1}"#, // undeclared
        r#"{"tool":"calc","args":{"expression":"x"}} "#, // after the end
        r#"{"tool":"calc","args":{"expression":"x"}"#,  // unfinished
        r#"{"tool":"calc","args":{"expression":"x","limit":01}}"#, // leading zero
        r#"{"tool":"calc",  "args":{"expression":"x"}}"#, // two spaces
    ] {
        assert!(!accepts(&g, bad), "{bad}");
    }
    let long = format!(
        r#"{{"tool":"calc","args":{{"expression":"{}"}}}}"#,
        "x".repeat(41)
    );
    assert!(!accepts(&g, &long));
    // Invalid UTF-8 inside a string: an overlong encoding and a lone
    // continuation byte.
    for bytes in [
        &b"\"\xC0\xAF\""[..],
        &b"\"\x80\""[..],
        &b"\"\xED\xA0\x80\""[..],
    ] {
        let g = Grammar::from_json(r#"{"type":"string"}"#).unwrap();
        let mut s = State::new(&g);
        assert!(!s.feed_all(&g, bytes), "{bytes:?}");
    }
}

#[test]
fn schemas_the_machine_cannot_honour_are_refused_by_name() {
    for (schema, says) in [
        (r#"{"type":"string","pattern":"^a"}"#, "`pattern`"),
        (r#"{"type":["string","null"]}"#, "unions"),
        (
            r#"{"type":"object","properties":{"a":{"type":"integer","minimum":0}}}"#,
            "/properties/a",
        ),
        (
            r#"{"type":"object","properties":{"a":{}},"required":["b"]}"#,
            "`b`",
        ),
        (r##"{"$ref":"#/defs/x"}"##, "`$ref`"),
        (
            r#"{"type":"object","properties":{"a":{}},"additionalProperties":true}"#,
            "additionalProperties",
        ),
        (
            r#"{"type":"array","minItems":3,"maxItems":2}"#,
            "minItems 3",
        ),
        (r#"{"enum":[]}"#, "1 to 64"),
        (r#"not json"#, "not JSON"),
        (r#"{"type":"tensor"}"#, "unknown type"),
    ] {
        let e = Grammar::from_json(schema).unwrap_err().to_string();
        assert!(e.contains(says), "{schema}: {e}");
    }
}

/// Random walks through the automaton: every byte drawn from those it
/// allows, until the value may end. Each text parses and validates.
#[test]
fn every_walk_the_machine_allows_is_valid_json_of_the_schema() {
    let schemas = [
        TOOL.to_string(),
        json!({"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 4}).to_string(),
        json!({"enum": [1, 12, "a", null, true, {"k": [1]}]}).to_string(),
        json!({}).to_string(),
        json!({"type": "object"}).to_string(),
        json!({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "array", "items": {"type": "object", "properties": {"c": {"type": "null"}}}}}}}}).to_string(),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for text in &schemas {
        let schema: Value = serde_json::from_str(text).unwrap();
        let g = Grammar::from_json(text).unwrap();
        let mut finished = 0;
        for _ in 0..300 {
            let mut s = State::new(&g);
            let mut out = vec![];
            for _ in 0..300 {
                if s.can_end(&g) && (s.is_done() || rng.random_bool(0.3)) {
                    break;
                }
                // Prefer structure over free text, so that walks end.
                let options: Vec<u8> = (0u8..=255).filter(|&b| s.clone().feed(&g, b)).collect();
                if options.is_empty() {
                    // Only the end may follow (a root number at its limit).
                    assert!(
                        s.can_end(&g),
                        "a dead end after {:?}",
                        String::from_utf8_lossy(&out)
                    );
                    break;
                }
                let structural: Vec<u8> = options
                    .iter()
                    .copied()
                    .filter(|b| b"{}[]\",:".contains(b))
                    .collect();
                let pool = if !structural.is_empty() && rng.random_bool(0.5) {
                    &structural
                } else {
                    &options
                };
                let b = pool[rng.random_range(0..pool.len())];
                assert!(s.feed(&g, b));
                out.push(b);
            }
            if !s.can_end(&g) {
                continue;
            }
            finished += 1;
            let text = String::from_utf8(out).expect("the machine writes UTF-8");
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(valid(&schema, &v), "{text} does not validate");
        }
        assert!(finished > 50, "{text}: only {finished} walks ended");
    }
}

/// A toy vocabulary whose tokens span several grammar symbols: the trie
/// walk allows exactly the tokens that feeding each one alone allows.
#[test]
fn the_trie_mask_equals_feeding_every_token() {
    let words = [
        "{",
        "}",
        "{\"",
        "\"",
        "\":",
        "\":\"",
        "tool",
        "\"tool\":\"calc\"",
        "calc",
        "search",
        "\",",
        ", ",
        ",",
        " ",
        "args",
        "\":{\"",
        "expression",
        "2",
        "+",
        "2+2",
        "\"}}",
        "}}",
        "é",
        "\\",
        "\\u00",
        "e9",
        "-1",
        "0",
        "12",
        ".5",
        "true",
        "[",
        "]",
        "\"]",
        "x\"",
        "\n",
    ];
    let tokens: Vec<Option<Vec<u8>>> = words
        .iter()
        .map(|w| Some(w.as_bytes().to_vec()))
        .chain([None]) // a special token
        .collect();
    let end = tokens.len() as u32 - 1;
    let vocab = Arc::new(Vocab::new(&tokens, &[end]));
    let g = Arc::new(Grammar::from_json(TOOL).unwrap());
    let mut c = Constraint::new(g.clone(), vocab.clone());
    let path = [
        "{\"",
        "tool",
        "\":\"",
        "calc",
        "\",",
        "\"",
        "args",
        "\":{\"",
        "expression",
        "\":\"",
        "2+2",
        "\"}}",
    ];
    let mut state = State::new(&g);
    for step in path {
        let mask = c.mask();
        for (id, t) in tokens.iter().enumerate() {
            let brute = match t {
                Some(b) => state.clone().feed_all(&g, b),
                None => state.can_end(&g),
            };
            assert_eq!(
                mask.allows(id as u32),
                brute,
                "token {:?} after {step:?}",
                words.get(id)
            );
        }
        let id = words.iter().position(|w| *w == step).unwrap() as u32;
        assert!(mask.allows(id), "{step}");
        c.advance(id, step.as_bytes()).unwrap();
        assert!(state.feed_all(&g, step.as_bytes()));
    }
    assert!(c.can_end() && c.mask().allows(end));
    assert_eq!(c.mask().count(), 1, "only the end");
    assert!(c.advance(0, b"{").is_err());
}

/// The bytes a byte-level token spells, joined, are the text it came from:
/// the Codex's reading of GPT-2's alphabet against the `tokenizers` library.
#[test]
fn token_bytes_join_into_the_encoded_text() {
    let file = nindub::model::gguf::GgufFile::open(&nindub::assets::smollm2().unwrap()).unwrap();
    let tok = nindub::model::tokenizer::GgufTokenizer::from_gguf(&file).unwrap();
    for text in [
        "The capital of France is Paris.",
        "{\"tool\": \"calc\",\n\t\"args\": [1, -2.5e3]}",
        "naïve café — 東京 🦀 \u{7f}\u{1}",
    ] {
        let ids = tok.encode(text).unwrap();
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| tok.token_bytes(id).unwrap())
            .collect();
        assert_eq!(bytes, text.as_bytes(), "{text:?}");
    }
    // Special tokens write no bytes: the grammar never allows them.
    let end = tok.encode("<|im_end|>").unwrap();
    assert_eq!(end.len(), 1);
    assert_eq!(tok.token_bytes(end[0]), None);
    assert_eq!(tok.token_bytes(u32::MAX), None);
}

/// On SmolLM2's 49,152 tokens the trie walk allows exactly the tokens
/// that feeding each one alone allows, at states inside keys, strings,
/// numbers and between values.
#[test]
fn the_mask_on_the_real_vocabulary_equals_feeding_every_token() {
    let file = nindub::model::gguf::GgufFile::open(&nindub::assets::smollm2().unwrap()).unwrap();
    let tok = nindub::model::tokenizer::GgufTokenizer::from_gguf(&file).unwrap();
    let vocab = tok.constraint_vocab();
    let g = Grammar::from_json(TOOL).unwrap();
    let bytes: Vec<Option<Vec<u8>>> = (0..vocab.len() as u32)
        .map(|id| tok.token_bytes(id))
        .collect();
    for prefix in [
        "",
        "{\"to",
        "{\"tool\": \"calc\", \"args\": {\"expression\": \"2 + ",
        "{\"tool\":\"search\",\"args\":{\"expression\":\"x\",\"limit\":1",
        "{\"tool\":\"search\",\"args\":{\"expression\":\"x\"}",
    ] {
        let mut state = State::new(&g);
        assert!(state.feed_all(&g, prefix.as_bytes()), "{prefix}");
        let mask = vocab.allowed(&g, &state);
        let mut allowed = 0;
        for (id, b) in bytes.iter().enumerate() {
            let brute = b
                .as_ref()
                .is_some_and(|b| !b.is_empty() && state.clone().feed_all(&g, b));
            assert_eq!(
                mask.allows(id as u32),
                brute,
                "{prefix:?} + {:?}",
                tok.token_text(id as u32)
            );
            allowed += brute as usize;
        }
        assert!(allowed > 0, "{prefix:?}: nothing allowed");
    }
}

/// SmolLM2 held to a tool-call schema, greedy and sampled: every output
/// parses and validates, and the generation ends at the document's end.
#[test]
fn the_real_model_writes_only_valid_documents() {
    use nindub::model::generate::{GenerateConfig, Generator, LoadOptions, StopReason};
    use nindub::model::sample::SamplingConfig;
    use nindub::model::tokenizer::Message;
    let mut g =
        Generator::open(&nindub::assets::smollm2().unwrap(), &LoadOptions::default()).unwrap();
    let schema: Value = serde_json::from_str(TOOL).unwrap();
    let grammar = Arc::new(Grammar::from_json(TOOL).unwrap());
    let prompt = g
        .chat_prompt(&[Message::new(
            "user",
            "What is 17 times 23? Answer with a tool call to the calculator.",
        )])
        .unwrap();
    let ids = g.tokenizer.encode(&prompt).unwrap();
    for (i, temperature) in [0.0, 0.8, 1.2, 1.5].into_iter().enumerate() {
        let cfg = GenerateConfig {
            sampling: SamplingConfig {
                temperature,
                seed: 11 + i as u64,
                ..SamplingConfig::default()
            },
            max_tokens: 160,
            constraint: Some(grammar.clone()),
            ..Default::default()
        };
        let out = g.generate(&ids, &cfg, |_| true).unwrap();
        assert_eq!(out.stop_reason, StopReason::EndOfSequence, "{:?}", out.text);
        let v: Value =
            serde_json::from_str(&out.text).unwrap_or_else(|e| panic!("{}: {e}", out.text));
        assert!(valid(&schema, &v), "{} does not validate", out.text);
        eprintln!("T = {temperature}: {}", out.text);
    }
}
