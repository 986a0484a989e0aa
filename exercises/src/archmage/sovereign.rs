//! Trials of "NINDUB the Sovereign": validity by construction.
//!
//! A constrained decoder keeps a model's text inside a language: before
//! each token it masks every token that would leave it. The language is an
//! automaton; the mask asks, for each token of the vocabulary, whether the
//! automaton takes the token's whole text from where it stands. The agent
//! loop around it keeps its own budgets (steps, tokens) and its own walls
//! (a sandbox for the files a tool may read).
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

use std::path::{Path, PathBuf};

/// Trial 1. The mask of a tiny grammar: the language is `choices` (whole
/// texts, such as `"calc"` with its quotes, or `true`), `written` is what
/// the model wrote so far, and `vocab[i]` is token `i`'s text; the empty
/// text is the end token.
///
/// Token `i` is allowed when `written + vocab[i]` is a prefix of some
/// choice (a token may span several characters, even a whole choice); the
/// end token when `written` is exactly a choice. Example: choices
/// `["yes", "no"]`, written `"y"`, vocab `["e", "es", "yes", "", "n"]` →
/// `[true, true, false, false, false]`.
pub fn enum_mask(choices: &[&str], written: &str, vocab: &[&str]) -> Vec<bool> {
    todo!(
        "for each token: is written + token a prefix of a choice (or, for the end token, a choice)?"
    )
}

/// Where a JSON number is, as its automaton reads it byte by byte:
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num {
    /// Nothing read yet.
    Start,
    /// After `-`.
    Minus,
    /// After a leading `0` (no more integer digits may follow it).
    Zero,
    /// In the integer digits after `1`–`9`.
    Int,
    /// After `.`.
    Dot,
    /// In the fraction's digits.
    Frac,
    /// After `e` or `E`.
    Exp,
    /// After the exponent's sign.
    ExpSign,
    /// In the exponent's digits.
    ExpDigits,
}

/// Trial 2. One step of the number automaton: the state after `byte`, or
/// `None` where a number cannot go on with it. A number may end in `Zero`,
/// `Int`, `Frac` and `ExpDigits` only (the check folds your steps over
/// texts and compares with what `serde_json` parses as a number).
pub fn number_step(state: Num, byte: u8) -> Option<Num> {
    todo!("one match on (state, byte)")
}

/// Trial 3. The agent's budgets: the tokens the next step may take, or
/// `None` when the run must end. It ends when `steps_done` reached
/// `max_steps`, or when no token is left of `max_tokens` after
/// `tokens_used`; otherwise a step takes at most `step_tokens`. A step of
/// 0 tokens is no step (`None`), and `tokens_used` may exceed `max_tokens`.
pub fn step_budget(
    max_steps: usize,
    max_tokens: usize,
    step_tokens: usize,
    steps_done: usize,
    tokens_used: usize,
) -> Option<usize> {
    todo!("steps first, then the tokens left, capped by a step's share")
}

/// Trial 4. The file `relative` names under `root`, checked by its text
/// alone: `Err` for an empty or absolute path, and for one whose `..`
/// would climb above `root` at any point; `.` is skipped and `..` removes
/// the last name. `Ok(root.join(the names that remain))` otherwise.
/// Example: `a/../b.txt` → `root/b.txt`; `a/../../b.txt` → `Err`.
pub fn sandboxed(root: &Path, relative: &str) -> Result<PathBuf, String> {
    todo!("walk the components, keeping a stack of names")
}
