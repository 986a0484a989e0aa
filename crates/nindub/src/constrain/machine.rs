//! A pushdown automaton over bytes that accepts exactly the JSON texts of
//! a compiled schema ([`Grammar`]): one frame per value being written, each
//! a small `Copy` state, so a [`State`] is cheap to clone, compare and hash
//! (the mask cache is keyed by it).
//!
//! JSON is written compactly, with one optional space after `:` and after
//! `,`; strings are checked as UTF-8 byte by byte (a token may end inside
//! a character), escapes included.

use super::schema::{Grammar, MAX_ANY_DEPTH, Node, NodeId};

/// No limit on a count.
const UNBOUNDED: u32 = u32::MAX;
/// Characters of a number at most (a model that keeps writing digits is
/// stopped by the grammar, not by the token budget).
const MAX_NUMBER_LEN: u8 = 24;

// ANCHOR: num
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Num {
    /// Nothing yet: `-` or a digit.
    Start,
    /// After `-`: a digit.
    Minus,
    /// After a leading `0`: may end, or `.`, `e`.
    Zero,
    /// Integer digits: may end, or more, `.`, `e`.
    Int,
    /// After `.`: a digit.
    Dot,
    /// Fraction digits: may end, or more, `e`.
    Frac,
    /// After `e`: a sign or a digit.
    Exp,
    /// After the exponent's sign: a digit.
    ExpSign,
    /// One exponent digit: may end, or one more.
    ExpDigits,
    /// Two exponent digits: may end, no more (a larger exponent can
    /// leave f64's range, which JSON parsers refuse).
    ExpDigits2,
}

impl Num {
    fn can_end(self) -> bool {
        matches!(
            self,
            Num::Zero | Num::Int | Num::Frac | Num::ExpDigits | Num::ExpDigits2
        )
    }

    fn next(self, b: u8, integer: bool) -> Option<Num> {
        let digit = b.is_ascii_digit();
        Some(match (self, b) {
            (Num::Start, b'-') => Num::Minus,
            (Num::Start | Num::Minus, b'0') => Num::Zero,
            (Num::Start | Num::Minus, _) if digit => Num::Int,
            (Num::Int, _) if digit => Num::Int,
            (Num::Zero | Num::Int, b'.') if !integer => Num::Dot,
            (Num::Dot | Num::Frac, _) if digit => Num::Frac,
            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') if !integer => Num::Exp,
            (Num::Exp, b'+' | b'-') => Num::ExpSign,
            (Num::Exp | Num::ExpSign, _) if digit => Num::ExpDigits,
            (Num::ExpDigits, _) if digit => Num::ExpDigits2,
            _ => return None,
        })
    }
}
// ANCHOR_END: num

/// Where a string is: its opening quote, its body, an escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Str {
    Open,
    Body,
    /// After `\`.
    Escape,
    /// Hex digits of `\uXXXX` still to come.
    Hex(u8),
    /// Continuation bytes of a UTF-8 character still to come, and the
    /// range the next one must lie in.
    Utf8 {
        left: u8,
        lo: u8,
        hi: u8,
    },
}

/// Where an object or array is, between its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Sep {
    /// Before `{` / `[`.
    Open,
    /// After `{` / `[`: the first member, or the close.
    First,
    /// After a key: `:`.
    Colon,
    /// After `:` (`spaced` once a space was written): the value.
    Value { spaced: bool },
    /// After a value: `,` or the close.
    After,
    /// After `,`: the next member.
    Next { spaced: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Frame {
    /// Any value; the first byte picks its kind.
    Any {
        depth: u8,
    },
    /// One of a node's literal texts: those still `alive` (a bit each),
    /// `pos` bytes in.
    Literal {
        node: NodeId,
        pos: u16,
        alive: u64,
    },
    /// `true`, `false` or `null` inside an unconstrained value.
    Word {
        pos: u8,
        alive: u8,
    },
    /// A string, `len` characters in (counted only up to the bound that
    /// matters, so that a long free string keeps one state).
    String {
        min: u32,
        max: u32,
        len: u32,
        at: Str,
    },
    Number {
        integer: bool,
        at: Num,
        len: u8,
    },
    /// An object of declared properties: `prop` is the last one written
    /// (or the next to consider), `key` the keys still matching and `pos`
    /// the bytes of the key read.
    Object {
        node: NodeId,
        at: Sep,
        prop: u16,
        key: u64,
        pos: u16,
    },
    /// An object with any keys (a key is a string frame pushed on top).
    AnyObject {
        depth: u8,
        at: Sep,
    },
    /// An array: `count` items begun.
    Array {
        items: Option<NodeId>,
        depth: u8,
        min: u32,
        max: u32,
        count: u32,
        at: Sep,
    },
}

const WORDS: [&[u8]; 3] = [b"true", b"false", b"null"];

/// The automaton's state: the frames of the values being written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct State {
    stack: Vec<Frame>,
    /// The root value is complete; nothing more may follow.
    done: bool,
}

impl State {
    /// Nothing written yet.
    pub fn new(g: &Grammar) -> State {
        State {
            stack: vec![start(g, 0, 0)],
            done: false,
        }
    }

    /// Whether the text so far is a whole value: the end may come now.
    pub fn can_end(&self, g: &Grammar) -> bool {
        if self.done {
            return true;
        }
        match self.stack.as_slice() {
            [Frame::Number { at, .. }] => at.can_end(),
            [Frame::Literal { node, pos, alive }] => complete(g, *node, *pos, *alive),
            [Frame::Word { pos, alive }] => word_complete(*pos, *alive),
            _ => false,
        }
    }

    /// The state as far as tokens of at most `longest` bytes can tell:
    /// a string's length bounds matter only within `longest` characters of
    /// them, so a long free string has one key, and one mask, throughout.
    pub fn key(&self, longest: usize) -> State {
        let l = u32::try_from(longest).unwrap_or(u32::MAX - 1);
        let mut out = self.clone();
        for f in &mut out.stack {
            if let Frame::String { min, max, len, .. } = f {
                let to_min = min.saturating_sub(*len).min(l + 1);
                let to_max = if *max == UNBOUNDED || *max - *len > l {
                    UNBOUNDED
                } else {
                    *max - *len
                };
                (*min, *max, *len) = (to_min, to_max, 0);
            }
        }
        out
    }

    /// Whether the root value is complete (only the end may follow).
    pub fn is_done(&self) -> bool {
        self.done
    }

    // ANCHOR: feed
    /// Takes one byte; `false` (and a state to throw away) if the schema
    /// does not allow it here.
    pub fn feed(&mut self, g: &Grammar, b: u8) -> bool {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return false;
            };
            match step(g, top, b) {
                Step::Took => {}
                Step::TookDone => self.pop(),
                Step::Refused => return false,
                Step::Push(child) => {
                    self.stack.push(child);
                    continue;
                }
                Step::PushTook(child) => self.stack.push(child),
                Step::EndedBefore => {
                    // A number or literal ended before `b`: `b` belongs
                    // to the frame below.
                    self.pop();
                    if self.done {
                        return false;
                    }
                    continue;
                }
            }
            return true;
        }
    }
    // ANCHOR_END: feed

    /// Takes every byte of `bytes`.
    pub fn feed_all(&mut self, g: &Grammar, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.feed(g, b))
    }

    fn pop(&mut self) {
        self.stack.pop();
        if self.stack.is_empty() {
            self.done = true;
        }
    }
}

enum Step {
    /// The byte was taken; the frame goes on.
    Took,
    /// The byte was taken and completed the frame.
    TookDone,
    /// Not allowed.
    Refused,
    /// A child value starts here: push it, then feed it the byte.
    Push(Frame),
    /// The byte opened a child value (a key's quote): push it as it is.
    PushTook(Frame),
    /// The frame was complete before this byte, which is not its own.
    EndedBefore,
}

/// The frame that writes a value of `node`.
fn start(g: &Grammar, node: NodeId, depth: u8) -> Frame {
    match &g.nodes[node as usize] {
        Node::Any => Frame::Any { depth },
        Node::AnyObject => Frame::AnyObject {
            depth,
            at: Sep::Open,
        },
        Node::Object(_) => Frame::Object {
            node,
            at: Sep::Open,
            prop: 0,
            key: 0,
            pos: 0,
        },
        Node::Array { items, min, max } => Frame::Array {
            items: Some(*items),
            depth,
            min: *min,
            max: *max,
            count: 0,
            at: Sep::Open,
        },
        Node::String { min, max } => Frame::String {
            min: *min,
            max: *max,
            len: 0,
            at: Str::Open,
        },
        Node::Number { integer } => Frame::Number {
            integer: *integer,
            at: Num::Start,
            len: 0,
        },
        Node::Literals(texts) => Frame::Literal {
            node,
            pos: 0,
            alive: all(texts.len()),
        },
    }
}

fn all(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

fn bits(mask: u64) -> impl Iterator<Item = usize> {
    (0..64).filter(move |i| mask & (1 << i) != 0)
}

fn complete(g: &Grammar, node: NodeId, pos: u16, alive: u64) -> bool {
    let Node::Literals(texts) = &g.nodes[node as usize] else {
        return false;
    };
    bits(alive).any(|i| texts[i].len() == pos as usize)
}

fn word_complete(pos: u8, alive: u8) -> bool {
    (0..3).any(|i| alive & (1 << i) != 0 && WORDS[i].len() == pos as usize)
}

fn step(g: &Grammar, f: &mut Frame, b: u8) -> Step {
    match f {
        Frame::Any { depth } => {
            let depth = *depth;
            *f = match b {
                b'{' if depth < MAX_ANY_DEPTH => Frame::AnyObject {
                    depth,
                    at: Sep::Open,
                },
                b'[' if depth < MAX_ANY_DEPTH => Frame::Array {
                    items: None,
                    depth,
                    min: 0,
                    max: UNBOUNDED,
                    count: 0,
                    at: Sep::Open,
                },
                b'"' => Frame::String {
                    min: 0,
                    max: UNBOUNDED,
                    len: 0,
                    at: Str::Open,
                },
                b'-' | b'0'..=b'9' => Frame::Number {
                    integer: false,
                    at: Num::Start,
                    len: 0,
                },
                b't' | b'f' | b'n' => Frame::Word {
                    pos: 0,
                    alive: 0b111,
                },
                _ => return Step::Refused,
            };
            step(g, f, b)
        }
        Frame::Literal { node, pos, alive } => {
            let Node::Literals(texts) = &g.nodes[*node as usize] else {
                return Step::Refused;
            };
            let p = *pos as usize;
            let next = bits(*alive)
                .filter(|&i| texts[i].get(p) == Some(&b))
                .fold(0u64, |m, i| m | (1 << i));
            if next == 0 {
                return if complete(g, *node, *pos, *alive) {
                    Step::EndedBefore
                } else {
                    Step::Refused
                };
            }
            *pos += 1;
            *alive = next;
            // Every text still alive is complete: nothing can follow.
            if bits(next).all(|i| texts[i].len() == p + 1) {
                Step::TookDone
            } else {
                Step::Took
            }
        }
        Frame::Word { pos, alive } => {
            let p = *pos as usize;
            let next = (0..3)
                .filter(|&i| *alive & (1 << i) != 0 && WORDS[i].get(p) == Some(&b))
                .fold(0u8, |m, i| m | (1 << i));
            if next == 0 {
                return Step::Refused;
            }
            *pos += 1;
            *alive = next;
            if (0..3).all(|i| next & (1 << i) == 0 || WORDS[i].len() == p + 1) {
                Step::TookDone
            } else {
                Step::Took
            }
        }
        Frame::Number { integer, at, len } => match at.next(b, *integer) {
            Some(n) if *len < MAX_NUMBER_LEN => {
                *at = n;
                *len += 1;
                Step::Took
            }
            Some(_) => Step::Refused,
            None if at.can_end() => Step::EndedBefore,
            None => Step::Refused,
        },
        Frame::String { min, max, len, at } => string(*min, *max, len, at, b),
        Frame::Object {
            node,
            at,
            prop,
            key,
            pos,
        } => {
            let Node::Object(props) = &g.nodes[*node as usize] else {
                return Step::Refused;
            };
            // Properties that may be written next, starting from `from`:
            // each one up to and including the first required one.
            let candidates = |from: usize| -> u64 {
                let mut m = 0u64;
                for (i, p) in props.iter().enumerate().skip(from) {
                    m |= 1 << i;
                    if p.required {
                        break;
                    }
                }
                m
            };
            let may_close = |from: usize| props.iter().skip(from).all(|p| !p.required);
            match (*at, b) {
                (Sep::Open, b'{') => *at = Sep::First,
                (Sep::First, b'}') if may_close(0) => return Step::TookDone,
                (Sep::Next { spaced: false }, b' ') => *at = Sep::Next { spaced: true },
                (Sep::First | Sep::Next { .. }, b'"') => {
                    let from = if *at == Sep::First {
                        0
                    } else {
                        *prop as usize + 1
                    };
                    *key = candidates(from);
                    *pos = 1;
                    *at = Sep::Colon;
                    if *key == 0 {
                        return Step::Refused;
                    }
                }
                (Sep::Colon, _) if *pos > 0 => {
                    // Inside a key: match it against the candidates.
                    let p = *pos as usize;
                    let next = bits(*key)
                        .filter(|&i| props[i].key.get(p) == Some(&b))
                        .fold(0u64, |m, i| m | (1 << i));
                    if next == 0 {
                        return Step::Refused;
                    }
                    *key = next;
                    *pos += 1;
                    if let Some(i) = bits(next).find(|&i| props[i].key.len() == p + 1) {
                        // Keys are quoted, so a complete one is the only one left.
                        *prop = i as u16;
                        *pos = 0;
                    }
                }
                (Sep::Colon, b':') => *at = Sep::Value { spaced: false },
                (Sep::Value { spaced: false }, b' ') => *at = Sep::Value { spaced: true },
                (Sep::Value { .. }, _) => {
                    *at = Sep::After;
                    return Step::Push(start(g, props[*prop as usize].node, 0));
                }
                (Sep::After, b',') if (*prop as usize) + 1 < props.len() => {
                    *at = Sep::Next { spaced: false }
                }
                (Sep::After, b'}') if may_close(*prop as usize + 1) => return Step::TookDone,
                _ => return Step::Refused,
            }
            Step::Took
        }
        Frame::AnyObject { depth, at } => {
            let key = Frame::String {
                min: 0,
                max: UNBOUNDED,
                len: 0,
                at: Str::Body,
            };
            match (*at, b) {
                (Sep::Open, b'{') => *at = Sep::First,
                (Sep::First, b'}') => return Step::TookDone,
                (Sep::Next { spaced: false }, b' ') => *at = Sep::Next { spaced: true },
                (Sep::First | Sep::Next { .. }, b'"') => {
                    *at = Sep::Colon;
                    return Step::PushTook(key);
                }
                (Sep::Colon, b':') => *at = Sep::Value { spaced: false },
                (Sep::Value { spaced: false }, b' ') => *at = Sep::Value { spaced: true },
                (Sep::Value { .. }, _) => {
                    *at = Sep::After;
                    return Step::Push(Frame::Any { depth: *depth + 1 });
                }
                (Sep::After, b',') => *at = Sep::Next { spaced: false },
                (Sep::After, b'}') => return Step::TookDone,
                _ => return Step::Refused,
            }
            Step::Took
        }
        Frame::Array {
            items,
            depth,
            min,
            max,
            count,
            at,
        } => {
            match (*at, b) {
                (Sep::Open, b'[') => *at = Sep::First,
                (Sep::First, b']') if *min == 0 => return Step::TookDone,
                (Sep::Next { spaced: false }, b' ') => *at = Sep::Next { spaced: true },
                (Sep::First | Sep::Next { .. }, _) if *max > 0 => {
                    *at = Sep::After;
                    return Step::Push(next_item(g, *items, *depth, count, *min, *max));
                }
                (Sep::After, b',') if *count < *max => *at = Sep::Next { spaced: false },
                (Sep::After, b']') if *count >= *min => return Step::TookDone,
                _ => return Step::Refused,
            }
            Step::Took
        }
    }
}

/// The next item of an array, counting it (the count saturates at the
/// larger bound that matters, so a long free array keeps one state).
fn next_item(
    g: &Grammar,
    items: Option<NodeId>,
    depth: u8,
    count: &mut u32,
    min: u32,
    max: u32,
) -> Frame {
    let cap = if max == UNBOUNDED { min } else { max };
    *count = (*count + 1).min(cap.max(1));
    match items {
        Some(node) => start(g, node, 0),
        None => Frame::Any { depth: depth + 1 },
    }
}

/// One byte of a string (quotes, escapes, UTF-8, length bounds).
fn string(min: u32, max: u32, len: &mut u32, at: &mut Str, b: u8) -> Step {
    // Count a character, up to the bound that matters.
    let cap = if max == UNBOUNDED { min } else { max };
    let count = |len: &mut u32| *len = (*len + 1).min(cap);
    match *at {
        Str::Open => {
            if b != b'"' {
                return Step::Refused;
            }
            *at = Str::Body;
        }
        Str::Body => match b {
            b'"' if *len >= min => return Step::TookDone,
            _ if *len >= max && max != UNBOUNDED => return Step::Refused,
            b'"' => return Step::Refused,
            b'\\' => *at = Str::Escape,
            0x00..=0x1F => return Step::Refused,
            0x20..=0x7F => count(len),
            0xC2..=0xDF => {
                *at = Str::Utf8 {
                    left: 1,
                    lo: 0x80,
                    hi: 0xBF,
                };
                count(len);
            }
            0xE0..=0xEF => {
                let (lo, hi) = match b {
                    0xE0 => (0xA0, 0xBF),
                    0xED => (0x80, 0x9F),
                    _ => (0x80, 0xBF),
                };
                *at = Str::Utf8 { left: 2, lo, hi };
                count(len);
            }
            0xF0..=0xF4 => {
                let (lo, hi) = match b {
                    0xF0 => (0x90, 0xBF),
                    0xF4 => (0x80, 0x8F),
                    _ => (0x80, 0xBF),
                };
                *at = Str::Utf8 { left: 3, lo, hi };
                count(len);
            }
            _ => return Step::Refused,
        },
        Str::Escape => match b {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                *at = Str::Body;
                count(len);
            }
            b'u' => *at = Str::Hex(4),
            _ => return Step::Refused,
        },
        Str::Hex(left) => {
            if !b.is_ascii_hexdigit() {
                return Step::Refused;
            }
            *at = if left == 1 {
                count(len);
                Str::Body
            } else {
                Str::Hex(left - 1)
            };
        }
        Str::Utf8 { left, lo, hi } => {
            if !(lo..=hi).contains(&b) {
                return Step::Refused;
            }
            *at = if left == 1 {
                Str::Body
            } else {
                Str::Utf8 {
                    left: left - 1,
                    lo: 0x80,
                    hi: 0xBF,
                }
            };
        }
    }
    Step::Took
}
