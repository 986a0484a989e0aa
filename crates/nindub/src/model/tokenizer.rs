//! A model's tokenizer, rebuilt from the GGUF file that carries it.
//!
//! A GGUF file of a byte-level BPE model (`tokenizer.ggml.model = "gpt2"`)
//! stores its vocabulary (`tokenizer.ggml.tokens`), its merge rules
//! (`tokenizer.ggml.merges`, "Ġ t" meaning: merge `Ġ` and `t`), the type of
//! each token (3 = control, i.e. special), the ids of BOS/EOS, the name of
//! its pre-tokenizer (`tokenizer.ggml.pre`) and its chat template. From
//! those this module builds a `tokenizers::Tokenizer`, the same library the
//! Hugging Face stack uses, so encoding and decoding are the library's.
//!
//! The pre-tokenizer (how text is split before BPE) is not in the file, only
//! its name; the names llama.cpp gives and the splits they mean are listed
//! in [`pre_tokenizer`]. Special tokens (`<|im_start|>`) are always matched
//! in the text, as the chat template needs.

use serde::Serialize;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};
use crate::model::gguf::GgufFile;
use candle_core::quantized::gguf_file::Value;

/// GGUF's token type for control (special) tokens.
const TOKEN_TYPE_CONTROL: i32 = 3;

/// A tokenizer with what generation needs to know about it.
#[derive(Clone)]
pub struct GgufTokenizer {
    pub inner: Tokenizer,
    pub bos: Option<u32>,
    pub eos: u32,
    /// Whether a BOS token starts every sequence (SmolLM2: no).
    pub add_bos: bool,
    /// The Jinja chat template, if the file has one.
    pub chat_template: Option<String>,
    /// The vocabulary as constrained decoding walks it, built on first use.
    vocab: std::sync::OnceLock<std::sync::Arc<crate::constrain::Vocab>>,
}

/// One message of a conversation.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The pre-tokenizer for a llama.cpp pre-tokenizer name.
pub fn pre_tokenizer(name: &str) -> Result<PreTokenizerWrapper> {
    let byte_level = ByteLevel::new(false, true, true);
    Ok(match name {
        // GPT-2's split (contractions, letters, numbers, punctuation, spaces).
        "gpt2" | "default" => byte_level.into(),
        // The same after putting every digit apart ("2024" → 2,0,2,4), as
        // llama.cpp's starcoder/smollm family and the models' own
        // tokenizer.json (Digits(individual) + ByteLevel) do.
        "smollm" | "starcoder" | "refact" | "codeshell" => {
            Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
        }
        other => {
            return Err(Error::invalid(
                "tokenizer",
                format!(
                    "pre-tokenizer `{other}` is not supported (supported: gpt2, smollm, starcoder)"
                ),
            ));
        }
    })
}

impl GgufTokenizer {
    /// Rebuilds the tokenizer of a GGUF file.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let meta = &file.content.metadata;
        let field = |key: &str, reason: &str| Error::Metadata {
            path: file.path.clone(),
            field: key.into(),
            reason: reason.into(),
        };
        let model = file
            .metadata_str("tokenizer.ggml.model")
            .unwrap_or("absent");
        if model != "gpt2" {
            return Err(field(
                "tokenizer.ggml.model",
                &format!("`{model}`: only byte-level BPE (`gpt2`) tokenizers are supported"),
            ));
        }
        let tokens = string_array(meta.get("tokenizer.ggml.tokens"))
            .ok_or_else(|| field("tokenizer.ggml.tokens", "absent or not strings"))?;
        let merges = string_array(meta.get("tokenizer.ggml.merges"))
            .ok_or_else(|| field("tokenizer.ggml.merges", "absent or not strings"))?;
        let merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| field("tokenizer.ggml.merges", &format!("`{m}` is not a pair")))
            })
            .collect::<Result<Vec<_>>>()?;
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| field("tokenizer.ggml.merges", &e.to_string()))?;
        let mut inner = Tokenizer::new(bpe);
        let pre = file.metadata_str("tokenizer.ggml.pre").unwrap_or("gpt2");
        inner.with_pre_tokenizer(Some(pre_tokenizer(pre)?));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        if let Some(Value::Array(types)) = meta.get("tokenizer.ggml.token_type") {
            let special: Vec<AddedToken> = types
                .iter()
                .zip(&tokens)
                .filter(|(t, _)| t.to_i32().is_ok_and(|t| t == TOKEN_TYPE_CONTROL))
                .map(|(_, tok)| AddedToken::from(tok.to_string(), true))
                .collect();
            inner
                .add_special_tokens(special)
                .map_err(|e| field("tokenizer.ggml.token_type", &e.to_string()))?;
        }
        let id = |key: &str| {
            crate::model::gguf::gguf_u64(meta, key, &file.path)
                .ok()
                .map(|v| v as u32)
        };
        let eos = id("tokenizer.ggml.eos_token_id")
            .ok_or_else(|| field("tokenizer.ggml.eos_token_id", "absent"))?;
        Ok(GgufTokenizer {
            inner,
            bos: id("tokenizer.ggml.bos_token_id"),
            eos,
            add_bos: matches!(
                meta.get("tokenizer.ggml.add_bos_token"),
                Some(Value::Bool(true))
            ),
            chat_template: file
                .metadata_str("tokenizer.chat_template")
                .map(str::to_string),
            vocab: Default::default(),
        })
    }

    /// Reads a `tokenizer.json` (the format of the `tokenizers` library) with
    /// the end and start ids from its model's `config.json`; there is no
    /// chat template (a student of the Transfer of Wisdom is a base model).
    pub fn from_json_file(path: &std::path::Path, eos: u32, bos: Option<u32>) -> Result<Self> {
        let inner = Tokenizer::from_file(path).map_err(|e| Error::Foreign {
            path: path.to_path_buf(),
            expected: "tokenizer.json",
            reason: e.to_string(),
        })?;
        Ok(GgufTokenizer {
            inner,
            bos,
            eos,
            add_bos: false,
            chat_template: None,
            vocab: Default::default(),
        })
    }

    /// Token ids of `text` (special tokens in the text are matched; a BOS is
    /// prepended when the model wants one).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::invalid("text to tokenize", e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if self.add_bos
            && let Some(bos) = self.bos
        {
            ids.push(bos);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Text of `ids`; special tokens are kept when `skip_special` is false.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| Error::invalid("token ids to decode", e.to_string()))
    }

    /// The text of one token as the vocabulary spells it (`Ġthe`).
    pub fn token_text(&self, id: u32) -> String {
        self.inner
            .id_to_token(id)
            .unwrap_or_else(|| format!("<{id}>"))
    }

    // ANCHOR: token_bytes
    /// The bytes token `id` writes, or `None` for a special token (or an
    /// id outside the vocabulary). A byte-level BPE spells every byte as a
    /// printable character (GPT-2's table: `Ġ` for a space, `Ċ` for a
    /// newline), so a token that ends inside a UTF-8 character still has
    /// exact bytes, where its decoded text would be `�`.
    pub fn token_bytes(&self, id: u32) -> Option<Vec<u8>> {
        if self.inner.get_added_tokens_decoder().contains_key(&id) {
            return None;
        }
        let text = self.inner.id_to_token(id)?;
        let table = byte_of_char();
        text.chars().map(|c| table.get(&c).copied()).collect()
    }
    // ANCHOR_END: token_bytes

    /// The vocabulary as constrained decoding walks it: every token's
    /// bytes in a trie, the end token allowed where a value may end. Built
    /// once per tokenizer (about 50 ms for 49,152 tokens) and shared.
    pub fn constraint_vocab(&self) -> std::sync::Arc<crate::constrain::Vocab> {
        self.vocab
            .get_or_init(|| {
                let n = self.inner.get_vocab_size(true) as u32;
                let tokens: Vec<Option<Vec<u8>>> = (0..n).map(|id| self.token_bytes(id)).collect();
                std::sync::Arc::new(crate::constrain::Vocab::new(&tokens, &[self.eos]))
            })
            .clone()
    }

    /// The text one token decodes to (` the`); a token that is part of a
    /// multi-byte character decodes to `�`.
    pub fn piece(&self, id: u32) -> String {
        self.decode(&[id], false)
            .unwrap_or_else(|_| self.token_text(id))
    }

    /// Formats a conversation with the model's chat template (Jinja, run by
    /// minijinja), ending with the assistant's turn when `add_generation_prompt`.
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .chat_template
            .as_deref()
            .ok_or_else(|| Error::invalid("chat", "this model has no chat template"))?;
        let mut env = minijinja::Environment::new();
        env.add_template("chat", template)
            .map_err(|e| Error::invalid("chat template", e.to_string()))?;
        let tmpl = env
            .get_template("chat")
            .map_err(|e| Error::invalid("chat template", e.to_string()))?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.map(|b| self.token_text(b)).unwrap_or_default(),
            eos_token => self.token_text(self.eos),
        })
        .map_err(|e| Error::invalid("chat template", e.to_string()))
    }
}

fn string_array(v: Option<&Value>) -> Option<Vec<&str>> {
    match v? {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Some(s.as_str()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// GPT-2's byte-level alphabet, read backwards: the character that spells
/// each byte in a byte-level BPE vocabulary → the byte. Printable Latin-1
/// bytes spell themselves; the other 68 take the characters from U+0100 on,
/// in byte order.
fn byte_of_char() -> &'static std::collections::HashMap<char, u8> {
    static TABLE: std::sync::OnceLock<std::collections::HashMap<char, u8>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let mut next = 0x100u32;
        (0..=255u8)
            .map(|b| {
                let c = if printable(b) {
                    char::from(b)
                } else {
                    next += 1;
                    char::from_u32(next - 1).expect("U+0100..U+0143 are characters")
                };
                (c, b)
            })
            .collect()
    })
}
