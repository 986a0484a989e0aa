//! The ledger's inputs: every one a parameter, every default a published
//! figure (with where and when it was published) or a number this project
//! measured (with the machine it was measured on). A figure for which no
//! source was found says "assumed".

use crate::error::{Error, Result};

/// A default value and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sourced {
    /// What it is, as a sentence names it.
    pub name: &'static str,
    /// The `nindub ledger` flag that sets it.
    pub flag: &'static str,
    pub value: f64,
    pub unit: &'static str,
    /// The publication (and the date its price holds), the measurement
    /// (and its machine), or "assumed".
    pub source: &'static str,
}

/// The owned card: the seed's "modest RTX 3050", in the 6 GB desktop
/// version NVIDIA sells today (the 4 GB one is a laptop part).
pub const HARDWARE_PRICE: Sourced = Sourced {
    name: "hardware price",
    flag: "--hardware-price",
    value: 169.0,
    unit: "USD",
    source: "GeForce RTX 3050 6GB launch price, USD 169 as of February 2024 (maxmazo.com, citing NVIDIA and Ars Technica)",
};

pub const LIFETIME_MONTHS: Sourced = Sourced {
    name: "hardware lifetime",
    flag: "--lifetime-months",
    value: 36.0,
    unit: "months",
    source: "the short end of the three- to five-year lifecycle over which xither.com's guide \"GPU Compute Costs: On-Prem vs. Cloud vs. Spot Instances\" amortises GPUs (2024)",
};

pub const LOAD_WATTS: Sourced = Sourced {
    name: "power under load",
    flag: "--load-watts",
    value: 70.0,
    unit: "W",
    source: "GeForce RTX 3050 6GB total graphics power, 70 W (thinkcomputers.org, launch report, February 2024)",
};

pub const IDLE_WATTS: Sourced = Sourced {
    name: "power when idle",
    flag: "--idle-watts",
    value: 10.0,
    unit: "W",
    source: "assumed: no published idle figure for the RTX 3050 6GB was found",
};

pub const ELECTRICITY: Sourced = Sourced {
    name: "electricity price",
    flag: "--electricity",
    value: 0.16,
    unit: "USD/kWh",
    source: "U.S. average residential price, about 16 cents per kWh in 2023 (EIA analysis of 11 September 2024, reported by jepic-usa.org)",
};

pub const CLOUD_ON_DEMAND: Sourced = Sourced {
    name: "cloud GPU on demand",
    flag: "--cloud-on-demand",
    value: 0.34,
    unit: "USD/h",
    source: "RunPod RTX 4090 on demand, USD 0.34 an hour as of March 2026, the cheapest GPU hour in deploybase.ai's \"Spot GPU Pricing\" table",
};

pub const CLOUD_SPOT: Sourced = Sourced {
    name: "cloud GPU spot",
    flag: "--cloud-spot",
    value: 0.22,
    unit: "USD/h",
    source: "RunPod RTX 4090 spot, USD 0.22 an hour as of March 2026 (deploybase.ai, \"Spot GPU Pricing\")",
};

pub const API_INPUT: Sourced = Sourced {
    name: "API price, input",
    flag: "--api-input",
    value: 0.03,
    unit: "USD per million tokens",
    source: "Llama 3.1 8B Instruct on DeepInfra, USD 0.03 per million input tokens (cloudprice.net's listing, undated; read December 2026)",
};

pub const API_OUTPUT: Sourced = Sourced {
    name: "API price, output",
    flag: "--api-output",
    value: 0.05,
    unit: "USD per million tokens",
    source: "Llama 3.1 8B Instruct on DeepInfra, USD 0.05 per million output tokens (cloudprice.net's listing, undated; read December 2026)",
};

/// The project's own measurement, rounded as its printout prints it
/// (`lab`'s generator checks it against the committed record).
pub const TOKENS_PER_SECOND: Sourced = Sourced {
    name: "throughput",
    flag: "--tokens-per-second",
    value: 179.3,
    unit: "tokens/s",
    source: "measured, not a GPU: `nindub serve` over HTTP with continuous batching, 8 clients' tokens over the wall time, SmolLM2-135M Q4_1 on 2 threads of the Codex's CPU build machine (generated/speaking-stone/bench/serve.json)",
};

pub const INPUT_PER_OUTPUT: Sourced = Sourced {
    name: "input tokens per output token",
    flag: "--input-per-output",
    value: 60.0 / 64.0,
    unit: "",
    source: "the Speaking Stone benchmark's requests: 60 prompt tokens for 64 generated (generated/speaking-stone/bench/serve.txt)",
};

/// Every default, in the order `nindub ledger --sources` lists them.
pub const SOURCES: [Sourced; 11] = [
    HARDWARE_PRICE,
    LIFETIME_MONTHS,
    LOAD_WATTS,
    IDLE_WATTS,
    ELECTRICITY,
    CLOUD_ON_DEMAND,
    CLOUD_SPOT,
    API_INPUT,
    API_OUTPUT,
    TOKENS_PER_SECOND,
    INPUT_PER_OUTPUT,
];

/// What the ledger is computed from. All money in US dollars.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Inputs {
    /// The owned hardware's purchase price.
    pub hardware_price: f64,
    /// Months until it must be bought again.
    pub lifetime_months: f64,
    /// Its power draw while generating, and while waiting (it stays on).
    pub load_watts: f64,
    pub idle_watts: f64,
    /// USD per kWh.
    pub electricity: f64,
    /// A rented GPU, per hour: on demand, and spot (interruptible).
    pub cloud_on_demand: f64,
    pub cloud_spot: f64,
    /// An API, per million tokens: the prompt's and the answer's.
    pub api_input: f64,
    pub api_output: f64,
    /// Tokens generated per second of use.
    pub tokens_per_second: f64,
    /// Prompt tokens the API bills per generated token.
    pub input_per_output: f64,
}

impl Default for Inputs {
    /// The sourced defaults ([`SOURCES`]).
    fn default() -> Self {
        Inputs {
            hardware_price: HARDWARE_PRICE.value,
            lifetime_months: LIFETIME_MONTHS.value,
            load_watts: LOAD_WATTS.value,
            idle_watts: IDLE_WATTS.value,
            electricity: ELECTRICITY.value,
            cloud_on_demand: CLOUD_ON_DEMAND.value,
            cloud_spot: CLOUD_SPOT.value,
            api_input: API_INPUT.value,
            api_output: API_OUTPUT.value,
            tokens_per_second: TOKENS_PER_SECOND.value,
            input_per_output: INPUT_PER_OUTPUT.value,
        }
    }
}

/// `value` is a finite number: the first check of every input.
fn finite(what: &'static str, value: f64, unit: &str) -> Result<f64> {
    if value.is_nan() {
        return Err(Error::invalid(what, "it is NaN, not a number"));
    }
    if value.is_infinite() {
        return Err(Error::invalid(
            what,
            format!("{value} {unit} is not a finite amount"),
        ));
    }
    Ok(value)
}

/// `value` is a finite number ≥ 0.
pub(crate) fn non_negative(what: &'static str, value: f64, unit: &str) -> Result<f64> {
    let v = finite(what, value, unit)?;
    if v < 0.0 {
        return Err(Error::invalid(
            what,
            format!("{v} {unit} is negative; it must be 0 or more"),
        ));
    }
    Ok(v)
}

/// `value` is a finite number > 0.
fn positive(what: &'static str, value: f64, unit: &str, why: &str) -> Result<f64> {
    let v = finite(what, value, unit)?;
    if v <= 0.0 {
        return Err(Error::invalid(
            what,
            format!("{v} {unit}: it must be more than 0 ({why})"),
        ));
    }
    Ok(v)
}

/// Hours of use a day: a finite number from 0 to 24.
pub fn hours_per_day(hours: f64) -> Result<f64> {
    let h = non_negative("hours of use a day", hours, "h")?;
    if h > 24.0 {
        return Err(Error::invalid(
            "hours of use a day",
            format!("{h} h is more than the 24 hours a day has"),
        ));
    }
    Ok(h)
}

impl Inputs {
    /// Refuses an input that cannot be a cost: NaN or infinite, a negative
    /// price or power, a lifetime or a throughput of zero, an idle draw
    /// above the draw under load.
    pub fn validate(&self) -> Result<()> {
        non_negative("hardware price", self.hardware_price, "USD")?;
        positive(
            "hardware lifetime",
            self.lifetime_months,
            "months",
            "hardware that lasts no time is bought again at every instant",
        )?;
        non_negative("power under load", self.load_watts, "W")?;
        non_negative("power when idle", self.idle_watts, "W")?;
        if self.idle_watts > self.load_watts {
            return Err(Error::invalid(
                "power when idle",
                format!(
                    "{} W is more than the {} W under load (are the two swapped?)",
                    self.idle_watts, self.load_watts
                ),
            ));
        }
        non_negative("electricity price", self.electricity, "USD/kWh")?;
        non_negative("cloud GPU on demand", self.cloud_on_demand, "USD/h")?;
        non_negative("cloud GPU spot", self.cloud_spot, "USD/h")?;
        non_negative("API price, input", self.api_input, "USD per million tokens")?;
        non_negative(
            "API price, output",
            self.api_output,
            "USD per million tokens",
        )?;
        positive(
            "throughput",
            self.tokens_per_second,
            "tokens/s",
            "a machine that generates nothing has no cost per token",
        )?;
        non_negative("input tokens per output token", self.input_per_output, "")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_sourced() {
        Inputs::default().validate().unwrap();
        for s in SOURCES {
            assert!(!s.source.is_empty(), "{} has no source", s.name);
            assert!(s.flag.starts_with("--"), "{}", s.flag);
        }
        // A price says when it held, or says it is assumed.
        for s in [
            HARDWARE_PRICE,
            ELECTRICITY,
            CLOUD_ON_DEMAND,
            CLOUD_SPOT,
            API_INPUT,
            API_OUTPUT,
        ] {
            assert!(
                s.source.contains("20") || s.source.starts_with("assumed"),
                "{}: {}",
                s.name,
                s.source
            );
        }
    }

    #[test]
    fn nonsense_is_refused_with_the_input_named() {
        let ok = Inputs::default();
        let cases: Vec<(Inputs, &str)> = vec![
            (
                Inputs {
                    hardware_price: -5.0,
                    ..ok
                },
                "hardware price",
            ),
            (
                Inputs {
                    lifetime_months: 0.0,
                    ..ok
                },
                "hardware lifetime",
            ),
            (
                Inputs {
                    electricity: f64::NAN,
                    ..ok
                },
                "electricity price",
            ),
            (
                Inputs {
                    cloud_spot: f64::INFINITY,
                    ..ok
                },
                "cloud GPU spot",
            ),
            (
                Inputs {
                    idle_watts: 100.0,
                    ..ok
                },
                "power when idle",
            ),
            (
                Inputs {
                    tokens_per_second: 0.0,
                    ..ok
                },
                "throughput",
            ),
            (
                Inputs {
                    api_output: -0.01,
                    ..ok
                },
                "API price, output",
            ),
        ];
        for (inputs, what) in cases {
            let err = inputs.validate().unwrap_err().to_string();
            assert!(err.contains(what), "{err} should name {what}");
        }
        assert!(hours_per_day(25.0).unwrap_err().to_string().contains("24"));
        assert!(hours_per_day(-1.0).is_err());
        assert!(hours_per_day(f64::NAN).is_err());
        assert_eq!(hours_per_day(24.0).unwrap(), 24.0);
        assert_eq!(hours_per_day(0.0).unwrap(), 0.0);
    }
}
