use super::Lcg;
use exercises::archmage::grimoire_of_ownership::{self as go, MAX_PERCENT, Relation, Tensor};
use nindub::provenance::lineage::{self, Parent, check_edge};
use nindub::provenance::manifest::{self, ContentManifest, TensorEntry};
use nindub::provenance::merkle;
use nindub::provenance::royalty::{self, Lineage, Policy};
use sha2::{Digest as _, Sha256};

/// Uniform integer in `0..n`.
fn below(rng: &mut Lcg, n: usize) -> usize {
    ((rng.unit() * n as f64) as usize).min(n - 1)
}

/// A Fisher–Yates shuffle driven by the checks' generator.
fn shuffle<T>(items: &mut [T], rng: &mut Lcg) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(rng, i + 1));
    }
}

// === Trial 1: a Merkle root of four leaves ===

/// The engine's root: `nindub::provenance::merkle`, what every content
/// manifest is rooted with.
fn engine_root(leaves: [&[u8]; 4]) -> [u8; 32] {
    merkle::root(&leaves.map(merkle::leaf))
}

/// The same tree hashed with other prefixes (`None`: no prefix at all):
/// the usual slips, to name them when a learner makes one.
fn slipped_root(leaves: [&[u8]; 4], leaf_prefix: Option<u8>, node_prefix: Option<u8>) -> [u8; 32] {
    let leaf = |data: &[u8]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(leaf_prefix.as_slice());
        h.update(data);
        h.finalize().into()
    };
    let node = |l: &[u8; 32], r: &[u8; 32]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(node_prefix.as_slice());
        h.update(l);
        h.update(r);
        h.finalize().into()
    };
    let [a, b, c, d] = leaves.map(leaf);
    node(&node(&a, &b), &node(&c, &d))
}

/// The learner's root against the engine's, naming a known slip first.
fn same_root(leaves: [&[u8]; 4], case: &str) {
    let got = go::merkle_root(leaves);
    let slips = [
        (
            None,
            None,
            "no prefixes at all: then a leaf of 64 bytes, two hashes side by side, hashes exactly \
             like the node over them, and one tree can pass for another (a second preimage)",
        ),
        (
            None,
            Some(0x01),
            "the leaves are hashed without their 0x00 prefix",
        ),
        (
            Some(0x00),
            None,
            "the nodes are hashed without their 0x01 prefix",
        ),
        (
            Some(0x01),
            Some(0x00),
            "the two prefixes are swapped: 0x00 is the leaves', 0x01 the nodes'",
        ),
        (
            Some(0x00),
            Some(0x00),
            "0x00 for the nodes too: a leaf can pass for a node again",
        ),
        (
            Some(0x01),
            Some(0x01),
            "0x01 for the leaves too: a leaf can pass for a node again",
        ),
    ];
    for (leaf_prefix, node_prefix, why) in slips {
        assert_ne!(
            got,
            slipped_root(leaves, leaf_prefix, node_prefix),
            "{case}: {why}"
        );
    }
    assert_eq!(
        merkle::hex(&got),
        merkle::hex(&engine_root(leaves)),
        "{case}: the root of leaves {leaves:02x?} (as nindub::provenance::merkle::root over merkle::leaf)"
    );
}

pub fn merkle_root() {
    // RFC 6962's test leaves (certificate-transparency's reference tests):
    // the tree of the first four has this root.
    let rfc: [&[u8]; 4] = [b"", &[0x00], &[0x10], &[0x20, 0x21]];
    same_root(rfc, "RFC 6962's test leaves");
    assert_eq!(
        merkle::hex(&go::merkle_root(rfc)),
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "RFC 6962's four test leaves [], [00], [10], [20 21]"
    );
    same_root([b"", b"", b"", b""], "four empty leaves");
    same_root([b"a", b"b", b"c", b"d"], "one byte each");
    same_root(
        [b"ab", b"", b"c", b"d"],
        "the first two leaves' bytes moved into one",
    );

    // Order and placement matter: moving a byte from one leaf to the next,
    // or swapping two leaves, is another tree.
    let base = go::merkle_root([b"a", b"b", b"c", b"d"]);
    for (leaves, what) in [
        (
            [&b"ab"[..], b"", b"c", b"d"],
            "\"a\", \"b\" became \"ab\", \"\"",
        ),
        (
            [&b""[..], b"ab", b"c", b"d"],
            "\"a\", \"b\" became \"\", \"ab\"",
        ),
        ([&b"b"[..], b"a", b"c", b"d"], "the first two swapped"),
        ([&b"c"[..], b"d", b"a", b"b"], "the two halves swapped"),
        (
            [&b"abcd"[..], b"", b"", b""],
            "everything in the first leaf",
        ),
    ] {
        assert_ne!(
            go::merkle_root(leaves),
            base,
            "{what}: the root must change (hash each leaf on its own, never the concatenation)"
        );
    }

    // Leaves that are concatenations of hashes: 64 bytes that look like a
    // node's input, under either scheme.
    let (ha, hb) = (merkle::leaf(b"a"), merkle::leaf(b"b"));
    let joined = [ha, hb].concat();
    same_root(
        [&joined, b"c", b"d", b""],
        "a leaf whose data is leaf(\"a\") ‖ leaf(\"b\")",
    );
    let naive_a: [u8; 32] = Sha256::digest(b"a").into();
    let naive_b: [u8; 32] = Sha256::digest(b"b").into();
    let naive_joined = [naive_a, naive_b].concat();
    same_root(
        [b"a", b"b", &naive_joined, &naive_joined],
        "leaves whose data is SHA-256(\"a\") ‖ SHA-256(\"b\")",
    );
    // Why the prefixes: in a tree without them, that 64-byte leaf hashes
    // exactly like the node over "a" and "b" (the engine's tree does not).
    assert_eq!(
        <[u8; 32]>::from(Sha256::digest(&naive_joined)),
        <[u8; 32]>::from(Sha256::digest([naive_a, naive_b].concat())),
        "the unprefixed leaf is the unprefixed node"
    );
    assert_ne!(
        merkle::leaf(&joined),
        merkle::node(&ha, &hb),
        "with the prefixes a leaf is never a node"
    );
    let big = vec![0xa5u8; 100_000];
    same_root([&big, b"", &big, &big[1..]], "100 000-byte leaves");

    // Pseudo-random leaves, some empty, some copies or joins of others.
    let mut rng = Lcg(6962);
    for case in 0..200 {
        let mut leaves: Vec<Vec<u8>> = (0..4)
            .map(|_| {
                let len = if rng.unit() < 0.2 {
                    0
                } else {
                    below(&mut rng, 100)
                };
                (0..len).map(|_| (rng.step() >> 56) as u8).collect()
            })
            .collect();
        match case % 4 {
            1 => leaves[3] = leaves[0].clone(),
            2 => leaves[2] = [leaves[0].clone(), leaves[1].clone()].concat(),
            3 => {
                leaves[1] = [merkle::leaf(&leaves[2]), merkle::leaf(&leaves[3])].concat();
            }
            _ => {}
        }
        let refs = [&leaves[0][..], &leaves[1], &leaves[2], &leaves[3]];
        same_root(refs, &format!("random case {case}"));
    }
}

// === Trial 2: verify a lineage edge ===

/// A tensor whose bytes hash like the one byte `fill`.
fn t(name: &str, shape: &[u64], dtype: &str, fill: u8) -> Tensor {
    Tensor {
        name: name.into(),
        shape: shape.to_vec(),
        dtype: dtype.into(),
        sha256: merkle::hex(&Sha256::digest([fill]).into()),
    }
}

/// The engine's manifest of these tensors (built as `lineage`'s own tests
/// build one): the tensors, their groups and their Merkle root.
fn engine_manifest(tensors: &[Tensor]) -> ContentManifest {
    let tensors: Vec<TensorEntry> = tensors
        .iter()
        .map(|t| TensorEntry {
            name: t.name.clone(),
            dtype: t.dtype.clone(),
            shape: t.shape.clone(),
            // A function of the shape and the type, so that it changes
            // nothing that they do not change.
            bytes: t.shape.iter().product::<u64>() * t.dtype.len() as u64,
            sha256: t.sha256.clone(),
        })
        .collect();
    ContentManifest::from_tensors(tensors, Some("llama")).expect("the checks' hashes are hex")
}

/// The engine's verdict (`nindub::provenance::lineage::check_edge`): `Ok`,
/// or the name of the tensor its first problem names.
fn engine_verdict(parent: &[Tensor], child: &[Tensor], relation: Relation) -> Result<(), String> {
    let p = engine_manifest(parent);
    let mut c = engine_manifest(child);
    let edge = match relation {
        Relation::Quantized => lineage::Relation::Quantized,
        Relation::Split => lineage::Relation::Split,
    };
    c.parents.push(Parent::of(&p, edge, None));
    let problems = check_edge(&p, &c);
    let Some(first) = problems.first() else {
        return Ok(());
    };
    let first = match relation {
        Relation::Quantized => first.clone(),
        // A split is judged by its root alone; the engine's `compare` (what
        // `nindub provenance verify` prints) names the first tensor that differs.
        Relation::Split => manifest::compare(&p, &c)
            .first()
            .map(|d| d.what.clone())
            .expect("another root has another tensor"),
    };
    let name = first
        .strip_prefix("tensor ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("the engine names no tensor: {first:?}"));
    Err(name.to_string())
}

/// The learner's verdict against the engine's.
fn same_verdict(case: &str, parent: &[Tensor], child: &[Tensor], relation: Relation) {
    let want = engine_verdict(parent, child, relation);
    let got = go::verify_edge(parent, child, relation);
    let names = |ts: &[Tensor]| ts.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    let lists = format!("parent {:?}, child {:?}", names(parent), names(child));
    match (&want, &got) {
        (Ok(()), Ok(())) => {}
        (Ok(()), Err(message)) => {
            panic!("{case}: a {relation:?} edge that holds, yet Err({message:?}); {lists}")
        }
        (Err(name), Ok(())) => {
            panic!("{case}: a {relation:?} edge broken at tensor {name}, yet Ok; {lists}")
        }
        (Err(name), Err(message)) => {
            assert!(
                message.contains(name.as_str()),
                "{case}: the first offending tensor is {name} (the parent's in name order, then the child's new ones): {message:?}; {lists}"
            );
            for other in parent.iter().chain(child).map(|t| t.name.as_str()) {
                assert!(
                    name.contains(other) || !message.contains(other),
                    "{case}: name {name} alone, not {other}: {message:?}"
                );
            }
        }
    }
}

pub fn verify_edge() {
    use Relation::{Quantized, Split};
    let parent = vec![
        t("token_embd.weight", &[32_000, 4096], "F16", 1),
        t("blk.0.attn_q.weight", &[4096, 4096], "F16", 2),
        t("blk.0.ffn_up.weight", &[14_336, 4096], "F16", 3),
        t("blk.1.attn_q.weight", &[4096, 4096], "F16", 4),
        t("blk.2.attn_q.weight", &[4096, 4096], "F16", 5),
        t("blk.10.attn_q.weight", &[4096, 4096], "F16", 6),
        t("output_norm.weight", &[4096], "F32", 7),
    ];
    // The same tensors in Q4_0 (the norm stays F32), other bytes, another order.
    let mut quantized: Vec<Tensor> = parent
        .iter()
        .rev()
        .map(|x| {
            let dtype = if x.dtype == "F32" { "F32" } else { "Q4_0" };
            t(
                &x.name,
                &x.shape,
                dtype,
                x.sha256.as_bytes()[0].wrapping_add(100),
            )
        })
        .collect();
    quantized.rotate_left(3);
    let find = |ts: &[Tensor], name: &str| -> usize {
        ts.iter()
            .position(|x| x.name == name)
            .expect("a tensor of the case")
    };

    same_verdict("the model itself", &parent, &parent, Quantized);
    same_verdict("the model itself", &parent, &parent, Split);
    let mut shards = parent.clone();
    shards.reverse();
    same_verdict(
        "the same tensors, in another order",
        &parent,
        &shards,
        Split,
    );
    same_verdict("quantized to Q4_0", &parent, &quantized, Quantized);
    same_verdict(
        "quantized to Q4_0, called a split",
        &parent,
        &quantized,
        Split,
    );

    let mut reshaped = quantized.clone();
    let i = find(&reshaped, "blk.0.ffn_up.weight");
    reshaped[i].shape = vec![4096, 14_336];
    same_verdict("a transposed tensor", &parent, &reshaped, Quantized);

    let mut missing = quantized.clone();
    let i = find(&missing, "output_norm.weight");
    missing.remove(i);
    same_verdict("a missing tensor", &parent, &missing, Quantized);

    let mut new = quantized.clone();
    new.push(t("output.weight", &[32_000, 4096], "Q6_K", 9));
    same_verdict(
        "a new tensor (an untied output head)",
        &parent,
        &new,
        Quantized,
    );

    // Renamed: the parent's tensor is missing, and that comes first, even
    // though the new name sorts before it.
    let mut renamed = quantized.clone();
    let i = find(&renamed, "token_embd.weight");
    renamed[i].name = "blk.0.attn_k.weight".into();
    same_verdict("a renamed tensor", &parent, &renamed, Quantized);

    let mut two = quantized.clone();
    for name in ["blk.2.attn_q.weight", "blk.10.attn_q.weight"] {
        let i = find(&two, name);
        two[i].shape = vec![2048, 8192];
    }
    same_verdict(
        "two reshaped tensors: name order is byte order, blk.10 before blk.2",
        &parent,
        &two,
        Quantized,
    );

    let mut rehashed = parent.clone();
    let i = find(&rehashed, "blk.1.attn_q.weight");
    rehashed[i].sha256 = t("", &[], "", 99).sha256;
    same_verdict(
        "a split with one tensor's bytes changed",
        &parent,
        &rehashed,
        Split,
    );
    same_verdict(
        "the same change, called a quantization",
        &parent,
        &rehashed,
        Quantized,
    );

    let mut retyped = parent.clone();
    let i = find(&retyped, "output_norm.weight");
    retyped[i].dtype = "F16".into();
    same_verdict("a split with one tensor retyped", &parent, &retyped, Split);
    same_verdict(
        "one tensor retyped, quantized",
        &parent,
        &retyped,
        Quantized,
    );

    let mut viewed = parent.clone();
    let i = find(&viewed, "blk.0.attn_q.weight");
    viewed[i].shape = vec![16_777_216];
    same_verdict(
        "a split with a flattened tensor, same bytes",
        &parent,
        &viewed,
        Split,
    );

    let mut both = parent.clone();
    for name in ["blk.2.attn_q.weight", "blk.10.attn_q.weight"] {
        let i = find(&both, name);
        both[i].sha256 = t("", &[], "", 42).sha256;
    }
    same_verdict("a split with two changed hashes", &parent, &both, Split);

    for relation in [Quantized, Split] {
        same_verdict("no tensors at all", &[], &[], relation);
        same_verdict("a child from nothing", &[], &parent, relation);
        same_verdict("an empty child", &parent, &[], relation);
    }

    // Pseudo-random edges: a subset of a pool of names, then a few changes.
    let pool: Vec<String> = ["token_embd.weight", "output.weight", "output_norm.weight"]
        .into_iter()
        .map(String::from)
        .chain(
            [0, 1, 2, 10, 11]
                .into_iter()
                .flat_map(|l| ["attn_q.weight", "ffn_down.weight"].map(|w| format!("blk.{l}.{w}"))),
        )
        .collect();
    let dtypes = ["F32", "F16", "Q8_0", "Q4_0"];
    let (mut holds, mut broken) = (0, 0);
    let mut rng = Lcg(2024);
    for case in 0..300 {
        let mut parent = vec![];
        for name in &pool {
            if rng.unit() < 0.5 {
                continue;
            }
            let shape: Vec<u64> = (0..1 + below(&mut rng, 2))
                .map(|_| 1 + below(&mut rng, 8) as u64)
                .collect();
            let dtype = dtypes[below(&mut rng, dtypes.len())];
            parent.push(t(name, &shape, dtype, (rng.step() >> 56) as u8));
        }
        let mut child = parent.clone();
        if rng.unit() < 0.5 {
            // Quantize everything: another type, other bytes.
            for x in &mut child {
                *x = t(&x.name, &x.shape, "Q4_0", (rng.step() >> 56) as u8);
            }
        }
        let mut i = 0;
        while i < child.len() {
            let r = rng.unit();
            if r < 0.04 {
                child.remove(i);
                continue;
            } else if r < 0.08 {
                child[i].shape.push(2);
            } else if r < 0.12 {
                child[i].dtype = "Q8_0".into();
            } else if r < 0.16 {
                child[i].sha256 = t("", &[], "", (rng.step() >> 56) as u8).sha256;
            }
            i += 1;
        }
        if rng.unit() < 0.15 {
            let absent: Vec<&String> = pool
                .iter()
                .filter(|n| parent.iter().all(|x| &x.name != *n))
                .collect();
            if !absent.is_empty() {
                let name = absent[below(&mut rng, absent.len())];
                child.push(t(name, &[3], "F16", 0));
            }
        }
        shuffle(&mut parent, &mut rng);
        shuffle(&mut child, &mut rng);
        let relation = if rng.unit() < 0.5 { Quantized } else { Split };
        match engine_verdict(&parent, &child, relation) {
            Ok(()) => holds += 1,
            Err(_) => broken += 1,
        }
        same_verdict(&format!("random case {case}"), &parent, &child, relation);
    }
    assert!(
        holds >= 30 && broken >= 30,
        "the random cases cover both verdicts ({holds} hold, {broken} broken)"
    );
}

// === Trial 3: split a royalty exactly ===

/// `⌊amount · pct / MAX_PERCENT⌋` for any `amount`, never overflowing.
fn exact_share(amount: u128, pct: u32) -> u128 {
    let (m, p) = (u128::from(MAX_PERCENT), u128::from(pct));
    amount / m * p + amount % m * p / m
}

/// What the trial expects: the engine's LAP split of the chain
/// (`nindub::provenance::royalty::Lineage::split`), `None` where the
/// engine refuses the stack. Where the engine refuses an amount too large
/// for its `amount · percent`, the trial asks for the exact shares anyway.
fn expected_split(links: &[u32], amount: u128) -> Option<Vec<u128>> {
    assert_eq!(
        royalty::MAX_PERCENT,
        MAX_PERCENT,
        "the trial's 100 % is the engine's"
    );
    let stack: u64 = links.iter().map(|&p| u64::from(p)).sum();
    let mut l = Lineage::default();
    let mut model = l.add("root");
    for (i, &pct) in links.iter().enumerate() {
        let child = l.add(&format!("m{}", i + 1));
        if l.link(child, model, pct).is_err() {
            assert!(
                stack > u64::from(MAX_PERCENT),
                "the engine refused the link {pct}"
            );
            return None;
        }
        model = child;
    }
    match l.split(model, amount, Policy::Lap) {
        Ok(held) => {
            // The check's own formula agrees with the engine where both answer.
            for (i, &pct) in links.iter().enumerate() {
                assert_eq!(held[i], exact_share(amount, pct), "the check's formula");
            }
            Some(held)
        }
        Err(_) if stack > u64::from(MAX_PERCENT) => None,
        Err(e) => {
            assert!(e.to_string().contains("too large"), "the engine: {e}");
            let mut held: Vec<u128> = links.iter().map(|&p| exact_share(amount, p)).collect();
            held.push(amount - held.iter().sum::<u128>());
            Some(held)
        }
    }
}

/// The learner's split against the expected one.
fn same_split(links: &[u32], amount: u128, why: &str) {
    let want = expected_split(links, amount);
    let got = go::royalty_split(links, amount);
    let case = format!(
        "links {links:?} (of {MAX_PERCENT}), {amount} paid to model {}",
        links.len()
    );
    match (want, got) {
        (None, Ok(held)) => {
            panic!("{case}: a stack over 100 % must be refused, not split as {held:?}. {why}")
        }
        (None, Err(_)) => {}
        (Some(want), Err(e)) => panic!("{case}: expected {want:?}, got Err({e:?}). {why}"),
        (Some(want), Ok(held)) => {
            assert_eq!(held, want, "{case}. {why}");
            assert_eq!(
                held.iter().try_fold(0u128, |s, &x| s.checked_add(x)),
                Some(amount),
                "{case}: the shares must add up to the payment exactly"
            );
        }
    }
}

pub fn royalty_split() {
    const PCT: u32 = MAX_PERCENT / 100;
    let token = 10u128.pow(18);
    same_split(&[], 42, "no ancestors: the model keeps everything");
    same_split(&[], 0, "nothing paid");
    same_split(
        &[5 * PCT, 10 * PCT],
        100 * token,
        "Story's chain: [5, 10, 85] tokens (LRP's [0.5, 9.5, 90] is the other policy)",
    );
    same_split(
        &[5 * PCT, 10 * PCT],
        7,
        "15 % of 7 units: each share rounds down to 0",
    );
    same_split(&[5 * PCT, 10 * PCT], 20, "[1, 2, 17]");
    same_split(
        &[PCT, 2 * PCT, 3 * PCT],
        100,
        "ancestor i is owed links[i], the link just below it: [1, 2, 3, 94]",
    );
    same_split(&[50 * PCT], 3, "half of 3 rounds down to 1: [1, 2]");
    same_split(
        &[60 * PCT, 40 * PCT],
        10,
        "a stack of exactly 100 %: [6, 4, 0]",
    );
    same_split(&[MAX_PERCENT], 5, "one link of 100 %: [5, 0]");
    same_split(&[60 * PCT, 50 * PCT], 100, "a stack of 110 % is refused");
    same_split(&[MAX_PERCENT + 1], 100, "a link over 100 % is refused");
    same_split(
        &[1, 1, 1],
        99_999_999,
        "1e-8 % of 99 999 999 units is 0.99999999: 0",
    );
    same_split(&[1, 1, 1], 100_000_000, "1e-8 % of 100 000 000 units is 1");
    same_split(&[0, 0, 0], u128::MAX, "no percent, any amount");
    same_split(
        &[50 * PCT],
        u128::MAX,
        "half of u128::MAX: amount · percent overflows a u128, the share does not",
    );
    same_split(
        &[7 * PCT + 3, 13 * PCT + 11, 29 * PCT + 1],
        u128::MAX - 12_345,
        "large amounts, odd percents",
    );

    // Pseudo-random chains and amounts of every size.
    let mut rng = Lcg(1789);
    for case in 0..400 {
        let n = below(&mut rng, 8);
        let links: Vec<u32> = (0..n)
            .map(|_| match below(&mut rng, 4) {
                0 => 0,
                1 => PCT * below(&mut rng, 26) as u32,
                _ => (rng.unit() * f64::from(25 * PCT)) as u32,
            })
            .collect();
        let wide = (u128::from(rng.step()) << 64) | u128::from(rng.step());
        let amount = match case % 5 {
            0 => wide % 1000,
            1 => wide % 10u128.pow(24),
            2 => wide >> 28,
            3 => wide,
            _ => u128::MAX - wide % 1000,
        };
        same_split(&links, amount, &format!("random case {case}"));
    }
}
