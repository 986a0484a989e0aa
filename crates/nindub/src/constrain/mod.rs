//! Constrained decoding: generation held to a JSON Schema by construction.
//!
//! A small model asked for a tool call writes a valid one most of the time;
//! a constrained decoder makes every one valid. The schema is compiled to a
//! pushdown automaton over bytes ([`schema`] → [`machine`]); before each
//! token, every token of the vocabulary that would take the text outside
//! the schema's language is masked to −∞ ([`mask`]), so whatever the
//! sampler picks, the text stays a prefix of a valid document, and the end
//! token is allowed only once the document is whole.
//!
//! | module | what |
//! |---|---|
//! | [`schema`] | the JSON Schema subset, compiled ([`Grammar`]); what it cannot honour is refused by name ([`SchemaError`]) |
//! | [`machine`] | the automaton's [`State`]: one small frame per value being written; a byte at a time |
//! | [`mask`] | the vocabulary as a trie of token bytes ([`Vocab`]), the allowed set ([`Mask`]), and a generation's [`Constraint`] with its per-state cache |

pub mod machine;
pub mod mask;
pub mod schema;

pub use machine::State;
pub use mask::{Constraint, Mask, Vocab};
pub use schema::{Grammar, SchemaError};

impl From<SchemaError> for crate::error::Error {
    fn from(e: SchemaError) -> Self {
        crate::error::Error::invalid("JSON schema", e.to_string())
    }
}
