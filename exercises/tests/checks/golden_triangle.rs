use super::Lcg;
use exercises::engineer::golden_triangle as gt;
use gt::{CommitPin, RunTags, Store, Verdict};

// === The reference values ===
//
// Produced with the real tools (dvc 3.67.1, dvc-data 3.18.3, GNU md5sum), in
// an empty temporary directory:
//
//   mkdir -p data/sub
//   printf 'hello\n'                     > data/a.txt
//   printf 'B\n'                         > data/B.txt
//   printf '\x00\x01\x02\xff\r\nend'     > data/sub/b.bin
//   printf 'bonjour\n'                   > data/é.txt
//   printf 'line one\r\nline two\r\n'    > data/crlf.txt
//   printf 'dash\n'                      > data/sub-x.txt
//   printf 'rocket\n'                    > data/🚀.txt
//   printf 'q\n'                         > 'data/say "hi".txt'
//   git init -q && dvc init -q && dvc add -q data
//
// `data.dvc` then says `md5: 988a8711aca295afabc774eaa8810408.dir`; the
// listing is the file `.dvc/cache/files/md5/98/8a8711aca295afabc774eaa8810408.dir`
// (its md5sum is that same hash), and each file's md5 there is what `md5sum`
// prints for it.

/// The eight files of `data/`: (relpath, content, md5 from the `.dir` file).
const FILES: [(&str, &[u8], &str); 8] = [
    ("a.txt", b"hello\n", "b1946ac92492d2347c6235b4d2611184"),
    ("B.txt", b"B\n", "30cf3d7d133b08543cb6c8933c29dfd7"),
    (
        "sub/b.bin",
        b"\x00\x01\x02\xff\r\nend",
        "bf4f3b2f2d9080957054ed828ecc2fa7",
    ),
    (
        "\u{e9}.txt",
        b"bonjour\n",
        "94baaad4d1347ec6e15ae35c88ee8bc8",
    ),
    (
        "crlf.txt",
        b"line one\r\nline two\r\n",
        "a775daabdb44c57a65eaadeef4edfe51",
    ),
    ("sub-x.txt", b"dash\n", "4b3819771135e00b75e4afda54be3184"),
    (
        "\u{1f680}.txt",
        b"rocket\n",
        "f63446e04f1939d240c9d40a4dc4a91a",
    ),
    ("say \"hi\".txt", b"q\n", "c3be117041a113540deb0ff532b19543"),
];

/// `data.dvc`'s md5 for that directory.
const DIR_MD5: &str = "988a8711aca295afabc774eaa8810408.dir";

/// The bytes of `.dvc/cache/files/md5/98/8a8711aca295afabc774eaa8810408.dir`,
/// cut in eight for reading (the file is one line, no final newline).
const DIR_LISTING: &str = concat!(
    r#"[{"md5": "30cf3d7d133b08543cb6c8933c29dfd7", "relpath": "B.txt"}"#,
    r#", {"md5": "b1946ac92492d2347c6235b4d2611184", "relpath": "a.txt"}"#,
    r#", {"md5": "a775daabdb44c57a65eaadeef4edfe51", "relpath": "crlf.txt"}"#,
    r#", {"md5": "c3be117041a113540deb0ff532b19543", "relpath": "say \"hi\".txt"}"#,
    r#", {"md5": "4b3819771135e00b75e4afda54be3184", "relpath": "sub-x.txt"}"#,
    r#", {"md5": "bf4f3b2f2d9080957054ed828ecc2fa7", "relpath": "sub/b.bin"}"#,
    r#", {"md5": "94baaad4d1347ec6e15ae35c88ee8bc8", "relpath": "\u00e9.txt"}"#,
    r#", {"md5": "f63446e04f1939d240c9d40a4dc4a91a", "relpath": "\ud83d\ude80.txt"}]"#,
);

/// Two more directories through `dvc add` (same dvc 3.67.1, a fresh repo):
/// `one/` holding only `a.txt` (`"hello\n"`), and an empty `empty/`.
const ONE_FILE_DIR_MD5: &str = "b47e3488a546e2214c42aa9bec8396e2.dir";
const EMPTY_DIR_MD5: &str = "d751713988987e9331980363e24189ce.dir";

/// The listing as `(relpath, md5)` pairs, in the order of `FILES`.
fn data_entries() -> Vec<(String, String)> {
    FILES
        .iter()
        .map(|(path, _, md5)| (path.to_string(), md5.to_string()))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A Fisher–Yates shuffle driven by the checks' generator.
fn shuffle<T>(items: &mut [T], rng: &mut Lcg) {
    for i in (1..items.len()).rev() {
        let j = (rng.unit() * (i + 1) as f64) as usize;
        items.swap(i, j.min(i));
    }
}

fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

// === Trial 1: a file's hash ===

pub fn file_md5() {
    // DVC 3.x: the raw bytes, what `md5sum` and `dvc add` gave.
    for (path, bytes, md5) in FILES {
        assert_eq!(
            gt::file_md5(bytes, false),
            md5,
            "DVC 3.x hashes the raw bytes of {path:?} ({bytes:?})"
        );
    }
    assert_eq!(
        gt::file_md5(b"", false),
        "d41d8cd98f00b204e9800998ecf8427e",
        "the md5 of nothing"
    );

    // DVC 2.x, `md5-dos2unix`. Each expected value is `md5sum` of the bytes
    // after `bytes.replace(b"\r\n", b"\n")` when the file is text, and of
    // the raw bytes when it is binary; every one was also confirmed with
    // dvc-data 3.18.3's own `file_md5(path, name="md5-dos2unix")`.
    let late_nul = [&[b'a'; 510][..], b"\r\n\x00x\r\n"].concat();
    let early_nul = [&[b'a'; 509][..], b"\r\n\x00x\r\n"].concat();
    let tail_high = [&[b'a'; 512][..], &[0x80; 600][..], b"\r\n"].concat();
    let cases: [(&str, &[u8], &str, &str); 12] = [
        (
            "text with CRLF: converted",
            b"line one\r\nline two\r\n",
            "987929d61c9b69f0c6406b840aa77fd8",
            "a775daabdb44c57a65eaadeef4edfe51",
        ),
        (
            "no CRLF: the same as 3.x",
            b"hello\n",
            "b1946ac92492d2347c6235b4d2611184",
            "b1946ac92492d2347c6235b4d2611184",
        ),
        (
            "a NUL byte: binary, hashed raw",
            b"\x00\x01\x02\xff\r\nend",
            "bf4f3b2f2d9080957054ed828ecc2fa7",
            "bf4f3b2f2d9080957054ed828ecc2fa7",
        ),
        (
            "UTF-8 Cyrillic: bytes ≥ 0x80 are non-text, so this is binary to DVC 2 and hashed raw",
            "привет\r\nмир\r\n".as_bytes(),
            "92f5bcefdf2bf01d36be8ee520398575",
            "92f5bcefdf2bf01d36be8ee520398575",
        ),
        (
            "3 non-text bytes in 10, exactly 30 %: still text",
            b"\x01\x01\x01ab\r\ncde",
            "a3d821c048466c56c1b2f59f5132b5a5",
            "26961b222f3e014a80f24258e9f4367f",
        ),
        (
            "4 non-text bytes in 10: binary",
            b"\x01\x01\x01\x01a\r\ncde",
            "425896cfd37f0938b5f71ce9e00be5b9",
            "425896cfd37f0938b5f71ce9e00be5b9",
        ),
        (
            "ESC (0x1b) is non-text too: 4 in 10, binary",
            b"\x1b\x1b\x1b\x1bab\r\ncd",
            "4e684f57c7298ff862600c39586197c2",
            "4e684f57c7298ff862600c39586197c2",
        ),
        (
            "empty: text, and nothing to convert",
            b"",
            "d41d8cd98f00b204e9800998ecf8427e",
            "d41d8cd98f00b204e9800998ecf8427e",
        ),
        (
            "only \\r\\n pairs change, in one pass: a lone \\r stays, \\r\\r\\n becomes \\r\\n",
            b"a\rb\r\r\nc\n\r",
            "cc6c8bcb6216648b93bf628d2c4c647e",
            "4a7ae889ce8277c71c9a7fa3db8713ed",
        ),
        (
            "a NUL at byte 512, past the sample: text, converted",
            &late_nul,
            "caa95500fa8bd5610c6dae396a446a8d",
            "a5fd16146d3f5378385a56b2a989d91a",
        ),
        (
            "a NUL at byte 511, the sample's last: binary",
            &early_nul,
            "64e9495280a439ad18c0f3287628beb5",
            "64e9495280a439ad18c0f3287628beb5",
        ),
        (
            "512 plain bytes, then 600 of 0x80: only the first 512 are judged, so text",
            &tail_high,
            "49d024241adf81351f80fa9eb45edafe",
            "07e191abb70037b001f88e8a52785d14",
        ),
    ];
    for (why, bytes, legacy, modern) in cases {
        assert_eq!(
            gt::file_md5(bytes, true),
            legacy,
            "DVC 2.x (md5-dos2unix), {why}"
        );
        assert_eq!(
            gt::file_md5(bytes, false),
            modern,
            "DVC 3.x hashes the raw bytes whatever they are ({why})"
        );
    }

    // Invariants on pseudo-random files: the answer is always 32 lowercase
    // hex digits; 3.x is the raw md5; without a CRLF, 2.x agrees with 3.x;
    // plain ASCII text in 2.x is the md5 of its CRLF → LF form.
    let mut rng = Lcg(2024);
    for _ in 0..200 {
        let n = (rng.unit() * 40.0) as usize;
        let ascii: Vec<u8> = (0..n)
            .map(|_| b"ab \r\n\t"[(rng.unit() * 6.0) as usize])
            .collect();
        let converted = String::from_utf8(ascii.clone())
            .unwrap()
            .replace("\r\n", "\n");
        let legacy = gt::file_md5(&ascii, true);
        assert!(is_md5_hex(&legacy), "32 lowercase hex digits: {legacy:?}");
        assert_eq!(legacy, gt::md5_hex(converted.as_bytes()), "text {ascii:?}");
        assert_eq!(gt::file_md5(&ascii, false), gt::md5_hex(&ascii));
        let any: Vec<u8> = (0..n).map(|_| (rng.unit() * 256.0) as u8).collect();
        assert_eq!(gt::file_md5(&any, false), gt::md5_hex(&any), "{any:?}");
        if !any.windows(2).any(|w| w == b"\r\n") {
            assert_eq!(
                gt::file_md5(&any, true),
                gt::md5_hex(&any),
                "no CRLF, nothing to convert: {any:?}"
            );
        }
    }
}

// === Trial 2: a directory's hash ===

pub fn dir_listing_json() {
    let mut entries = data_entries();
    assert_eq!(
        gt::dir_listing_json(&entries),
        DIR_LISTING,
        "the bytes of the `.dir` file that dvc 3.67.1 wrote for data/"
    );
    // Any order in, the same listing out.
    let mut rng = Lcg(11);
    for _ in 0..20 {
        shuffle(&mut entries, &mut rng);
        assert_eq!(
            gt::dir_listing_json(&entries),
            DIR_LISTING,
            "the order of the entries must not matter: {entries:?}"
        );
    }
    // Windows separators are the same paths.
    let windows: Vec<(String, String)> = data_entries()
        .into_iter()
        .map(|(path, md5)| (path.replace('/', "\\"), md5))
        .collect();
    assert_eq!(
        gt::dir_listing_json(&windows),
        DIR_LISTING,
        "\"sub\\b.bin\" is \"sub/b.bin\""
    );
    assert_eq!(
        gt::dir_listing_json(&owned(&[
            ("aB.txt", "30cf3d7d133b08543cb6c8933c29dfd7"),
            ("a\\x.txt", "b1946ac92492d2347c6235b4d2611184"),
        ])),
        r#"[{"md5": "b1946ac92492d2347c6235b4d2611184", "relpath": "a/x.txt"}, {"md5": "30cf3d7d133b08543cb6c8933c29dfd7", "relpath": "aB.txt"}]"#,
        "normalise before sorting: \"a/x.txt\" sorts before \"aB.txt\" (`/` < `B`), \"a\\x.txt\" did not (`\\` > `B`)"
    );
    assert_eq!(
        gt::dir_listing_json(&owned(&[("a.txt", "b1946ac92492d2347c6235b4d2611184")])),
        r#"[{"md5": "b1946ac92492d2347c6235b4d2611184", "relpath": "a.txt"}]"#,
        "one file: \", \" and \": \", not compact JSON"
    );
    assert_eq!(gt::dir_listing_json(&[]), "[]", "no files");
    // Python 3's `json.dumps([{"md5": "d41d8cd98f00b204e9800998ecf8427e",
    // "relpath": "tab\there/new\nline\x01\x7f\u2028\uffff\U0001F600 z"}],
    // sort_keys=True)`, printed by python3.
    assert_eq!(
        gt::dir_listing_json(&owned(&[(
            "tab\there/new\nline\u{1}\u{7f}\u{2028}\u{ffff}\u{1f600} z",
            "d41d8cd98f00b204e9800998ecf8427e",
        )])),
        r#"[{"md5": "d41d8cd98f00b204e9800998ecf8427e", "relpath": "tab\there/new\nline\u0001\u007f\u2028\uffff\ud83d\ude00 z"}]"#,
        "ensure_ascii: short escapes for \\t and \\n, \\u00XX for other controls and DEL, lowercase hex, a surrogate pair beyond U+FFFF"
    );
}

pub fn dir_md5() {
    assert_eq!(
        gt::md5_hex(DIR_LISTING.as_bytes()) + ".dir",
        DIR_MD5,
        "the reference listing and hash agree (a broken check, not your answer)"
    );
    let mut entries = data_entries();
    assert_eq!(
        gt::dir_md5(&entries),
        DIR_MD5,
        "data.dvc's md5 from dvc 3.67.1"
    );
    let mut rng = Lcg(5);
    for _ in 0..10 {
        shuffle(&mut entries, &mut rng);
        assert_eq!(gt::dir_md5(&entries), DIR_MD5, "any order: {entries:?}");
    }
    assert_eq!(
        gt::dir_md5(&owned(&[("a.txt", "b1946ac92492d2347c6235b4d2611184")])),
        ONE_FILE_DIR_MD5,
        "`dvc add one` with one/a.txt = \"hello\\n\" (compact JSON would give 125fbbfd…)"
    );
    assert_eq!(
        gt::dir_md5(&owned(&[(
            "a\\b\\c.txt",
            "b1946ac92492d2347c6235b4d2611184"
        )])),
        gt::dir_md5(&owned(&[("a/b/c.txt", "b1946ac92492d2347c6235b4d2611184")])),
        "'\\' and '/' name the same file"
    );
    assert_eq!(gt::dir_md5(&[]), EMPTY_DIR_MD5, "`dvc add empty`");
    // Changing one file changes the directory's hash.
    let mut changed = data_entries();
    changed[0].1 = "b1946ac92492d2347c6235b4d2611185".to_string();
    assert_ne!(gt::dir_md5(&changed), DIR_MD5, "one md5 changed");
    let mut renamed = data_entries();
    renamed[0].0 = "A.txt".to_string();
    assert_ne!(gt::dir_md5(&renamed), DIR_MD5, "one file renamed");
}

// === Trial 3: the timeline ===

pub fn timeline() {
    let sha = "3f2a9c0d5e7b1a4c8d6e2f0a9b7c5d3e1f2a4b6c";
    let other_sha = "9b8e7d6c5b4a3928170f6e5d4c3b2a1908f7e6d5";
    let pinned = "988a8711aca295afabc774eaa8810408.dir";
    let newer = "b47e3488a546e2214c42aa9bec8396e2.dir";
    let commit = CommitPin {
        sha: sha.to_string(),
        pinned_md5: pinned.to_string(),
    };
    let run = |git_commit: &str, dvc_hash: &str| RunTags {
        git_commit: git_commit.to_string(),
        dvc_hash: dvc_hash.to_string(),
    };
    let remote = vec![newer.to_string(), pinned.to_string()];

    assert_eq!(
        gt::timeline(&commit, &run(sha, pinned), &remote),
        Verdict::Bound,
        "same commit, same data, the data pushed"
    );
    assert_eq!(
        gt::timeline(&commit, &run(other_sha, pinned), &remote),
        Verdict::UnknownCommit {
            run: other_sha.to_string(),
            commit: sha.to_string(),
        },
        "`run` is what the run recorded, `commit` the commit at hand"
    );
    assert_eq!(
        gt::timeline(&commit, &run(&sha[..7], pinned), &remote),
        Verdict::UnknownCommit {
            run: sha[..7].to_string(),
            commit: sha.to_string(),
        },
        "SHAs are compared exactly: a short SHA is not the commit"
    );
    assert_eq!(
        gt::timeline(&commit, &run(sha, newer), &remote),
        Verdict::DataDrift {
            pinned: pinned.to_string(),
            used: newer.to_string(),
        },
        "the run read newer data than the commit pins (pushed, but not the pinned one)"
    );
    assert_eq!(
        gt::timeline(&commit, &run(sha, pinned), &[newer.to_string()]),
        Verdict::Unrestorable {
            hash: pinned.to_string(),
        },
        "the records agree, but the remote lacks the data"
    );
    assert_eq!(
        gt::timeline(&commit, &run(sha, pinned), &[]),
        Verdict::Unrestorable {
            hash: pinned.to_string(),
        },
        "an empty remote"
    );

    // Precedence: the commit first, then the drift, then the remote.
    let lost = "0123456789abcdef0123456789abcdef";
    assert_eq!(
        gt::timeline(&commit, &run(other_sha, lost), &[]),
        Verdict::UnknownCommit {
            run: other_sha.to_string(),
            commit: sha.to_string(),
        },
        "wrong commit, drifted and unrestorable: the commit is reported first"
    );
    assert_eq!(
        gt::timeline(&commit, &run(other_sha, newer), &remote),
        Verdict::UnknownCommit {
            run: other_sha.to_string(),
            commit: sha.to_string(),
        },
        "wrong commit and drifted: the commit is reported first"
    );
    assert_eq!(
        gt::timeline(&commit, &run(sha, lost), &remote),
        Verdict::DataDrift {
            pinned: pinned.to_string(),
            used: lost.to_string(),
        },
        "drifted and unrestorable: the drift is reported first"
    );
    // The remote is about the data the run used, not the data pinned.
    let only_pinned = CommitPin {
        sha: sha.to_string(),
        pinned_md5: lost.to_string(),
    };
    assert_eq!(
        gt::timeline(&only_pinned, &run(sha, lost), &remote),
        Verdict::Unrestorable {
            hash: lost.to_string(),
        }
    );
}

// === Trial 4: git or DVC ===

pub fn where_it_goes() {
    let mib = 1_048_576;
    let cases: &[(&str, u64, Store, &str)] = &[
        // 1. Nowhere: build outputs, caches, run stores, secrets.
        (
            "target/release/app",
            9_000_000,
            Store::Neither,
            "a build output",
        ),
        (
            "crates/x/target/debug/x.d",
            200,
            Store::Neither,
            "`target` anywhere in the path",
        ),
        ("target", 0, Store::Neither, "the component itself"),
        (
            ".dvc/cache/files/md5/98/8a8711aca295afabc774eaa8810408.dir",
            900,
            Store::Neither,
            "DVC's cache",
        ),
        (
            ".dvc/config.local",
            120,
            Store::Neither,
            "this machine's DVC settings, credentials included",
        ),
        (".dvc/tmp/lock", 10, Store::Neither, "DVC's scratch"),
        (".dvc/config", 120, Store::Git, "the project's DVC settings"),
        (
            "mlruns/0/4f1c/meta.yaml",
            300,
            Store::Neither,
            "MLflow's run store",
        ),
        (
            "mlartifacts/1/model.gguf",
            700_000_000,
            Store::Neither,
            "MLflow's artifacts, a model format included",
        ),
        (
            "src/__pycache__/train.cpython-311.pyc",
            5_000,
            Store::Neither,
            "Python's bytecode cache",
        ),
        (".env", 120, Store::Neither, "secrets, however small"),
        ("deploy/.env", 120, Store::Neither, "a `.env` in any folder"),
        (
            "certs/server.pem",
            2_000,
            Store::Neither,
            "a certificate or private key",
        ),
        ("keys/signing.key", 64, Store::Neither, "a key"),
        (
            "target/model.dvc",
            100,
            Store::Neither,
            "rule 1 before rule 2",
        ),
        // 2. Git: DVC's pointers and configuration, whatever their size.
        ("data.dvc", 120, Store::Git, "a pointer"),
        (
            "models/model.gguf.dvc",
            130,
            Store::Git,
            "a pointer to a model is not a model",
        ),
        (
            "dvc.yaml",
            2 * mib,
            Store::Git,
            "a pipeline, even above 1 MiB",
        ),
        (
            "dvc.lock",
            3 * mib,
            Store::Git,
            "the lock file, even above 1 MiB",
        ),
        (".dvc/config", 200, Store::Git, "DVC's configuration"),
        (".gitignore", 50, Store::Git, "the ignore files"),
        (
            "data/.gitignore",
            50,
            Store::Git,
            "the one `dvc add` writes",
        ),
        (".dvcignore", 50, Store::Git, "DVC's ignore file"),
        // 3. DVC: model and data formats, whatever their size.
        (
            "models/tiny.safetensors",
            10,
            Store::Dvc,
            "weights, however small",
        ),
        ("model.gguf", 100, Store::Dvc, "a GGUF model"),
        ("pytorch_model.bin", 500, Store::Dvc, "a .bin"),
        ("emb/vectors.npy", 128, Store::Dvc, "a NumPy array"),
        (
            "ckpt/step_100.pt",
            4_096,
            Store::Dvc,
            "a PyTorch checkpoint",
        ),
        ("export/model.onnx", 4_096, Store::Dvc, "an ONNX graph"),
        ("data/train.parquet", 900, Store::Dvc, "a Parquet table"),
        // 4. and 5. The rest by size: strictly above 1 MiB to DVC.
        ("data/big.csv", mib + 1, Store::Dvc, "1 MiB and one byte"),
        (
            "data/edge.csv",
            mib,
            Store::Git,
            "exactly 1 MiB is not larger",
        ),
        ("src/train.py", 4_000, Store::Git, "code"),
        ("params.yaml", 300, Store::Git, "configuration"),
        ("README.md", 0, Store::Git, "an empty file"),
        (
            "docs/figure.svg",
            5 * mib,
            Store::Dvc,
            "a large file of any kind",
        ),
        (
            "notes/target.md",
            100,
            Store::Git,
            "`target.md` is not the component `target`",
        ),
        ("src/env.rs", 100, Store::Git, "not named `.env`"),
        (
            "docs/notes.bin.md",
            100,
            Store::Git,
            "ends with `.md`, not `.bin`",
        ),
        (
            "src/model.dvc.rs",
            2 * mib,
            Store::Dvc,
            "ends with `.rs`, not `.dvc`: a large file",
        ),
    ];
    for &(path, bytes, store, why) in cases {
        assert_eq!(
            gt::where_it_goes(path, bytes),
            store,
            "{path:?}, {bytes} bytes: {why}"
        );
    }
}
