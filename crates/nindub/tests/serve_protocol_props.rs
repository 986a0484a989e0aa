//! The request parser under random bodies: it never panics, every refusal
//! is a 4xx with a message, and whatever it accepts is within range.

use nindub::serve::protocol::{Input, Limits, Request, parse_chat, parse_completion};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn limits() -> Limits {
    Limits {
        max_tokens: 256,
        max_prompt_tokens: 1024,
        context: 2048,
        samples: 4,
    }
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
        (-3.0f64..3.0).prop_map(|x| json!(x)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "model",
    "prompt",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "n",
    "logprobs",
    "top_logprobs",
    "echo",
    "frequency_penalty",
    "presence_penalty",
];

/// Objects with the real field names and random values: the interesting
/// region, where a parser is most likely to trust a type it should not.
fn request_like() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        3 => any_json(),
        1 => ".{0,20}".prop_map(Value::String),
        1 => Just(json!([{ "role": "user", "content": "hi" }])),
        1 => (0i64..300).prop_map(|n| json!(n)),
        1 => (0.0f64..2.5).prop_map(|x| json!(x)),
    ];
    prop::collection::vec((prop::sample::select(FIELDS), value), 0..8).prop_map(|pairs| {
        let mut m = Map::new();
        for (k, v) in pairs {
            m.insert(k.to_string(), v);
        }
        Value::Object(m)
    })
}

fn check(result: Result<Request, nindub::serve::protocol::ApiError>) {
    match result {
        Err(e) => {
            assert!((400..500).contains(&e.status), "{e}");
            assert!(!e.message.is_empty());
            assert!(e.body()["error"]["message"].is_string());
        }
        Ok(r) => {
            let s = &r.sampling;
            assert!((0.0..=2.0).contains(&s.temperature));
            assert!(s.top_p.is_none_or(|p| p > 0.0 && p < 1.0));
            assert!(s.min_p.is_none_or(|p| p > 0.0 && p <= 1.0));
            assert!(s.repeat_penalty > 0.0 && s.repeat_penalty <= 10.0);
            assert!(s.top_k.is_none_or(|k| k >= 1));
            assert!(r.max_tokens.is_none_or(|n| (1..=256).contains(&n)));
            assert!(r.top_logprobs <= 20);
            assert!((1..=4).contains(&r.n));
            assert!(r.stop.len() <= 4);
            match &r.input {
                Input::Prompt(p) => assert!(!p.is_empty()),
                Input::Chat(turns) => assert!(!turns.is_empty()),
            }
            s.validate()
                .expect("accepted settings are valid for the sampler");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check(parse_completion(&bytes, &limits()));
        check(parse_chat(&bytes, &limits()));
    }

    #[test]
    fn random_json_never_panics(v in any_json()) {
        let body = v.to_string();
        check(parse_completion(body.as_bytes(), &limits()));
        check(parse_chat(body.as_bytes(), &limits()));
    }

    #[test]
    fn request_like_objects_are_accepted_only_in_range(v in request_like()) {
        let body = v.to_string();
        check(parse_completion(body.as_bytes(), &limits()));
        check(parse_chat(body.as_bytes(), &limits()));
    }
}
