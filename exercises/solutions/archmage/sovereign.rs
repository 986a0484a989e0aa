//! Reference solutions: "NINDUB the Sovereign".

use std::path::{Component, Path, PathBuf};

pub fn enum_mask(choices: &[&str], written: &str, vocab: &[&str]) -> Vec<bool> {
    vocab
        .iter()
        .map(|token| {
            if token.is_empty() {
                choices.contains(&written)
            } else {
                let text = format!("{written}{token}");
                choices.iter().any(|c| c.starts_with(&text))
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num {
    Start,
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

pub fn number_step(state: Num, byte: u8) -> Option<Num> {
    let digit = byte.is_ascii_digit();
    Some(match (state, byte) {
        (Num::Start, b'-') => Num::Minus,
        (Num::Start | Num::Minus, b'0') => Num::Zero,
        (Num::Start | Num::Minus, _) if digit => Num::Int,
        (Num::Int, _) if digit => Num::Int,
        (Num::Zero | Num::Int, b'.') => Num::Dot,
        (Num::Dot | Num::Frac, _) if digit => Num::Frac,
        (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Num::Exp,
        (Num::Exp, b'+' | b'-') => Num::ExpSign,
        (Num::Exp | Num::ExpSign | Num::ExpDigits, _) if digit => Num::ExpDigits,
        _ => return None,
    })
}

pub fn step_budget(
    max_steps: usize,
    max_tokens: usize,
    step_tokens: usize,
    steps_done: usize,
    tokens_used: usize,
) -> Option<usize> {
    if steps_done >= max_steps {
        return None;
    }
    let budget = max_tokens.saturating_sub(tokens_used).min(step_tokens);
    (budget > 0).then_some(budget)
}

pub fn sandboxed(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let path = Path::new(relative);
    if relative.is_empty() {
        return Err("no path".into());
    }
    let mut names = vec![];
    for c in path.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                names
                    .pop()
                    .ok_or_else(|| format!("`{relative}` climbs above the sandbox"))?;
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{relative}` is absolute"));
            }
        }
    }
    Ok(names.iter().fold(root.to_path_buf(), |p, n| p.join(n)))
}
