//! The alert rules, defined once: Prometheus's rule file is rendered from
//! them ([`prometheus_rules`], `nindub monitor rules`, kept equal to
//! `deploy/monitoring/rules.yml` by a test), and the same thresholds are
//! evaluated in process ([`Rule::holds`]) where the chapter counts how
//! many requests a degraded model takes to be caught.

use super::canary::CanaryScore;
use super::quality::Snapshot;
use super::windows::{Signal, Test};

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    /// The scrape itself fails (only Prometheus can see this).
    Down,
    /// Any of `signals`' `test` score above `threshold`, windows full.
    DriftAbove {
        signals: &'static [Signal],
        test: Test,
        threshold: f64,
    },
    /// The live mean of `signal` below `fraction` of the reference mean.
    MeanBelow { signal: Signal, fraction: f64 },
    /// The last canary run's accuracy below `threshold`.
    CanaryBelow { threshold: f64 },
}

/// One alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub alert: &'static str,
    pub condition: Condition,
    /// Prometheus's `for`: how long the condition must hold.
    pub for_: &'static str,
    pub severity: &'static str,
    pub summary: &'static str,
}

// ANCHOR: rules
/// The Infrastructure Canon's rules.
pub const RULES: &[Rule] = &[
    Rule {
        alert: "NindubDown",
        condition: Condition::Down,
        for_: "1m",
        severity: "page",
        summary: "nindub does not answer Prometheus's scrapes",
    },
    Rule {
        alert: "NindubConfidenceDrift",
        condition: Condition::DriftAbove {
            signals: &[Signal::TokenProbability, Signal::TokenEntropy],
            test: Test::Psi,
            threshold: 0.25,
        },
        for_: "1m",
        severity: "page",
        summary: "the model's confidence has drifted from its reference window (PSI > 0.25)",
    },
    Rule {
        alert: "NindubOutputTokenDrift",
        condition: Condition::DriftAbove {
            signals: &[Signal::OutputTokens],
            test: Test::Js,
            threshold: 0.2,
        },
        for_: "1m",
        severity: "page",
        summary: "the tokens the model writes have drifted from its reference window (Jensen-Shannon > 0.2)",
    },
    Rule {
        alert: "NindubQualityDrop",
        condition: Condition::MeanBelow {
            signal: Signal::TokenProbability,
            fraction: 0.6,
        },
        for_: "1m",
        severity: "page",
        summary: "the chosen token's mean probability fell below 60% of the reference",
    },
    Rule {
        alert: "NindubCanaryFailing",
        condition: Condition::CanaryBelow { threshold: 0.9 },
        for_: "1m",
        severity: "page",
        summary: "the model answers fewer than 90% of its canary tokens as it did when it was approved",
    },
    Rule {
        alert: "NindubInputDrift",
        condition: Condition::DriftAbove {
            signals: &[Signal::InputEmbeddingNorm],
            test: Test::Psi,
            threshold: 0.25,
        },
        for_: "1m",
        severity: "ticket",
        summary: "the prompts have drifted from the reference window (PSI of input embedding norms > 0.25)",
    },
];
// ANCHOR_END: rules

const READY: &str = "and on() nindub_drift_reference_ready == 1";

impl Rule {
    /// The PromQL expression.
    pub fn expr(&self) -> String {
        match self.condition {
            Condition::Down => r#"up{job="nindub"} == 0"#.to_string(),
            Condition::DriftAbove {
                signals,
                test,
                threshold,
            } => {
                let names: Vec<&str> = signals.iter().map(|s| s.name()).collect();
                let matcher = if names.len() == 1 {
                    format!("signal=\"{}\"", names[0])
                } else {
                    format!("signal=~\"{}\"", names.join("|"))
                };
                format!(
                    "nindub_drift_score{{test=\"{}\",{matcher}}} > {threshold} {READY}",
                    test.name()
                )
            }
            Condition::MeanBelow { signal, fraction } => {
                let s = signal.name();
                format!(
                    "nindub_signal_mean{{signal=\"{s}\",window=\"live\"}} < ignoring(window) \
                     {fraction} * nindub_signal_mean{{signal=\"{s}\",window=\"reference\"}} {READY}"
                )
            }
            Condition::CanaryBelow { threshold } => format!(
                "nindub_canary_accuracy_ratio < {threshold} and on() nindub_canary_runs_total > 0"
            ),
        }
    }

    /// Whether the condition holds now, as Prometheus would compute it from
    /// the same numbers; `None` for what only Prometheus sees (a failed
    /// scrape).
    pub fn holds(&self, snap: &Snapshot, canary: Option<&CanaryScore>) -> Option<bool> {
        match self.condition {
            Condition::Down => None,
            Condition::DriftAbove {
                signals,
                test,
                threshold,
            } => Some(
                snap.ready
                    && signals
                        .iter()
                        .any(|&s| snap.drift(s, test).is_some_and(|v| v > threshold)),
            ),
            Condition::MeanBelow { signal, fraction } => Some(
                snap.ready
                    && snap
                        .mean(signal)
                        .is_some_and(|(reference, live)| live < fraction * reference),
            ),
            Condition::CanaryBelow { threshold } => {
                Some(canary.is_some_and(|c| c.accuracy < threshold))
            }
        }
    }
}

/// The rules as a Prometheus rule file.
pub fn prometheus_rules() -> String {
    let mut out = String::from(
        "# The Infrastructure Canon's alerting rules. Generated by `nindub monitor rules`\n\
         # from nindub::monitor::rules (a test keeps the two equal): edit the Rust.\n\
         groups:\n  - name: nindub-quality\n    rules:\n",
    );
    for r in RULES {
        out.push_str(&format!(
            "      - alert: {}\n        expr: {}\n        for: {}\n        labels:\n          \
             severity: {}\n        annotations:\n          summary: \"{}\"\n",
            r.alert,
            r.expr(),
            r.for_,
            r.severity,
            r.summary
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::quality::Drift;

    fn snap(ready: bool, psi: f64, live_prob: f64) -> Snapshot {
        Snapshot {
            ready,
            reference_tokens: 400,
            live_tokens: 160,
            means: vec![(Signal::TokenProbability, 0.6, live_prob)],
            drift: vec![Drift {
                signal: Signal::TokenEntropy,
                test: Test::Psi,
                value: psi,
            }],
        }
    }

    #[test]
    fn rules_decide_as_their_expressions_say() {
        let drift = &RULES[1];
        assert_eq!(drift.holds(&snap(true, 0.6, 0.6), None), Some(true));
        assert_eq!(drift.holds(&snap(true, 0.05, 0.6), None), Some(false));
        assert_eq!(
            drift.holds(&snap(false, 0.6, 0.6), None),
            Some(false),
            "not ready"
        );
        let drop = &RULES[3];
        assert_eq!(drop.holds(&snap(true, 0.0, 0.3), None), Some(true));
        assert_eq!(drop.holds(&snap(true, 0.0, 0.5), None), Some(false));
        let canary = &RULES[4];
        let score = |accuracy| CanaryScore {
            accuracy,
            logprob_mean: -1.0,
            tokens: 10,
            exact: 0,
            canaries: 1,
        };
        assert_eq!(
            canary.holds(&snap(false, 0.0, 0.0), None),
            Some(false),
            "never ran"
        );
        assert_eq!(
            canary.holds(&snap(false, 0.0, 0.0), Some(&score(0.5))),
            Some(true)
        );
        assert_eq!(
            canary.holds(&snap(false, 0.0, 0.0), Some(&score(1.0))),
            Some(false)
        );
        assert_eq!(RULES[0].holds(&snap(true, 0.0, 0.0), None), None);
    }

    #[test]
    fn every_rule_is_rendered_once() {
        let y = prometheus_rules();
        for r in RULES {
            assert_eq!(y.matches(&format!("alert: {}\n", r.alert)).count(), 1);
        }
        assert!(y.contains(
            r#"expr: nindub_drift_score{test="psi",signal=~"token_probability|token_entropy"} > 0.25 and on() nindub_drift_reference_ready == 1"#
        ));
    }
}
