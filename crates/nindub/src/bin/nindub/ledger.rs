//! `nindub ledger`: owning against renting (The Merchant's Ledger). Every
//! input is a flag whose default is a published figure or this project's
//! measurement (`--sources` says which); `--measure` replaces the
//! throughput with a run on this machine, and the estimated energy per
//! token with RAPL's reading where the kernel exposes it.

use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use nindub::ledger::inputs::{self as defaults, Inputs};
use nindub::ledger::{EnergyPerToken, Ledger, Rapl, report};
use nindub::model::generate::GenerateConfig;
use nindub::model::sample::SamplingConfig;

use crate::common::{EngineArgs, load};

#[derive(Args)]
pub struct LedgerArgs {
    /// Price of the owned hardware, USD (an RTX 3050 6GB; see --sources).
    #[arg(long, default_value_t = defaults::HARDWARE_PRICE.value, allow_negative_numbers = true)]
    hardware_price: f64,
    /// Months until the hardware is bought again.
    #[arg(long, default_value_t = defaults::LIFETIME_MONTHS.value, allow_negative_numbers = true)]
    lifetime_months: f64,
    /// Its power draw while generating, W.
    #[arg(long, default_value_t = defaults::LOAD_WATTS.value, allow_negative_numbers = true)]
    load_watts: f64,
    /// Its power draw while waiting, W (it stays on all day; 0 if it is
    /// switched off when unused).
    #[arg(long, default_value_t = defaults::IDLE_WATTS.value, allow_negative_numbers = true)]
    idle_watts: f64,
    /// Electricity, USD per kWh.
    #[arg(long, default_value_t = defaults::ELECTRICITY.value, allow_negative_numbers = true)]
    electricity: f64,
    /// A rented cloud GPU on demand, USD per hour.
    #[arg(long, default_value_t = defaults::CLOUD_ON_DEMAND.value, allow_negative_numbers = true)]
    cloud_on_demand: f64,
    /// A rented cloud GPU as spot (interruptible) capacity, USD per hour.
    #[arg(long, default_value_t = defaults::CLOUD_SPOT.value, allow_negative_numbers = true)]
    cloud_spot: f64,
    /// An API's price per million input (prompt) tokens, USD.
    #[arg(long, default_value_t = defaults::API_INPUT.value, allow_negative_numbers = true)]
    api_input: f64,
    /// An API's price per million output (generated) tokens, USD.
    #[arg(long, default_value_t = defaults::API_OUTPUT.value, allow_negative_numbers = true)]
    api_output: f64,
    /// Tokens generated per second of use (default: measured on this
    /// project's 2-thread CPU build machine, not a GPU; see --sources).
    #[arg(long, default_value_t = defaults::TOKENS_PER_SECOND.value, allow_negative_numbers = true)]
    tokens_per_second: f64,
    /// Prompt tokens the API bills per generated token.
    #[arg(long, default_value_t = defaults::INPUT_PER_OUTPUT.value, allow_negative_numbers = true)]
    input_per_output: f64,
    /// Hours of use a day to compare at (comma-separated, 0 to 24).
    #[arg(long, value_delimiter = ',', default_values_t = report::DEFAULT_HOURS, allow_negative_numbers = true)]
    hours: Vec<f64>,
    /// Print where every default comes from, and stop.
    #[arg(long)]
    sources: bool,
    /// Measure the throughput on this machine by generating with --model
    /// (and the energy, where the kernel exposes RAPL) instead of taking
    /// --tokens-per-second.
    #[arg(long, conflicts_with = "tokens_per_second")]
    measure: bool,
    /// The model --measure runs: a GGUF file or a cached asset's name.
    #[arg(long, default_value = "smollm2", requires = "measure")]
    model: String,
    /// Tokens --measure generates (greedy, past the end of the text).
    #[arg(long, default_value_t = 64, requires = "measure")]
    measure_tokens: usize,
    #[command(flatten)]
    engine: EngineArgs,
}

/// What --measure found: tokens/s on this machine, and the energy.
struct Measurement {
    tokens_per_second: f64,
    energy: EnergyPerToken,
    note: String,
}

/// Generates `tokens` greedily with `model`, timing the generation and
/// reading RAPL around it when the kernel exposes it.
fn measure(model: &str, engine: &EngineArgs, tokens: usize, watts: f64) -> Result<Measurement> {
    if tokens == 0 {
        bail!("--measure-tokens 0 measures nothing; use at least 1");
    }
    let prompt = "The merchant opened his ledger and wrote";
    let mut loaded = load(model, engine, |tokenizer, arch| {
        Ok(arch.context_for(tokenizer.encode(prompt)?.len(), tokens)?)
    })?;
    let g = &mut loaded.generator;
    let ids = g.tokenizer.encode(prompt)?;
    let config = GenerateConfig {
        sampling: SamplingConfig {
            temperature: 0.0,
            ..SamplingConfig::default()
        },
        max_tokens: tokens,
        top_n: 0,
        ignore_eos: true,
        ..GenerateConfig::default()
    };
    let rapl = Rapl::probe();
    let before = match &rapl {
        Ok(r) => Some(r.read()?),
        Err(_) => None,
    };
    let started = Instant::now();
    let out = g.generate(&ids, &config, |_| true)?;
    let seconds = started.elapsed().as_secs_f64();
    let generated = out.tokens.len() as u64;
    if generated == 0 {
        bail!("{model} generated no token; nothing was measured");
    }
    // Prompt and generation together: the wall time a user waits.
    let tokens_per_second = generated as f64 / seconds;
    let note = format!(
        "measured now on this machine: {generated} tokens of {} in {seconds:.2} s, prompt included, on the {} engine",
        loaded.path.display(),
        g.decoder.name()
    );
    let energy = match (&rapl, before) {
        (Ok(r), Some(b)) => {
            let after = r.read()?;
            EnergyPerToken::measured(r.joules_between(&b, &after)?, seconds, generated, r.zones())?
        }
        _ => {
            let reason = rapl.err().unwrap_or_else(|| "RAPL was not read".into());
            EnergyPerToken::estimate(
                watts,
                tokens_per_second,
                format!("{reason}; --load-watts used"),
            )?
        }
    };
    Ok(Measurement {
        tokens_per_second,
        energy,
        note,
    })
}

pub fn run(a: LedgerArgs) -> Result<()> {
    if a.sources {
        print!("{}", report::sources());
        return Ok(());
    }
    let mut inputs = Inputs {
        hardware_price: a.hardware_price,
        lifetime_months: a.lifetime_months,
        load_watts: a.load_watts,
        idle_watts: a.idle_watts,
        electricity: a.electricity,
        cloud_on_demand: a.cloud_on_demand,
        cloud_spot: a.cloud_spot,
        api_input: a.api_input,
        api_output: a.api_output,
        tokens_per_second: a.tokens_per_second,
        input_per_output: a.input_per_output,
    };
    // Nonsense is refused before a model is loaded.
    inputs.validate()?;
    for &h in &a.hours {
        nindub::ledger::inputs::hours_per_day(h)?;
    }
    if a.measure {
        let m = measure(&a.model, &a.engine, a.measure_tokens, a.load_watts)?;
        inputs.tokens_per_second = m.tokens_per_second;
        let ledger = Ledger::new(inputs)?;
        print!("{}", report::render(&ledger, &a.hours, &m.energy, &m.note)?);
    } else {
        let ledger = Ledger::new(inputs)?;
        print!("{}", report::render_unmeasured(&ledger, &a.hours)?);
    }
    Ok(())
}
