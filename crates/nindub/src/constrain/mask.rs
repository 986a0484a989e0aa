//! Which tokens the automaton allows next: the vocabulary as a trie of
//! its tokens' bytes, walked with the automaton's state so that a prefix
//! refused once prunes every token that starts with it, and each state's
//! mask cached (inside a free string, or between two keys, the state
//! repeats and the mask is computed once).

use std::collections::HashMap;
use std::sync::Arc;

use super::machine::State;
use super::schema::Grammar;

/// The vocabulary's tokens as a trie of their bytes.
#[derive(Debug, Clone)]
pub struct Vocab {
    nodes: Vec<TrieNode>,
    /// Tokens that end a generation: allowed once the value is complete.
    end: Vec<u32>,
    size: usize,
    /// Bytes of the longest token.
    longest: usize,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    children: Vec<(u8, u32)>,
    tokens: Vec<u32>,
}

/// A set of token ids, one bit each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    bits: Vec<u64>,
}

impl Mask {
    fn new(size: usize) -> Mask {
        Mask {
            bits: vec![0; size.div_ceil(64)],
        }
    }

    fn set(&mut self, id: u32) {
        self.bits[id as usize / 64] |= 1 << (id % 64);
    }

    pub fn allows(&self, id: u32) -> bool {
        self.bits
            .get(id as usize / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// How many tokens it allows.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Sets every logit it does not allow to −∞.
    pub fn apply(&self, logits: &mut [f32]) {
        for (id, z) in logits.iter_mut().enumerate() {
            if !self.allows(id as u32) {
                *z = f32::NEG_INFINITY;
            }
        }
    }
}

impl Vocab {
    /// `tokens[id]` is the bytes token `id` writes (`None` for a special
    /// token, which the grammar never allows); `end` the tokens that end a
    /// generation (EOS, end of turn).
    pub fn new(tokens: &[Option<Vec<u8>>], end: &[u32]) -> Vocab {
        let mut nodes = vec![TrieNode::default()];
        let mut longest = 0;
        for (id, bytes) in tokens.iter().enumerate() {
            let Some(bytes) = bytes.as_ref().filter(|b| !b.is_empty()) else {
                continue;
            };
            longest = longest.max(bytes.len());
            let mut at = 0usize;
            for &b in bytes {
                at = match nodes[at].children.iter().find(|(c, _)| *c == b) {
                    Some(&(_, next)) => next as usize,
                    None => {
                        nodes.push(TrieNode::default());
                        let next = nodes.len() - 1;
                        nodes[at].children.push((b, next as u32));
                        next
                    }
                };
            }
            nodes[at].tokens.push(id as u32);
        }
        Vocab {
            nodes,
            end: end.to_vec(),
            size: tokens.len(),
            longest,
        }
    }

    pub fn len(&self) -> usize {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Bytes of the longest token.
    pub fn longest(&self) -> usize {
        self.longest
    }

    // ANCHOR: allowed
    /// The tokens whose bytes `state` takes whole, and the end tokens
    /// where the value may end.
    pub fn allowed(&self, g: &Grammar, state: &State) -> Mask {
        let mut mask = Mask::new(self.size);
        let mut stack: Vec<(usize, State)> = vec![(0, state.clone())];
        while let Some((node, st)) = stack.pop() {
            for &(b, child) in &self.nodes[node].children {
                let mut s = st.clone();
                if !s.feed(g, b) {
                    continue;
                }
                let next = &self.nodes[child as usize];
                for &t in &next.tokens {
                    mask.set(t);
                }
                if !next.children.is_empty() {
                    stack.push((child as usize, s));
                }
            }
        }
        if state.can_end(g) {
            for &t in &self.end {
                if (t as usize) < self.size {
                    mask.set(t);
                }
            }
        }
        mask
    }
    // ANCHOR_END: allowed
}

/// A generation held to a grammar: its state, and the masks seen so far.
pub struct Constraint {
    grammar: Arc<Grammar>,
    vocab: Arc<Vocab>,
    state: State,
    cache: HashMap<State, Arc<Mask>>,
    /// Masks computed, and masks served from the cache.
    pub computed: usize,
    pub cached: usize,
}

/// A token the grammar did not allow (a caller that sampled around the mask).
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub token: u32,
}

impl Constraint {
    pub fn new(grammar: Arc<Grammar>, vocab: Arc<Vocab>) -> Constraint {
        let state = State::new(&grammar);
        Constraint {
            grammar,
            vocab,
            state,
            cache: HashMap::new(),
            computed: 0,
            cached: 0,
        }
    }

    // ANCHOR: mask_cache
    /// The tokens allowed next.
    pub fn mask(&mut self) -> Arc<Mask> {
        let key = self.state.key(self.vocab.longest);
        if let Some(m) = self.cache.get(&key) {
            self.cached += 1;
            return m.clone();
        }
        self.computed += 1;
        // The key's state allows what this one does, for every token.
        let m = Arc::new(self.vocab.allowed(&self.grammar, &key));
        self.cache.insert(key, m.clone());
        m
    }
    // ANCHOR_END: mask_cache

    /// Takes the token chosen; an end token or a token outside the
    /// grammar is refused with the state unchanged.
    pub fn advance(&mut self, token: u32, bytes: &[u8]) -> Result<(), Refused> {
        let mut next = self.state.clone();
        if bytes.is_empty() || !next.feed_all(&self.grammar, bytes) {
            return Err(Refused { token });
        }
        self.state = next;
        Ok(())
    }

    /// Whether the value is complete.
    pub fn can_end(&self) -> bool {
        self.state.can_end(&self.grammar)
    }

    pub fn is_done(&self) -> bool {
        self.state.is_done()
    }
}
