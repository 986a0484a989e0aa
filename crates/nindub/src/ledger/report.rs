//! The comparison as `nindub ledger` prints it (and the book shows it).

use std::fmt::Write as _;

use crate::error::Result;

use super::cost::{Choice, Crossing, Ledger};
use super::energy::EnergyPerToken;
use super::inputs::{SOURCES, TOKENS_PER_SECOND, hours_per_day};
use super::{DAYS_PER_MONTH, cost::BreakEven};

/// `value` with `decimals` places, thousands grouped: 8941.3 → "8,941.30".
pub fn amount(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "-".into()
        } else {
            "∞".into()
        };
    }
    let s = format!("{:.*}", decimals, value.abs());
    let (int, frac) = s
        .split_once('.')
        .map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    if value < 0.0 && out.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.insert(0, '-');
    }
    out
}

/// A break-even as a cell says it.
pub fn break_even_text(be: &BreakEven) -> String {
    match be.months {
        None => "never".into(),
        Some(m) if be.within_lifetime() => format!("{} months", amount(m, 1)),
        Some(m) => format!(
            "{} months (past its {}-month life)",
            amount(m, 1),
            amount(be.lifetime_months, 0)
        ),
    }
}

/// A crossing as a sentence ends it.
pub fn crossing_text(c: &Crossing) -> String {
    match c {
        Crossing::OwnAbove(h) => format!("from {} h a day up", amount(*h, 1)),
        Crossing::OwnBelow(h) => format!(
            "only below {} h a day (an hour of its use costs less than the electricity)",
            amount(*h, 1)
        ),
        Crossing::OwnAlways => "at every utilisation".into(),
        Crossing::RentAlways => "at no utilisation".into(),
    }
}

/// The hours of use a day `nindub ledger` compares at unless told.
pub const DEFAULT_HOURS: [f64; 2] = [24.0, 2.0];

/// The comparison when nothing is measured: the throughput as given (said
/// to be the measured default when it is), the energy per token estimated.
/// What `nindub ledger` prints without `--measure`.
pub fn render_unmeasured(ledger: &Ledger, hours: &[f64]) -> Result<String> {
    let i = ledger.inputs();
    let note = if i.tokens_per_second == TOKENS_PER_SECOND.value {
        "the default: measured on 2 CPU threads, not a GPU; --sources says where"
    } else {
        "as given"
    };
    let energy = EnergyPerToken::estimate(
        i.load_watts,
        i.tokens_per_second,
        "nothing was measured (--measure reads RAPL where the kernel exposes it)",
    )?;
    render(ledger, hours, &energy, note)
}

/// The comparison at each of `hours` (of use a day), with the energy per
/// token and what the throughput is (`throughput_note`).
pub fn render(
    ledger: &Ledger,
    hours: &[f64],
    energy: &EnergyPerToken,
    throughput_note: &str,
) -> Result<String> {
    let i = ledger.inputs();
    let life = i.lifetime_months;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "The Merchant's Ledger: owning against renting (USD; a month is {} days)",
        amount(DAYS_PER_MONTH, 2)
    );
    let _ = writeln!(
        w,
        "  own:  {} USD, bought again every {} months; {} W in use, {} W idle, on all day; electricity {} USD/kWh",
        amount(i.hardware_price, 2),
        amount(life, 0),
        amount(i.load_watts, 0),
        amount(i.idle_watts, 0),
        amount(i.electricity, 3)
    );
    let _ = writeln!(
        w,
        "  rent: a GPU at {} USD/h on demand, {} USD/h spot, billed while in use",
        amount(i.cloud_on_demand, 3),
        amount(i.cloud_spot, 3)
    );
    let _ = writeln!(
        w,
        "  API:  {} USD per million input tokens, {} per million output tokens; {} input tokens per output token",
        amount(i.api_input, 3),
        amount(i.api_output, 3),
        amount(i.input_per_output, 2)
    );
    let _ = writeln!(
        w,
        "  throughput: {} tokens/s ({throughput_note})",
        amount(i.tokens_per_second, 1)
    );
    for &h in hours {
        let h = hours_per_day(h)?;
        let _ = writeln!(
            w,
            "\nat {} h of use a day ({} million tokens a month):",
            amount(h, 1),
            amount(ledger.tokens_per_month(h) / 1e6, 1)
        );
        let _ = writeln!(
            w,
            "  {:<16} {:>9} {:>10} {:>16} {:>14}  owning pays back",
            "",
            "upfront",
            "a month",
            format!("after {} months", amount(life, 0)),
            "per M tokens"
        );
        for c in Choice::ALL {
            let pays = if c == Choice::Own {
                "-".to_string()
            } else {
                break_even_text(&ledger.break_even(c, h)?)
            };
            let _ = writeln!(
                w,
                "  {:<16} {:>9} {:>10} {:>16} {:>14}  {pays}",
                c.label(),
                amount(ledger.upfront(c), 2),
                amount(ledger.monthly(c).at(h), 2),
                amount(ledger.cumulative(c, h, life)?, 2),
                amount(ledger.per_million_tokens(c, h)?, 3),
            );
        }
    }
    let _ = writeln!(
        w,
        "\nowning costs less than renting over its {}-month life:",
        amount(life, 0)
    );
    for c in Choice::RENTALS {
        let _ = writeln!(
            w,
            "  against {:<16} {}",
            format!("{}:", c.label()),
            crossing_text(&ledger.crossing(c, life)?)
        );
    }
    let _ = writeln!(
        w,
        "renting costs this many times owning in the long run (the price spread over its life):"
    );
    for &h in hours {
        let ratios: Vec<String> = Choice::RENTALS
            .iter()
            .map(|&c| {
                Ok(format!(
                    "{} {}x",
                    c.label(),
                    amount(ledger.long_run_ratio(c, h)?, 2)
                ))
            })
            .collect::<Result<_>>()?;
        let _ = writeln!(w, "  at {} h a day: {}", amount(h, 1), ratios.join(", "));
    }
    let _ = writeln!(w, "energy: {}", energy.describe());
    let _ = writeln!(
        w,
        "  = {} kWh, {} USD of electricity per million tokens",
        amount(energy.kwh_per_million(), 3),
        amount(energy.kwh_per_million() * i.electricity, 4)
    );
    Ok(out)
}

/// Every default with its source (`nindub ledger --sources`).
pub fn sources() -> String {
    let mut out = String::new();
    for s in SOURCES {
        let value = if s.value.fract() == 0.0 {
            amount(s.value, 0)
        } else {
            format!("{}", s.value)
        };
        let unit = if s.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", s.unit)
        };
        let _ = writeln!(
            out,
            "{} = {value}{unit}\n  {}: {}",
            s.flag, s.name, s.source
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Inputs;

    #[test]
    fn amounts_are_grouped() {
        assert_eq!(amount(8941.318, 2), "8,941.32");
        assert_eq!(amount(0.5, 1), "0.5");
        assert_eq!(amount(-1234.0, 0), "-1,234");
        assert_eq!(amount(f64::INFINITY, 2), "∞");
        assert_eq!(amount(f64::NAN, 2), "-");
    }

    #[test]
    fn the_report_names_every_choice_and_says_estimated() {
        let l = Ledger::new(Inputs::default()).unwrap();
        let e = EnergyPerToken::estimate(70.0, 64.5, "RAPL is absent").unwrap();
        let text = render(&l, &[24.0, 2.0], &e, "test").unwrap();
        for c in Choice::ALL {
            assert!(text.contains(c.label()), "{text}");
        }
        assert!(text.contains("estimated"));
        assert!(text.contains("at 24.0 h of use a day"));
        assert!(text.contains("at 2.0 h of use a day"));
        assert!(render(&l, &[25.0], &e, "").is_err());
        assert!(sources().contains("--hardware-price = 169 USD"));
    }
}
