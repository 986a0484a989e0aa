use super::Lcg;
use exercises::engineer::automated_forge as af;
use nindub::federation::claims::{Audience, Claims, check_times};
use nindub::federation::policy::matches;
use nindub::federation::{Job, Provider};

// === Trial 1: a JWT's claims ===

pub fn jwt_claims() {
    assert_eq!(
        af::jwt_claims("e30.eyJzdWIiOiJ4In0.sig").unwrap(),
        serde_json::json!({"sub": "x"})
    );
    // Tokens the engine's local provider signs, for several jobs: every
    // claim as the engine reads it.
    let p = Provider::new("https://token.actions.githubusercontent.com").unwrap();
    let mut job = Job::main_push("octo-org/octo-repo");
    for (i, env) in [Some("production"), None, Some("staging:eu")]
        .iter()
        .enumerate()
    {
        job.environment = env.map(str::to_string);
        job.run_id = 1000 + i as u64;
        let token = p.issue(&job, "nindub-exchange", 1_796_083_200).unwrap();
        let yours = af::jwt_claims(&token).unwrap();
        let engine = jsonwebtoken_claims(&token);
        assert_eq!(yours, engine, "token {token}");
    }
    // Lengths 2 and 3 of the last group, and `-`/`_` in the alphabet.
    assert_eq!(
        af::jwt_claims("x.eyJhIjoiw78_In0.x").unwrap()["a"],
        "\u{ff}?"
    );
    assert_eq!(af::jwt_claims("x.eyJhIjoiPz8-In0.x").unwrap()["a"], "??>");
    assert_eq!(af::jwt_claims("x.eyJhIjoiPj4-In0.x").unwrap()["a"], ">>>");
    for bad in [
        "only.two", "a.b.c.d", "x.e30=.y", "x.eyJ!.y", "x.e.y", "x.WzFd.y", "",
    ] {
        assert!(af::jwt_claims(bad).is_err(), "{bad:?} must be refused");
    }
}

/// The claims as `nindub` reads them (its verifier's own decoding).
fn jsonwebtoken_claims(token: &str) -> serde_json::Value {
    nindub::federation::verify::unverified_claims(token).unwrap()
}

// === Trial 2: a lifetime with skew ===

pub fn within_lifetime() {
    assert!(af::within_lifetime(Some(1000), 1300, 1359, 60));
    assert!(!af::within_lifetime(Some(1000), 1300, 1360, 60));
    assert!(!af::within_lifetime(None, 1300, 1300, 0));
    assert!(af::within_lifetime(None, u64::MAX, u64::MAX - 1, 60));
    assert!(af::within_lifetime(Some(u64::MAX), 10, 0, u64::MAX));
    let mut rng = Lcg(7);
    for _ in 0..5000 {
        let base = 1_000_000 + rng.step() % 1000;
        let nbf = (rng.step() % 3 > 0).then(|| base + rng.step() % 200);
        let exp = base + rng.step() % 600;
        let now = base + rng.step() % 900;
        let skew = rng.step() % 120;
        let c = Claims {
            iss: "i".into(),
            sub: "s".into(),
            aud: Audience::One("a".into()),
            exp,
            nbf,
            iat: Some(0),
            jti: None,
            extra: Default::default(),
        };
        let engine = match check_times(&c, now, skew, u64::MAX) {
            Ok(()) => true,
            Err(r) => !matches!(r.kind(), "expired" | "not_yet_valid"),
        };
        assert_eq!(
            af::within_lifetime(nbf, exp, now, skew),
            engine,
            "nbf {nbf:?}, exp {exp}, now {now}, skew {skew}"
        );
    }
}

// === Trial 3: `sub` against a pattern ===

pub fn sub_matches() {
    assert!(af::sub_matches("repo:o/r:*", "repo:o/r:pull_request"));
    assert!(!af::sub_matches(
        "repo:o/r:ref:refs/heads/main",
        "repo:o/r:ref:refs/heads/main2"
    ));
    assert!(af::sub_matches("*", ""));
    assert!(af::sub_matches("a*b*c", "abxbc"));
    assert!(!af::sub_matches("a*b*c", "abxbcd"));
    assert!(af::sub_matches("repo:*/r:*:main", "repo:o/r:ref:main"));
    let alphabet = b"ab*:";
    let mut rng = Lcg(11);
    for _ in 0..20_000 {
        let pick = |rng: &mut Lcg, n: u64, star: bool| -> String {
            (0..rng.step() % n)
                .map(|_| alphabet[(rng.step() % if star { 4 } else { 3 }) as usize] as char)
                .collect()
        };
        let pattern = pick(&mut rng, 7, true);
        let sub = pick(&mut rng, 9, false);
        assert_eq!(
            af::sub_matches(&pattern, &sub),
            matches(&pattern, &sub),
            "pattern {pattern:?}, sub {sub:?}"
        );
    }
}
