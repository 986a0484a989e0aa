//! Generates the Results of "The Merchant's Ledger":
//! `cargo run -p lab --bin results -- run merchants_ledger book/src/generated/merchants-ledger`.
//!
//! Nothing is measured here: the ledger ([`nindub::ledger`]) is arithmetic
//! on its sourced defaults and on the throughput this project's benchmarks
//! measured and committed (`generated/speaking-stone/bench/serve.json`,
//! `generated/nindub/bench/stream.json`), read back from those records.
//! No clock, no machine: every byte written is the same on every run. The
//! energy per token is therefore the estimate (power ÷ throughput), and
//! says so; `nindub ledger --measure` reads RAPL where the kernel has it.
//!
//! Written: `figures.json`; `inputs.md` (the defaults and their sources);
//! `comparison.md` (the four choices at 24 and 2 hours a day);
//! `scenarios.md` (the crystal and a flagship card); `throughput.md` (the
//! verdict against the API as the throughput moves); `claims.md` (the
//! seed's claims, each with the computed answer and a verdict);
//! `ledger.txt` and `ledger-4090.txt` (what `nindub ledger` prints,
//! rendered by the function it prints with); and the plots
//! `break-even.svg`, `cumulative-24h.svg`, `cumulative-2h.svg`,
//! `ratio.svg`, `api-throughput.svg`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use nindub::ledger::inputs::{self, Inputs, SOURCES};
use nindub::ledger::measured::{Served, Streamed};
use nindub::ledger::report::{self, DEFAULT_HOURS, amount, break_even_text, crossing_text};
use nindub::ledger::{Choice, Crossing, EnergyPerToken, Ledger};

use super::{Figures, write};
use crate::plot::LineChart;

/// The flagship the seed also names: an RTX 4090, against the same card
/// rented (the default cloud prices are an RTX 4090's).
const RTX_4090: [(&str, f64, &str); 3] = [
    (
        "--hardware-price",
        1599.0,
        "GeForce RTX 4090 Founders Edition, USD 1,599 at launch (Tom's Hardware review, 11 October 2022)",
    ),
    (
        "--load-watts",
        450.0,
        "RTX 4090, 450 W TDP (Engadget's review, 2022, as reprinted by gamebastion.com)",
    ),
    (
        "--idle-watts",
        21.0,
        "assumed: the 21 W an RTX 3090 Ti draws idle, which ecoenergygeek.com's RTX 4090 power guide expects of the 4090 too",
    ),
];

fn rtx_4090() -> Inputs {
    Inputs {
        hardware_price: RTX_4090[0].1,
        load_watts: RTX_4090[1].1,
        idle_watts: RTX_4090[2].1,
        ..Inputs::default()
    }
}

/// What a rented GPU is held against (the API's bill depends on the
/// throughput, and has a table of its own).
const GPU_RENTALS: [Choice; 2] = [Choice::OnDemand, Choice::Spot];

/// The seed's monthly budget "with spot use".
const SEED_SPOT_BUDGET: [f64; 2] = [37.0, 74.0];

/// The hours of use a day the chapter quotes: always on, and a burst.
const ALWAYS: f64 = 24.0;
const BURST: f64 = 2.0;

fn generated() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../book/src/generated")
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (run `cargo codex bench`)", path.display()))
}

/// A throughput the benchmarks measured, and what it was.
struct Measured {
    key: &'static str,
    what: String,
    tokens_per_second: f64,
}

/// The throughputs the committed benchmark records hold, the default's
/// first; checks that the ledger's default is still the record's.
fn measured() -> Result<Vec<Measured>> {
    let root = generated();
    let served = Served::parse(&read(&root.join("speaking-stone/bench/serve.json"))?)?;
    let printout = read(&root.join("speaking-stone/bench/serve.txt"))?;
    let streamed = Streamed::parse(&read(&root.join("nindub/bench/stream.json"))?)?;
    let (clients, best) = served
        .best_aggregate()
        .context("serve.json holds no `nindub serve` run")?;
    ensure!(
        format!("{best:.1}") == format!("{:.1}", inputs::TOKENS_PER_SECOND.value),
        "the benchmark now measures {best:.1} tokens/s served; set nindub::ledger::inputs::TOKENS_PER_SECOND to it (and its source's client count, {clients})"
    );
    ensure!(
        served.generated_tokens == 64 && printout.contains("60 prompt tokens"),
        "the Speaking Stone's benchmark no longer sends 60 prompt tokens for 64 generated; update nindub::ledger::inputs::INPUT_PER_OUTPUT"
    );
    let threads = served.threads;
    let mut out = vec![
        Measured {
            key: "served",
            what: format!(
                "SmolLM2-135M Q4_1, resident, `nindub serve` to {clients} clients at once (the default)"
            ),
            tokens_per_second: inputs::TOKENS_PER_SECOND.value,
        },
        Measured {
            key: "in_process",
            what: "SmolLM2-135M Q4_1, resident, one generation in process".into(),
            tokens_per_second: served.in_process,
        },
    ];
    for (key, model, what) in [
        (
            "llama_1b",
            "llama-3.2-1b",
            "Llama-3.2-1B shape (synthetic, Q4_0), resident",
        ),
        (
            "llama_3b",
            "llama-3.2-3b",
            "Llama-3.2-3B shape (synthetic, Q4_0), 768 MiB budget, layers streamed from storage",
        ),
        (
            "llama_8b",
            "llama-3-8b",
            "Llama-3-8B shape (synthetic, Q4_0), 768 MiB budget, layers streamed from storage",
        ),
    ] {
        let run = streamed
            .find(model, true, true)
            .with_context(|| format!("stream.json has no cold, prefetching run of {model}"))?;
        let what = if run.streamed_layers > 0 {
            format!(
                "{what} ({} of {} layers)",
                run.streamed_layers,
                run.resident_layers + run.streamed_layers
            )
        } else {
            what.to_string()
        };
        out.push(Measured {
            key,
            what,
            tokens_per_second: run.tokens_per_second(),
        });
    }
    ensure!(threads > 0, "serve.json records no thread count");
    Ok(out)
}

/// A break-even as a figure: months, or the word.
fn months_figure(figs: &mut Figures, name: &str, months: Option<f64>) {
    match months {
        Some(m) => figs.number(name, m, 1, "months"),
        None => figs.text(name, "never"),
    }
}

fn crossing_figure(figs: &mut Figures, name: &str, c: &Crossing) {
    match c {
        Crossing::OwnAbove(h) | Crossing::OwnBelow(h) => figs.number(name, *h, 1, "h"),
        Crossing::OwnAlways => figs.text(name, "every"),
        Crossing::RentAlways => figs.text(name, "no"),
    }
}

/// The table of the defaults, with their sources.
fn inputs_table() -> String {
    let mut t = String::from("| Input | Flag | Default | Source |\n|---|---|---|---|\n");
    for s in SOURCES {
        let value = if s.value.fract() == 0.0 {
            amount(s.value, 0)
        } else {
            format!("{}", (s.value * 1e4).round() / 1e4)
        };
        let _ = writeln!(
            t,
            "| {} | `{}` | {value} {} | {} |",
            s.name, s.flag, s.unit, s.source
        );
    }
    t
}

/// The four choices at `hours` a day, side by side.
fn comparison(l: &Ledger, hours: &[f64]) -> Result<String> {
    let life = amount(l.inputs().lifetime_months, 0);
    let mut head = String::from("| Choice |");
    let mut rule = String::from("|---|");
    for h in hours {
        let h = amount(*h, 0);
        let _ = write!(
            head,
            " {h} h/day: a month | {h} h/day: {life} months | {h} h/day: per million tokens | {h} h/day: owning pays back |"
        );
        rule.push_str("---:|---:|---:|---|");
    }
    let mut t = format!("{head}\n{rule}\n");
    for c in Choice::ALL {
        let _ = write!(t, "| {} |", c.label());
        for &h in hours {
            let pays = if c == Choice::Own {
                format!("upfront {} USD", amount(l.upfront(c), 0))
            } else {
                break_even_text(&l.break_even(c, h)?)
            };
            let _ = write!(
                t,
                " {} | {} | {} | {pays} |",
                amount(l.monthly(c).at(h), 2),
                amount(l.cumulative(c, h, l.inputs().lifetime_months)?, 2),
                amount(l.per_million_tokens(c, h)?, 3),
            );
        }
        t.push('\n');
    }
    let _ = writeln!(
        t,
        "\nUSD. \"A month\" is owning's electricity (its purchase is upfront), a rental's bill; \"per million tokens\" spreads owning's purchase over its {life}-month life and assumes a rented GPU generates as fast as the owned one; at {} and {} million tokens a month.",
        amount(l.tokens_per_month(hours[0]) / 1e6, 1),
        amount(l.tokens_per_month(hours[hours.len() - 1]) / 1e6, 1)
    );
    Ok(t)
}

/// Points of `f` over `xs`, the ones it gives.
fn points(xs: impl Iterator<Item = f64>, f: impl Fn(f64) -> Option<f64>) -> Vec<(f64, f64)> {
    xs.filter_map(|x| f(x).map(|y| (x, y))).collect()
}

/// Owning's cumulative cost with the step of each repurchase drawn upright.
fn months_axis(end: f64, step: f64, life: f64) -> Vec<f64> {
    let mut xs: Vec<f64> = (0..=(end / step).round() as usize)
        .map(|k| k as f64 * step)
        .collect();
    let mut k = 1.0;
    while k * life < end {
        xs.push(k * life);
        xs.push(k * life + 1e-6);
        k += 1.0;
    }
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs
}

fn cumulative_chart(l: &Ledger, hours: f64) -> Result<LineChart> {
    let life = l.inputs().lifetime_months;
    let xs = months_axis(2.0 * life, 0.5, life);
    let mut series = vec![];
    for c in Choice::ALL {
        series.push((
            c.label().to_string(),
            points(xs.iter().copied(), |m| l.cumulative(c, hours, m).ok()),
        ));
    }
    Ok(LineChart {
        title: format!(
            "What each choice has cost, month by month, at {} h of use a day",
            amount(hours, 0)
        ),
        x_desc: "months".into(),
        y_desc: "cumulative cost (USD)".into(),
        series,
        ..LineChart::default()
    })
}

/// Writes the chapter's results into `out`.
pub fn generate(out: &Path) -> Result<()> {
    let mut figs = Figures::default();
    let crystal = Ledger::new(Inputs::default())?;
    let flagship = Ledger::new(rtx_4090())?;
    let i = *crystal.inputs();
    let life = i.lifetime_months;

    // 1. The inputs, and the throughputs the benchmarks measured.
    write(out, "inputs.md", &inputs_table())?;
    for (name, s) in [
        ("price", inputs::HARDWARE_PRICE),
        ("lifetime", inputs::LIFETIME_MONTHS),
        ("load_watts", inputs::LOAD_WATTS),
        ("idle_watts", inputs::IDLE_WATTS),
        ("kwh", inputs::ELECTRICITY),
        ("on_demand", inputs::CLOUD_ON_DEMAND),
        ("spot", inputs::CLOUD_SPOT),
        ("api_input", inputs::API_INPUT),
        ("api_output", inputs::API_OUTPUT),
    ] {
        let decimals = if s.value.fract() == 0.0 { 0 } else { 2 };
        figs.number(&format!("ledger.{name}"), s.value, decimals, s.unit);
    }
    let measured = measured()?;
    for m in &measured {
        let decimals = if m.tokens_per_second < 10.0 { 2 } else { 1 };
        figs.number(
            &format!("ledger.tps.{}", m.key),
            m.tokens_per_second,
            decimals,
            "tokens/s",
        );
    }
    let served = Served::parse(&read(&generated().join("speaking-stone/bench/serve.json"))?)?;
    let (clients, _) = served.best_aggregate().context("no served run")?;
    figs.number("ledger.tps.clients", clients as f64, 0, "");
    figs.number("ledger.tps.threads", served.threads as f64, 0, "");
    figs.number("ledger.input_per_output", i.input_per_output, 2, "");

    // 2. The four choices, always on and in bursts.
    write(
        out,
        "comparison.md",
        &comparison(&crystal, &[ALWAYS, BURST])?,
    )?;
    for (tag, h) in [("h24", ALWAYS), ("h2", BURST)] {
        figs.number(
            &format!("ledger.{tag}.tokens_m"),
            crystal.tokens_per_month(h) / 1e6,
            1,
            "million tokens",
        );
        for c in Choice::ALL {
            figs.number(
                &format!("ledger.{tag}.{}.monthly", c.key()),
                crystal.monthly(c).at(h),
                2,
                "USD",
            );
            figs.number(
                &format!("ledger.{tag}.{}.life", c.key()),
                crystal.cumulative(c, h, life)?,
                0,
                "USD",
            );
            figs.number(
                &format!("ledger.{tag}.{}.per_m", c.key()),
                crystal.per_million_tokens(c, h)?,
                3,
                "USD",
            );
        }
        figs.number(
            &format!("ledger.{tag}.own.amortised"),
            crystal.amortised_own(h),
            2,
            "USD",
        );
        for c in Choice::RENTALS {
            months_figure(
                &mut figs,
                &format!("ledger.{tag}.{}.months", c.key()),
                crystal.break_even(c, h)?.months,
            );
            figs.number(
                &format!("ledger.{tag}.{}.ratio", c.key()),
                crystal.long_run_ratio(c, h)?,
                2,
                "×",
            );
            months_figure(
                &mut figs,
                &format!("ledger.rtx4090.{tag}.{}.months", c.key()),
                flagship.break_even(c, h)?.months,
            );
            figs.number(
                &format!("ledger.rtx4090.{tag}.{}.ratio", c.key()),
                flagship.long_run_ratio(c, h)?,
                2,
                "×",
            );
        }
    }
    for c in Choice::RENTALS {
        crossing_figure(
            &mut figs,
            &format!("ledger.crossing.{}", c.key()),
            &crystal.crossing(c, life)?,
        );
        crossing_figure(
            &mut figs,
            &format!("ledger.rtx4090.crossing.{}", c.key()),
            &flagship.crossing(c, life)?,
        );
    }
    figs.number(
        "ledger.days_per_month",
        nindub::ledger::DAYS_PER_MONTH,
        4,
        "",
    );
    figs.number(
        "ledger.rtx4090.price",
        flagship.inputs().hardware_price,
        0,
        "USD",
    );
    figs.number(
        "ledger.rtx4090.load_watts",
        flagship.inputs().load_watts,
        0,
        "W",
    );
    figs.number(
        "ledger.rtx4090.idle_watts",
        flagship.inputs().idle_watts,
        0,
        "W",
    );

    // 3. Two cards.
    let mut sc = String::from(
        "| Card | Price | Power in use / idle | Pays back at 24 h/day: on demand | at 24 h/day: spot | at 2 h/day: on demand | at 2 h/day: spot | Owning wins over its life from (h/day): on demand | from (h/day): spot |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, l) in [
        ("RTX 3050 6GB (the default)", &crystal),
        ("RTX 4090", &flagship),
    ] {
        let li = l.inputs();
        let _ = write!(
            sc,
            "| {name} | {} USD | {} W / {} W |",
            amount(li.hardware_price, 0),
            amount(li.load_watts, 0),
            amount(li.idle_watts, 0)
        );
        for h in [ALWAYS, BURST] {
            for c in GPU_RENTALS {
                let _ = write!(sc, " {} |", break_even_text(&l.break_even(c, h)?));
            }
        }
        for c in GPU_RENTALS {
            let cell = match l.crossing(c, life)? {
                Crossing::OwnAbove(h) => amount(h, 1),
                other => crossing_text(&other),
            };
            let _ = write!(sc, " {cell} |");
        }
        sc.push('\n');
    }
    let _ = writeln!(
        sc,
        "\nThe rented GPU is an RTX 4090 in both rows (USD {} an hour on demand, {} spot): its bill, and so this table, does not depend on the throughput. Against the API it does (see the next table): at the default throughput, a CPU's, the RTX 4090's 450 W make its tokens dearer in electricity than the API's. The RTX 4090's own figures: {}",
        amount(i.cloud_on_demand, 2),
        amount(i.cloud_spot, 2),
        RTX_4090
            .iter()
            .map(|(flag, v, src)| format!("`{flag} {v}`, {src}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    write(out, "scenarios.md", &sc)?;

    // 4. The throughput decides the API's bill, and the energy per token.
    let mut tp = String::from(
        "| Measured on 2 CPU threads (no GPU) | Tokens/s | Million tokens a month at 24 h/day | API a month | Energy per token (estimated) | Electricity per million tokens | Owning pays back against the API at 24 h/day | Owning wins against the API over its life from |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut rows: Vec<(String, f64)> = measured
        .iter()
        .map(|m| (m.what.clone(), m.tokens_per_second))
        .collect();
    for k in [10.0, 100.0] {
        rows.push((
            format!("a GPU {k}× the default (not measured: a multiple)"),
            k * i.tokens_per_second,
        ));
    }
    for (what, tps) in &rows {
        let l = Ledger::new(Inputs {
            tokens_per_second: *tps,
            ..i
        })?;
        let e = EnergyPerToken::estimate(i.load_watts, *tps, "RAPL not read")?;
        let cross = match l.crossing(Choice::Api, life)? {
            Crossing::OwnAbove(h) => format!("{} h/day", amount(h, 1)),
            other => crossing_text(&other),
        };
        let _ = writeln!(
            tp,
            "| {what} | {} | {} | {} USD | {} J | {} USD | {} | {cross} |",
            amount(*tps, if *tps < 10.0 { 2 } else { 1 }),
            amount(l.tokens_per_month(ALWAYS) / 1e6, 1),
            amount(l.monthly(Choice::Api).at(ALWAYS), 2),
            amount(e.joules_per_token(), 2),
            amount(e.kwh_per_million() * i.electricity, 4),
            break_even_text(&l.break_even(Choice::Api, ALWAYS)?)
        );
    }
    let _ = writeln!(
        tp,
        "\nThe card draws {} W whatever its speed, so the energy per token falls as the throughput rises; the API bills the tokens, so its bill rises with it. A rented GPU's bill does not depend on the throughput at all.",
        amount(i.load_watts, 0)
    );
    write(out, "throughput.md", &tp)?;
    for m in &measured {
        let l = Ledger::new(Inputs {
            tokens_per_second: m.tokens_per_second,
            ..i
        })?;
        months_figure(
            &mut figs,
            &format!("ledger.api_at.{}.months", m.key),
            l.break_even(Choice::Api, ALWAYS)?.months,
        );
    }
    let gpu10 = Ledger::new(Inputs {
        tokens_per_second: 10.0 * i.tokens_per_second,
        ..i
    })?;
    months_figure(
        &mut figs,
        "ledger.api_at.gpu10.months",
        gpu10.break_even(Choice::Api, ALWAYS)?.months,
    );
    crossing_figure(
        &mut figs,
        "ledger.api_at.gpu10.crossing",
        &gpu10.crossing(Choice::Api, life)?,
    );

    // 5. Energy: estimated, since nothing is measured here.
    let energy = EnergyPerToken::estimate(
        i.load_watts,
        i.tokens_per_second,
        "the benchmarks recorded no energy, and their machine exposes no RAPL counter",
    )?;
    figs.number("ledger.energy.j", energy.joules_per_token(), 2, "J");
    figs.number(
        "ledger.energy.usd_per_m",
        energy.kwh_per_million() * i.electricity,
        3,
        "USD",
    );
    let api_per_m = i.input_per_output * i.api_input + i.api_output;
    figs.number("ledger.api.usd_per_m", api_per_m, 3, "USD");
    figs.number(
        "ledger.energy.share_of_api",
        100.0 * energy.kwh_per_million() * i.electricity / api_per_m,
        0,
        "%",
    );

    // 6. The seed's claims, held against the numbers.
    let spot_hours: Vec<f64> = SEED_SPOT_BUDGET
        .iter()
        .map(|&b| crystal.hours_for_budget(Choice::Spot, b))
        .collect::<nindub::Result<_>>()?;
    let full_month_rate: Vec<f64> = SEED_SPOT_BUDGET
        .iter()
        .map(|b| b / nindub::ledger::HOURS_PER_MONTH)
        .collect();
    for (k, b) in SEED_SPOT_BUDGET.iter().enumerate() {
        let b = *b as u32;
        figs.number(
            &format!("ledger.seed.spot_{b}.hours"),
            spot_hours[k],
            1,
            "h",
        );
        figs.number(
            &format!("ledger.seed.spot_{b}.hourly"),
            full_month_rate[k],
            3,
            "USD",
        );
    }
    let own_24 = crystal.monthly(Choice::Own).at(ALWAYS);
    let own_2 = crystal.monthly(Choice::Own).at(BURST);
    figs.number("ledger.own.growth", own_24 / own_2, 1, "×");
    figs.number(
        "ledger.own.idle_monthly",
        crystal.monthly(Choice::Own).at(0.0),
        2,
        "USD",
    );
    let months_of = |l: &Ledger, c: Choice, h: f64| -> Result<String> {
        Ok(break_even_text(&l.break_even(c, h)?))
    };
    let crossing_of =
        |l: &Ledger, c: Choice| -> Result<String> { Ok(crossing_text(&l.crossing(c, life)?)) };
    let claims: Vec<(&str, String, &str)> = vec![
        (
            "Cloud GPUs rented by the hour are efficient for bursts.",
            format!(
                "At {} h a day a USD {} RTX 3050 pays for itself against a rented RTX 4090 in {} (on demand) and {} (spot); owning costs less over its life {} and {} respectively. An RTX 4090 bought for USD {} takes {} and {}, and wins {} and {}.",
                amount(BURST, 0),
                amount(i.hardware_price, 0),
                months_of(&crystal, Choice::OnDemand, BURST)?,
                months_of(&crystal, Choice::Spot, BURST)?,
                crossing_of(&crystal, Choice::OnDemand)?,
                crossing_of(&crystal, Choice::Spot)?,
                amount(flagship.inputs().hardware_price, 0),
                months_of(&flagship, Choice::OnDemand, BURST)?,
                months_of(&flagship, Choice::Spot, BURST)?,
                crossing_of(&flagship, Choice::OnDemand)?,
                crossing_of(&flagship, Choice::Spot)?,
            ),
            "It depends on the card's price. Right for a card that costs what the rented one does: renting an RTX 4090 for bursts beats buying one. A cheap card bought to serve a small model pays for itself within its life from a fraction of an hour a day, but the GPU it is held against is far stronger.",
        ),
        (
            "About USD 37–74 a month with spot use.",
            format!(
                "At USD {} an hour (spot) that buys {} to {} h a day; a whole month of it costs USD {}. USD 37–74 pays for every hour of a month only at USD {} to {} an hour.",
                amount(i.cloud_spot, 2),
                amount(spot_hours[0], 1),
                amount(spot_hours[1], 1),
                amount(crystal.monthly(Choice::Spot).at(ALWAYS), 2),
                amount(full_month_rate[0], 3),
                amount(full_month_rate[1], 3),
            ),
            "Right for part-time use, not for an always-on agent: the figure is a number of hours, not a price of availability.",
        ),
        (
            "For always-on agents the cost scales linearly to infinity.",
            format!(
                "On demand, USD {} a month at 24 h a day, every month: linear. Owning's cost is linear too: USD {} of electricity a month, and the card bought again every {} months.",
                amount(crystal.monthly(Choice::OnDemand).at(ALWAYS), 2),
                amount(own_24, 2),
                amount(life, 0),
            ),
            "Right that it is linear; so is owning. Both lines go to infinity; only their slopes differ.",
        ),
        (
            "After the purchase, the tax per token is zero (not counting electricity).",
            format!(
                "{}, USD {} of electricity per million tokens at the measured {} tokens/s, against USD {} per million at the default API ({} % of it).",
                energy.describe().split(':').next().unwrap_or_default(),
                amount(energy.kwh_per_million() * i.electricity, 3),
                amount(i.tokens_per_second, 1),
                amount(api_per_m, 3),
                amount(
                    100.0 * energy.kwh_per_million() * i.electricity / api_per_m,
                    0
                ),
            ),
            "Only by leaving electricity out. Counted, it is the whole marginal cost, and at a CPU's rate it is a large part of what a low-priced API charges. It shrinks as the throughput grows: the card draws the same watts for more tokens.",
        ),
        (
            "For 24/7 inference owning hardware is exponentially cheaper than renting API endpoints or cloud instances.",
            format!(
                "At 24 h a day owning pays for itself in {} against a GPU on demand, {} against spot, {} against the API. The ratio of what renting has cost to what owning has cost tends to {}× (on demand), {}× (spot) and {}× (API): a constant.",
                months_of(&crystal, Choice::OnDemand, ALWAYS)?,
                months_of(&crystal, Choice::Spot, ALWAYS)?,
                months_of(&crystal, Choice::Api, ALWAYS)?,
                amount(crystal.long_run_ratio(Choice::OnDemand, ALWAYS)?, 1),
                amount(crystal.long_run_ratio(Choice::Spot, ALWAYS)?, 1),
                amount(crystal.long_run_ratio(Choice::Api, ALWAYS)?, 2),
            ),
            "Right in direction against a rented GPU, wrong in kind: two linear costs cross once and their ratio levels off. Against a low-priced API the margin is small at a CPU's rate, and grows with the throughput.",
        ),
        (
            "Table 4: local hardware is CAPEX, its price behaviour flat (a one-time purchase).",
            format!(
                "Owning's monthly electricity is USD {} at {} h a day and USD {} at 24 h ({}×), and the card is bought again every {} months: its cumulative cost is a staircase with a slope.",
                amount(own_2, 2),
                amount(BURST, 0),
                amount(own_24, 2),
                amount(own_24 / own_2, 1),
                amount(life, 0),
            ),
            "Wrong: neither power nor depreciation is flat. What is true is that the purchase does not depend on use.",
        ),
        (
            "Table 4: the cloud is OPEX, its price behaviour linear or exponential with use.",
            format!(
                "A rented GPU costs its hourly price times the hours: USD {} per hour-a-day a month on demand. An API costs its price times the tokens.",
                amount(crystal.monthly(Choice::OnDemand).per_hour_a_day, 2),
            ),
            "Linear, never exponential (unless the price per hour itself rises).",
        ),
        (
            "Table 4: ideal for the cloud, one-off training of huge models; for local hardware, 24/7 agents, inference, development.",
            format!(
                "Against a rented GPU, owning wins over its life {} (RTX 3050) or {} (RTX 4090, on demand). Against the API: {} at the measured CPU rate, {} at ten times it. Training is not priced here.",
                crossing_of(&crystal, Choice::OnDemand)?,
                crossing_of(&flagship, Choice::OnDemand)?,
                crossing_of(&crystal, Choice::Api)?,
                crossing_text(&gpu10.crossing(Choice::Api, life)?),
            ),
            "Right for always-on inference held against a rented GPU. Utilisation decides, and against an API the throughput decides as much.",
        ),
    ];
    let mut cl = String::from("| The seed says | The ledger computes | Verdict |\n|---|---|---|\n");
    for (said, computed, verdict) in &claims {
        let _ = writeln!(cl, "| {said} | {computed} | {verdict} |");
    }
    write(out, "claims.md", &cl)?;

    // 7. What `nindub ledger` prints, by the function it prints with.
    let hours = DEFAULT_HOURS;
    write(
        out,
        "ledger.txt",
        &format!(
            "$ nindub ledger\n{}",
            report::render_unmeasured(&crystal, &hours)?
        ),
    )?;
    let flags: Vec<String> = RTX_4090
        .iter()
        .map(|(flag, v, _)| format!("{flag} {v}"))
        .collect();
    write(
        out,
        "ledger-4090.txt",
        &format!(
            "$ nindub ledger {}\n{}",
            flags.join(" "),
            report::render_unmeasured(&flagship, &hours)?
        ),
    )?;

    // 8. The plots.
    let hours_axis = || (1..=96).map(|k| k as f64 * 0.25);
    let cap = 240.0;
    let mut series = vec![];
    for (card, l) in [("RTX 3050", &crystal), ("RTX 4090", &flagship)] {
        for c in Choice::RENTALS {
            if card == "RTX 4090" && c == Choice::Api {
                continue;
            }
            series.push((
                format!("{card} vs {}", c.label()),
                points(hours_axis(), |h| {
                    l.break_even(c, h)
                        .ok()
                        .and_then(|b| b.months)
                        .filter(|&m| m <= cap && m > 0.0)
                }),
            ));
        }
    }
    LineChart {
        title: "Months until a card has paid for itself, by hours of use a day".into(),
        x_desc: "hours of use a day".into(),
        y_desc: "months to break even (log scale)".into(),
        series,
        reference: Some((format!("the card's life, {} months", amount(life, 0)), life)),
        log_x: false,
        log_y: true,
    }
    .draw()?
    .save(out.join("break-even.svg"))?;

    cumulative_chart(&crystal, ALWAYS)?
        .draw()?
        .save(out.join("cumulative-24h.svg"))?;
    cumulative_chart(&crystal, BURST)?
        .draw()?
        .save(out.join("cumulative-2h.svg"))?;

    let xs = months_axis(5.0 * life, 0.5, life);
    let mut series = vec![];
    for c in [Choice::OnDemand, Choice::Spot] {
        let limit = crystal.long_run_ratio(c, ALWAYS)?;
        series.push((
            format!("{} / own", c.label()),
            points(xs.iter().copied().filter(|&m| m >= 1.0), |m| {
                let own = crystal.cumulative(Choice::Own, ALWAYS, m).ok()?;
                Some(crystal.cumulative(c, ALWAYS, m).ok()? / own)
            }),
        ));
        series.push((
            format!("its limit, {}×", amount(limit, 1)),
            vec![(1.0, limit), (5.0 * life, limit)],
        ));
    }
    LineChart {
        title: "Renting's cost over owning's at 24 h a day: it levels off".into(),
        x_desc: "months".into(),
        y_desc: "cumulative cost ratio".into(),
        series,
        ..LineChart::default()
    }
    .draw()?
    .save(out.join("ratio.svg"))?;

    let tps_axis = || (0..=80).map(|k| 0.5 * 10f64.powf(k as f64 / 20.0));
    let mut series = vec![];
    for h in [ALWAYS, 8.0, BURST] {
        series.push((
            format!("at {} h a day", amount(h, 0)),
            points(tps_axis(), |tps| {
                Ledger::new(Inputs {
                    tokens_per_second: tps,
                    ..i
                })
                .ok()?
                .break_even(Choice::Api, h)
                .ok()?
                .months
                .filter(|&m| m <= cap && m > 0.0)
            }),
        ));
    }
    LineChart {
        title: "Owning against the API: months to break even, by throughput".into(),
        x_desc: "tokens per second (log scale)".into(),
        y_desc: "months (log scale)".into(),
        series,
        reference: Some((format!("the card's life, {} months", amount(life, 0)), life)),
        log_x: true,
        log_y: true,
    }
    .draw()?
    .save(out.join("api-throughput.svg"))?;

    figs.write(out)?;
    Ok(())
}
