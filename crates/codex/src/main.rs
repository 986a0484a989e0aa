//! `cargo codex`: the Technomancy Codex's workbench tool.
//!
//! Everything a learner or CI does goes through here, so that two commands
//! work on a fresh machine with nothing but cargo and python3:
//!
//! ```text
//! cargo codex serve   # install the book's tools, build the book, serve it
//! cargo codex test    # every check CI runs
//! ```
//!
//! Tools are installed on first use, idempotently, under `$CODEX_HOME`
//! (default `~/.cache/codex`): mdBook and mdbook-katex and the evcxr kernel
//! with `cargo install --locked --root`, Jupyter's client libraries and
//! Playwright in a Python virtual environment, Debian's Chromium with
//! apt-get. Nothing is written into the repository but the book's build.

mod figures;
mod install;
mod measure;
mod steps;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo codex",
    about = "The Technomancy Codex's workbench: book, notebooks, trials, checks."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the book and serve it at http://127.0.0.1:PORT (installs what it needs).
    Serve {
        #[arg(long, default_value_t = 3000)]
        port: u16,
    },
    /// Build the book into book/build.
    Build,
    /// Run every check CI runs: format, lints, tests, trials both ways,
    /// notebooks, generated results, the book in a browser.
    Test,
    /// Regenerate the chapters' results (tables, plots, outputs) into book/src/generated.
    Results {
        /// Regenerate into a temporary directory and fail if the committed results differ.
        #[arg(long)]
        check: bool,
    },
    /// Measure speed (release builds) and write the figures into the book:
    /// generation against candle-transformers and llama.cpp, the quantized
    /// kernels, the distillation loss, the HTTP server against in-process
    /// generation and llama-cpp-python's server, layer streaming, and the
    /// container image against a naive one.
    Bench {
        /// Only these: generation, kernels, loss, serve, stream, image
        /// (default: all).
        only: Vec<String>,
    },
    /// Run the chapters' long experiments (distillation: digits and a
    /// language model; a quarter of an hour or more) into the book.
    Experiments,
    /// Execute every notebook cell by cell with the evcxr kernel.
    Notebooks {
        /// Only these notebooks (file names under notebooks/).
        names: Vec<String>,
    },
    /// Check that notebooks are stored without outputs (and strip them with --fix).
    CheckNotebooks {
        #[arg(long)]
        fix: bool,
    },
    /// Build the book and load every page in headless Chromium.
    CheckBook,
    /// The Speaking Stone's independent clients against a real `nindub
    /// serve`: the `openai` Python package, and the web page in Chromium.
    Clients,
    /// Run the graded trials (`cargo test -p exercises`).
    Grade {
        /// Grade the reference solutions instead of the stubs.
        #[arg(long)]
        solutions: bool,
    },
    /// Check that the prose quotes the generated figures by name
    /// (`{{#fig NAME}}`) rather than typing them by hand.
    Figures,
    /// The `{{#fig NAME}}` preprocessor, as mdBook calls it (book.toml).
    #[command(hide = true)]
    MdbookFigures {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Fetch the pinned models and data into the cache.
    Models,
    /// Install the tools (all of them, or one group).
    Setup {
        #[arg(value_enum, default_value = "all")]
        what: install::Group,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(found) = steps::default_corpus() {
        // SAFETY: nothing else runs yet (no thread has been started), so
        // no one reads the environment while it is written; every child
        // process inherits the setting.
        unsafe { std::env::set_var("NINDUB_CORPUS", found) };
    }
    let result = match cli.command {
        Command::Serve { port } => steps::serve(port),
        Command::Build => steps::build_book(),
        Command::Test => steps::test_all(),
        Command::Results { check } => steps::results(check),
        Command::Bench { only } => measure::bench(&only),
        Command::Experiments => measure::experiments(),
        Command::Notebooks { names } => steps::notebooks(&names),
        Command::CheckNotebooks { fix } => steps::check_notebooks(fix),
        Command::CheckBook => steps::check_book(),
        Command::Clients => steps::clients(),
        Command::Grade { solutions } => steps::grade(solutions),
        Command::Figures => steps::figures_bound(),
        Command::MdbookFigures { args } => figures::preprocessor(&args, &steps::generated_dir()),
        Command::Models => steps::models(),
        Command::Setup { what } => install::setup(what),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codex: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
