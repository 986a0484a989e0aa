# The Codex's everyday recipes. Each is a thin name for `cargo codex <recipe>`,
# which needs nothing but cargo; `just` is optional.

default:
    @just --list

# Build the book and serve it at http://127.0.0.1:3000/
serve port="3000":
    cargo codex serve --port {{port}}

# Build the book into book/build
build:
    cargo codex build

# Everything CI runs
test:
    cargo codex test

# Regenerate the chapters' results into book/src/generated
results:
    cargo codex results

# Check that the prose quotes the generated figures by name
figures:
    cargo codex figures

# Measure generation speed (release build) into the book
bench:
    cargo codex bench

# Run the long experiments (distillation) into the book
experiments:
    cargo codex experiments

# Execute every notebook with the evcxr kernel
notebooks:
    cargo codex notebooks

# Check that notebooks are stored without outputs
check-notebooks:
    cargo codex check-notebooks

# Build the book and check every page in headless Chromium
check-book:
    cargo codex check-book

# The server's real clients: the openai package, the web page in Chromium
clients:
    cargo codex clients

# Serve the model: web page and OpenAI-compatible API at http://127.0.0.1:8080/
serve-model:
    cargo run --release -p nindub -- serve

# NINDUB: a synthetic 4 GB model streamed within 768 MiB, from storage
stream-8b:
    #!/usr/bin/env bash
    set -euo pipefail
    dir="${NINDUB_CACHE:-$HOME/.cache/nindub}/synth/llama-3-8b-cli"
    [ -f "$dir/manifest.json" ] || cargo run --release -p nindub -- synth --preset llama-3-8b --out "$dir"
    cargo run --release -p nindub -- stream --model "$dir" --budget 768MiB --cold --io-floor

# Run the graded trials
grade:
    cargo codex grade

# Fetch the pinned models and data
models:
    cargo codex models
