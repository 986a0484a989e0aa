//! The trials' harness (`cargo test -p exercises`).
//!
//! The trials are listed once, in `exercises/info.toml`, in the order a
//! learner should do them: each `[[trial]]` gives its rank, its chapter (the
//! stub file `src/<rank>/<chapter>.rs` and the check module
//! `checks::<chapter>`), its name (the check function), the stubs it grades
//! when they are not named like it, and the hint printed when it fails.
//! `build.rs` checks the manifest and turns it into the table of
//! `all_trials`: a new trial is a check function here and an entry there.
//!
//! Every trial runs in a child process (this same binary, asked to run one
//! trial) under a time limit, so a learner's panic, stack overflow or endless
//! loop fails that trial alone. The output keeps libtest's shape (`test NAME
//! ... ok`, `test result: ...`) and adds a grade per rank.
//!
//! Environment: `TRIALS_TIMEOUT_S` (default 20) per trial; `TRIALS_EXPECT=fail`
//! inverts the verdict (CI: every stub must fail). A first argument filters
//! trials by substring, as with `cargo test -p exercises -- kv_cache`.
//! `TRIALS_FIXTURES=1` tests the harness itself on trials that pass, panic,
//! loop forever and overflow the stack.

mod checks;

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Rank {
    Apprentice,
    Engineer,
    Archmage,
}

const RANKS: [Rank; 3] = [Rank::Apprentice, Rank::Engineer, Rank::Archmage];

struct Trial {
    rank: Rank,
    chapter: &'static str,
    name: &'static str,
    /// Printed when the trial fails.
    hint: &'static str,
    check: fn(),
}

impl Trial {
    fn id(&self) -> String {
        format!(
            "{}::{}::{}",
            format!("{:?}", self.rank).to_lowercase(),
            self.chapter,
            self.name
        )
    }
}

/// Every trial, in the order of `exercises/info.toml`, from which `build.rs`
/// generates this list. A trial listed there whose check function does not
/// exist stops the build here, with error[E0425]: cannot find value
/// `<name>` in module `checks::<chapter>` (write the check in
/// `tests/checks/<chapter>.rs`, or fix the manifest).
fn all_trials() -> Vec<Trial> {
    include!(concat!(env!("OUT_DIR"), "/trials.rs"))
}

/// Trials with a known outcome, to test the harness itself
/// (`TRIALS_FIXTURES=1`): each name says how it must end.
fn fixture_trials() -> Vec<Trial> {
    fn passes() {}
    fn panics() {
        panic!("a learner's assertion failed");
    }
    fn loops_forever() {
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
    fn overflows_the_stack() {
        #[allow(unconditional_recursion)]
        fn recurse(n: u64) -> u64 {
            std::hint::black_box(recurse(std::hint::black_box(n + 1))) + 1
        }
        recurse(0);
    }
    let fixture = |name, check| Trial {
        rank: Rank::Apprentice,
        chapter: "grader_fixtures",
        name,
        hint: "a fixture of the harness itself",
        check,
    };
    vec![
        fixture("passes", passes as fn()),
        fixture("panics", panics),
        fixture("loops_forever", loops_forever),
        fixture("overflows_the_stack", overflows_the_stack),
    ]
}

/// Runs the fixtures and checks that each ended as its name says.
fn check_fixtures(timeout: u64) -> ExitCode {
    let mut wrong = 0;
    for t in fixture_trials() {
        let outcome = run_child(&t.id(), Duration::from_secs(timeout));
        let ok = match (t.name, &outcome) {
            ("passes", Ok(())) => true,
            ("panics", Err(Failure::Panicked(msg))) => msg.contains("a learner's assertion failed"),
            ("loops_forever", Err(Failure::TimedOut)) => true,
            ("overflows_the_stack", Err(Failure::Panicked(_))) => true,
            _ => false,
        };
        println!("test {} ... {}", t.id(), if ok { "ok" } else { "FAILED" });
        wrong += usize::from(!ok);
    }
    println!(
        "\ntest result: {}. {} passed; {wrong} failed; 0 ignored; 0 measured; 0 filtered out\n",
        if wrong == 0 { "ok" } else { "FAILED" },
        4 - wrong
    );
    if wrong == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

const CHILD_ENV: &str = "TRIALS_RUN_ONE";

fn main() -> ExitCode {
    let mut trials = all_trials();
    if std::env::var(CHILD_ENV).is_ok_and(|id| id.contains("grader_fixtures")) {
        trials.extend(fixture_trials());
    }
    if let Ok(id) = std::env::var(CHILD_ENV) {
        // Child: run one trial; a panic exits non-zero with its message on stderr.
        return match trials.iter().find(|t| t.id() == id) {
            Some(t) => {
                (t.check)();
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no trial named {id}");
                ExitCode::from(2)
            }
        };
    }
    let expect_fail = std::env::var("TRIALS_EXPECT").is_ok_and(|v| v == "fail");
    let timeout = std::env::var("TRIALS_TIMEOUT_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    if std::env::var("TRIALS_FIXTURES").is_ok_and(|v| v == "1") {
        return check_fixtures(timeout);
    }
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected: Vec<&Trial> = trials
        .iter()
        .filter(|t| filter.as_ref().is_none_or(|f| t.id().contains(f.as_str())))
        .collect();

    let started = Instant::now();
    println!("\nrunning {} trials", selected.len());
    let mut outcomes = vec![];
    for t in &selected {
        let outcome = run_child(&t.id(), Duration::from_secs(timeout));
        let status = match &outcome {
            Ok(()) => "ok",
            Err(Failure::TimedOut) => "FAILED (timed out)",
            Err(_) => "FAILED",
        };
        println!("test {} ... {status}", t.id());
        outcomes.push((*t, outcome));
    }

    let failures: Vec<_> = outcomes.iter().filter(|(_, o)| o.is_err()).collect();
    if !failures.is_empty() && !expect_fail {
        println!("\nfailures:\n");
        for (t, o) in &failures {
            println!("---- {} ----", t.id());
            if let Err(f) = o {
                println!("{}", f.describe(timeout));
            }
            println!("hint: {}\n", t.hint);
        }
    }

    print_grades(&trials, &outcomes);
    let passed = outcomes.len() - failures.len();
    let result = if failures.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {result}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        failures.len(),
        trials.len() - selected.len(),
        started.elapsed().as_secs_f64()
    );
    if expect_fail {
        // CI's other direction: with the stubs, no trial may pass.
        let solved: Vec<_> = outcomes
            .iter()
            .filter(|(_, o)| o.is_ok())
            .map(|(t, _)| t.id())
            .collect();
        if solved.is_empty() {
            println!(
                "TRIALS_EXPECT=fail: every one of the {} stubs fails, as it should",
                outcomes.len()
            );
            return ExitCode::SUCCESS;
        }
        println!(
            "TRIALS_EXPECT=fail: these trials pass without a solution: {}",
            solved.join(", ")
        );
        return ExitCode::FAILURE;
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}

enum Failure {
    Panicked(String),
    TimedOut,
    Spawn(String),
}

impl Failure {
    fn describe(&self, timeout: u64) -> String {
        match self {
            Failure::Panicked(stderr) => stderr.trim().to_string(),
            Failure::TimedOut => format!(
                "did not finish within {timeout} s (an endless loop?); set TRIALS_TIMEOUT_S to allow more"
            ),
            Failure::Spawn(e) => format!("could not start the trial: {e}"),
        }
    }
}

fn run_child(id: &str, timeout: Duration) -> Result<(), Failure> {
    let exe = std::env::current_exe().map_err(|e| Failure::Spawn(e.to_string()))?;
    let mut child = Command::new(exe)
        .env(CHILD_ENV, id)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::Spawn(e.to_string()))?;
    // Drain stderr on a thread so a chatty trial cannot block on a full pipe.
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let err = reader.join().unwrap_or_default();
                return if status.success() {
                    Ok(())
                } else {
                    Err(Failure::Panicked(err))
                };
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::TimedOut);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(Failure::Spawn(e.to_string())),
        }
    }
}

fn print_grades(trials: &[Trial], outcomes: &[(&Trial, Result<(), Failure>)]) {
    println!("\nThe Codex's grades");
    let mut reached = None;
    let mut climbing = true;
    for rank in RANKS {
        let total = trials.iter().filter(|t| t.rank == rank).count();
        let ran: Vec<_> = outcomes.iter().filter(|(t, _)| t.rank == rank).collect();
        let passed = ran.iter().filter(|(_, o)| o.is_ok()).count();
        let note = if total == 0 {
            "no trials yet".to_string()
        } else if passed == total {
            "complete".to_string()
        } else {
            format!("{} to go", total - passed)
        };
        println!(
            "  {:<11} {passed:>3}/{total:<3} {note}",
            format!("{rank:?}")
        );
        if total > 0 {
            climbing &= passed == total;
            if climbing {
                reached = Some(rank);
            }
        }
    }
    match reached {
        Some(rank) => println!("  rank reached: {rank:?}"),
        None => println!(
            "  rank reached: none yet (pass every Apprentice trial to become an Apprentice)"
        ),
    }
}
