//! The rules the deploy files keep, beyond what hadolint and actionlint
//! check: the Dockerfile is multi-stage, its runtime stage is `scratch`
//! holding only the built binary, it runs as a non-root user, its base is
//! pinned, no secret is baked in; the workflow holds no secret and asks
//! for an OIDC token only in the deploy job, which only `main` reaches.

use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Instructions (continuation lines joined, comments dropped).
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => cur.push_str(head),
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

#[test]
fn the_dockerfile_keeps_its_rules() {
    let ins = instructions(&read("deploy/Dockerfile"));
    let froms: Vec<usize> = (0..ins.len())
        .filter(|&i| ins[i].starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {} FROM", froms.len());
    let last = *froms.last().unwrap();
    assert_eq!(
        ins[last], "FROM scratch",
        "the runtime stage starts from nothing"
    );
    for &i in &froms[..froms.len() - 1] {
        let image = ins[i].split_whitespace().nth(1).unwrap();
        let tag = image.split_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            image.contains("@sha256:") || tag.split('-').next().unwrap().matches('.').count() == 2,
            "base `{image}` is pinned neither by digest nor by an exact x.y.z tag"
        );
    }
    let runtime = &ins[last + 1..];
    for i in runtime {
        let op = i.split_whitespace().next().unwrap();
        assert!(
            [
                "COPY",
                "ENV",
                "USER",
                "ENTRYPOINT",
                "CMD",
                "LABEL",
                "EXPOSE"
            ]
            .contains(&op),
            "the runtime stage runs nothing and adds nothing but the binary: `{i}`"
        );
        if op == "COPY" {
            assert!(
                i.contains("--from="),
                "only built artifacts are copied in: `{i}`"
            );
        }
    }
    let user = runtime
        .iter()
        .rev()
        .find_map(|i| i.strip_prefix("USER "))
        .expect("the runtime stage names its user");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {user}: numeric and not root"
    );
    for i in &ins {
        let upper = i.to_uppercase();
        if upper.starts_with("ENV ") || upper.starts_with("ARG ") {
            for word in ["SECRET", "TOKEN", "PASSWORD", "API_KEY", "PRIVATE"] {
                assert!(!upper.contains(word), "a secret baked into a layer: `{i}`");
            }
        }
    }
}

#[test]
fn the_workflow_holds_no_secret_and_only_deploy_asks_for_a_token() {
    let wf: String = read(".github/workflows/forge.yml")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        !wf.contains("secrets."),
        "the workflow reads a stored secret"
    );
    assert!(
        wf.contains("permissions: {}"),
        "nothing is granted by default"
    );
    let deploy = wf.split("\n  deploy:").nth(1).expect("a deploy job");
    let before = wf.split("\n  deploy:").next().unwrap();
    assert!(deploy.contains("id-token: write"));
    assert!(
        !before.contains("id-token"),
        "only the deploy job may ask for an OIDC token"
    );
    assert!(deploy.contains("github.ref == 'refs/heads/main'"));
    assert!(deploy.contains("environment: production"));
    assert!(deploy.contains("deploy/smoke.sh"));
}

#[test]
fn the_policy_names_the_workflow_that_deploys() {
    let policy: serde_json::Value =
        serde_json::from_str(&read("deploy/trust-policy.json")).unwrap();
    let wf = policy[0]["conditions"]["job_workflow_ref"]
        .as_str()
        .unwrap();
    let path = wf.split_once('/').unwrap().1.split_once('/').unwrap().1;
    let file = path.split('@').next().unwrap();
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(file)
            .exists(),
        "the policy trusts `{file}`, which is not in the repository"
    );
}
