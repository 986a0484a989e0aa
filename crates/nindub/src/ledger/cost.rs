//! The cost lines and where they cross.
//!
//! Owning is a purchase, repeated every lifetime, plus electricity every
//! month; renting (a cloud GPU on demand or spot, or an API by the token)
//! is a monthly cost only. Each monthly cost is affine in the hours of use
//! a day, `fixed + per_hour · h`, so every comparison reduces to two lines:
//! they cross once, at a month ([`break_even_months`]) or at a utilisation
//! ([`Ledger::crossing`]), and the ratio of their slopes is what the
//! cumulative costs' ratio tends to ([`Ledger::long_run_ratio`]).

use crate::error::{Error, Result};

use super::inputs::{self, Inputs};
use super::{DAYS_PER_MONTH, HOURS_PER_MONTH};

/// The ways to get tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Choice {
    /// Buy the hardware and pay its electricity.
    Own,
    /// Rent a cloud GPU by the hour, on demand.
    OnDemand,
    /// Rent it as spot (interruptible) capacity.
    Spot,
    /// Pay an API by the token.
    Api,
}

impl Choice {
    pub const ALL: [Choice; 4] = [Choice::Own, Choice::OnDemand, Choice::Spot, Choice::Api];
    /// What owning is held against.
    pub const RENTALS: [Choice; 3] = [Choice::OnDemand, Choice::Spot, Choice::Api];

    /// As a table names it.
    pub fn label(self) -> &'static str {
        match self {
            Choice::Own => "own (local)",
            Choice::OnDemand => "cloud on demand",
            Choice::Spot => "cloud spot",
            Choice::Api => "API",
        }
    }

    /// As a figure's or a file's name holds it.
    pub fn key(self) -> &'static str {
        match self {
            Choice::Own => "own",
            Choice::OnDemand => "on_demand",
            Choice::Spot => "spot",
            Choice::Api => "api",
        }
    }
}

/// A monthly cost in USD that grows with the hours of use a day:
/// `fixed + per_hour_a_day · h`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Monthly {
    pub fixed: f64,
    pub per_hour_a_day: f64,
}

impl Monthly {
    /// The monthly cost at `hours` of use a day.
    pub fn at(&self, hours: f64) -> f64 {
        self.fixed + self.per_hour_a_day * hours
    }
}

// ANCHOR: break_even_months
/// The month at which owning, `capex + m · local_per_month`, has cost as
/// much as renting, `m · cloud_per_month`: `capex / (cloud − local)`.
///
/// `None` when owning never catches up (the rent saves nothing a month, or
/// less than nothing) and for inputs that are not a cost (NaN, infinite, a
/// negative purchase).
pub fn break_even_months(capex: f64, local_per_month: f64, cloud_per_month: f64) -> Option<f64> {
    let saving = cloud_per_month - local_per_month;
    if !(capex.is_finite() && capex >= 0.0 && saving.is_finite() && saving > 0.0) {
        return None;
    }
    Some(capex / saving)
}
// ANCHOR_END: break_even_months

/// When owning has paid for itself against one rental.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BreakEven {
    /// Months after a purchase; `None`: never.
    pub months: Option<f64>,
    /// The hardware's lifetime, for comparison.
    pub lifetime_months: f64,
}

impl BreakEven {
    /// Whether each card pays for itself before it must be replaced.
    pub fn within_lifetime(&self) -> bool {
        self.months.is_some_and(|m| m <= self.lifetime_months)
    }
}

/// Where owning and renting cost the same over a horizon, as a function of
/// the hours of use a day (from 0 to 24).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Crossing {
    /// Owning costs less from this many hours a day up.
    OwnAbove(f64),
    /// Owning costs less up to this many hours a day: each hour of use
    /// costs more in electricity than the rental charges for it.
    OwnBelow(f64),
    /// Owning costs less at every utilisation.
    OwnAlways,
    /// Renting costs less at every utilisation.
    RentAlways,
}

/// The ledger over validated inputs.
#[derive(Debug, Clone, Copy)]
pub struct Ledger {
    inputs: Inputs,
}

impl Ledger {
    /// Refuses inputs that are not costs ([`Inputs::validate`]).
    pub fn new(inputs: Inputs) -> Result<Ledger> {
        inputs.validate()?;
        Ok(Ledger { inputs })
    }

    pub fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    /// Tokens generated in a month at `hours` of use a day.
    pub fn tokens_per_month(&self, hours: f64) -> f64 {
        self.inputs.tokens_per_second * 3600.0 * hours * DAYS_PER_MONTH
    }

    // ANCHOR: lines
    /// What a choice costs before its first month: the hardware, for owning.
    pub fn upfront(&self, choice: Choice) -> f64 {
        match choice {
            Choice::Own => self.inputs.hardware_price,
            _ => 0.0,
        }
    }

    /// What a choice costs every month, as a line in the hours of use a
    /// day.
    pub fn monthly(&self, choice: Choice) -> Monthly {
        let i = &self.inputs;
        let kwh = |watts: f64, hours_a_day: f64| watts / 1000.0 * hours_a_day * DAYS_PER_MONTH;
        match choice {
            // On all day: idle power 24 h, plus the difference while in use.
            Choice::Own => Monthly {
                fixed: kwh(i.idle_watts, 24.0) * i.electricity,
                per_hour_a_day: kwh(i.load_watts - i.idle_watts, 1.0) * i.electricity,
            },
            // Billed only while running.
            Choice::OnDemand => Monthly {
                fixed: 0.0,
                per_hour_a_day: i.cloud_on_demand * DAYS_PER_MONTH,
            },
            Choice::Spot => Monthly {
                fixed: 0.0,
                per_hour_a_day: i.cloud_spot * DAYS_PER_MONTH,
            },
            // Billed by the token: as many as the machine generates.
            Choice::Api => Monthly {
                fixed: 0.0,
                per_hour_a_day: self.tokens_per_month(1.0) / 1e6
                    * (i.input_per_output * i.api_input + i.api_output),
            },
        }
    }

    /// Purchases of the hardware by month `months`: one at the start, and
    /// another at the end of each lifetime.
    pub fn purchases(&self, months: f64) -> f64 {
        (months / self.inputs.lifetime_months).ceil().max(1.0)
    }

    /// What a choice has cost after `months` at `hours` of use a day.
    pub fn cumulative(&self, choice: Choice, hours: f64, months: f64) -> Result<f64> {
        let hours = inputs::hours_per_day(hours)?;
        let months = inputs::non_negative("months", months, "months")?;
        let bought = match choice {
            Choice::Own => self.upfront(choice) * self.purchases(months),
            _ => 0.0,
        };
        Ok(bought + months * self.monthly(choice).at(hours))
    }
    // ANCHOR_END: lines

    /// Owning's cost a month with the purchase spread over its lifetime.
    pub fn amortised_own(&self, hours: f64) -> f64 {
        self.inputs.hardware_price / self.inputs.lifetime_months
            + self.monthly(Choice::Own).at(hours)
    }

    fn rental(choice: Choice) -> Result<Choice> {
        if choice == Choice::Own {
            return Err(Error::invalid(
                "rental",
                "owning is compared with a rental (on demand, spot, API), not with itself",
            ));
        }
        Ok(choice)
    }

    // ANCHOR: break_even
    /// When a card has paid for itself against `rental`, at `hours` of use
    /// a day: its price over what it saves a month.
    pub fn break_even(&self, rental: Choice, hours: f64) -> Result<BreakEven> {
        let rental = Self::rental(rental)?;
        let hours = inputs::hours_per_day(hours)?;
        Ok(BreakEven {
            months: break_even_months(
                self.inputs.hardware_price,
                self.monthly(Choice::Own).at(hours),
                self.monthly(rental).at(hours),
            ),
            lifetime_months: self.inputs.lifetime_months,
        })
    }

    /// The utilisation at which owning and `rental` have cost the same
    /// after `months`: the difference of the two cumulative costs is
    /// affine in the hours a day, `a + b · h`, and crosses 0 once.
    pub fn crossing(&self, rental: Choice, months: f64) -> Result<Crossing> {
        let rental = Self::rental(rental)?;
        if !(months.is_finite() && months > 0.0) {
            return Err(Error::invalid(
                "months",
                format!("{months}: a horizon must be a finite number of months above 0"),
            ));
        }
        let own = self.monthly(Choice::Own);
        let rent = self.monthly(rental);
        let bought = self.inputs.hardware_price * self.purchases(months);
        let a = (rent.fixed - own.fixed) * months - bought;
        let b = (rent.per_hour_a_day - own.per_hour_a_day) * months;
        Ok(if b > 0.0 {
            match -a / b {
                h if h <= 0.0 => Crossing::OwnAlways,
                h if h > 24.0 => Crossing::RentAlways,
                h => Crossing::OwnAbove(h),
            }
        } else if b < 0.0 {
            match -a / b {
                h if h >= 24.0 => Crossing::OwnAlways,
                h if h < 0.0 => Crossing::RentAlways,
                h => Crossing::OwnBelow(h),
            }
        } else if a >= 0.0 {
            Crossing::OwnAlways
        } else {
            Crossing::RentAlways
        })
    }
    // ANCHOR_END: break_even

    // ANCHOR: ratio
    /// What renting costs over owning in the long run, at `hours` of use a
    /// day: the cumulative costs' ratio tends to the ratio of their slopes,
    /// the purchase spread over its lifetime. A constant, not a growth.
    pub fn long_run_ratio(&self, rental: Choice, hours: f64) -> Result<f64> {
        let rental = Self::rental(rental)?;
        let hours = inputs::hours_per_day(hours)?;
        Ok(self.monthly(rental).at(hours) / self.amortised_own(hours))
    }
    // ANCHOR_END: ratio

    /// A choice's cost per million generated tokens at `hours` of use a day
    /// (owning's with its purchase spread over its lifetime); infinite when
    /// nothing is generated. A rented GPU is assumed to generate at the same
    /// rate as the owned one.
    pub fn per_million_tokens(&self, choice: Choice, hours: f64) -> Result<f64> {
        let hours = inputs::hours_per_day(hours)?;
        let monthly = match choice {
            Choice::Own => self.amortised_own(hours),
            _ => self.monthly(choice).at(hours),
        };
        Ok(monthly / (self.tokens_per_month(hours) / 1e6))
    }

    /// The hours a day a monthly `budget` buys at a rental's hourly price
    /// (the API's: at its price for the hours of generation).
    pub fn hours_for_budget(&self, rental: Choice, budget: f64) -> Result<f64> {
        let rental = Self::rental(rental)?;
        let budget = inputs::non_negative("monthly budget", budget, "USD")?;
        Ok(budget / self.monthly(rental).per_hour_a_day)
    }

    /// Hours of use in a month at `hours` a day.
    pub fn hours_per_month(hours: f64) -> f64 {
        hours / 24.0 * HOURS_PER_MONTH
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn break_even_is_the_price_over_the_saving() {
        assert_eq!(break_even_months(100.0, 10.0, 60.0), Some(2.0));
        assert_eq!(break_even_months(0.0, 1.0, 2.0), Some(0.0));
        assert_eq!(break_even_months(100.0, 10.0, 10.0), None);
        assert_eq!(break_even_months(100.0, 20.0, 10.0), None);
        assert_eq!(break_even_months(f64::NAN, 1.0, 2.0), None);
        assert_eq!(break_even_months(100.0, f64::NAN, 2.0), None);
        assert_eq!(break_even_months(100.0, 1.0, f64::INFINITY), None);
        assert_eq!(break_even_months(-1.0, 1.0, 2.0), None);
    }

    #[test]
    fn the_monthly_lines_at_the_defaults() {
        let l = Ledger::new(Inputs::default()).unwrap();
        // 70 W all day for a month at 0.16 USD/kWh.
        let own = l.monthly(Choice::Own).at(24.0);
        assert!(near(own, 0.070 * 24.0 * DAYS_PER_MONTH * 0.16), "{own}");
        // Idle all day when unused.
        let idle = l.monthly(Choice::Own).at(0.0);
        assert!(near(idle, 0.010 * 24.0 * DAYS_PER_MONTH * 0.16), "{idle}");
        let od = l.monthly(Choice::OnDemand).at(24.0);
        assert!(near(od, 0.34 * HOURS_PER_MONTH), "{od}");
        // The API bills the tokens: the measured rate, all month.
        let rate = crate::ledger::inputs::TOKENS_PER_SECOND.value;
        let tokens = rate * 3600.0 * 24.0 * DAYS_PER_MONTH;
        let api = l.monthly(Choice::Api).at(24.0);
        assert!(near(api, tokens / 1e6 * (0.9375 * 0.03 + 0.05)), "{api}");
        // Owning's purchase repeats each lifetime.
        assert_eq!(l.purchases(0.0), 1.0);
        assert_eq!(l.purchases(36.0), 1.0);
        assert_eq!(l.purchases(36.5), 2.0);
        assert_eq!(l.purchases(72.0), 2.0);
    }

    #[test]
    fn owning_is_not_compared_with_itself_and_bad_hours_are_refused() {
        let l = Ledger::new(Inputs::default()).unwrap();
        assert!(l.break_even(Choice::Own, 24.0).is_err());
        assert!(l.crossing(Choice::Own, 36.0).is_err());
        assert!(l.break_even(Choice::Spot, 25.0).is_err());
        assert!(l.break_even(Choice::Spot, f64::NAN).is_err());
        assert!(l.cumulative(Choice::Spot, 2.0, -1.0).is_err());
        assert!(l.crossing(Choice::Spot, 0.0).is_err());
        assert!(l.crossing(Choice::Spot, f64::INFINITY).is_err());
        assert!(
            Ledger::new(Inputs {
                lifetime_months: 0.0,
                ..Inputs::default()
            })
            .is_err()
        );
    }

    #[test]
    fn a_rental_cheaper_per_hour_than_the_electricity_wins_at_high_use() {
        // The API's tokens cost less than the power that makes them.
        let l = Ledger::new(Inputs {
            hardware_price: 10.0,
            load_watts: 1000.0,
            idle_watts: 0.0,
            electricity: 1.0,
            ..Inputs::default()
        })
        .unwrap();
        match l.crossing(Choice::Api, 36.0).unwrap() {
            Crossing::RentAlways => {}
            other => panic!("{other:?}"),
        }
        let l = Ledger::new(Inputs {
            hardware_price: 0.0,
            load_watts: 1000.0,
            idle_watts: 0.0,
            electricity: 0.01,
            api_input: 0.0,
            api_output: 0.01,
            ..Inputs::default()
        })
        .unwrap();
        // Per hour a day: energy 1 kW · 30.4 h · 0.01 = 0.304; API at the
        // measured ~70 tokens/s · 3600 · 30.4 / 1e6 · 0.01 ≈ 0.08: owning wins only at low use,
        // and here, with nothing to buy, at every use up to its idle draw 0.
        match l.crossing(Choice::Api, 36.0).unwrap() {
            Crossing::OwnAlways | Crossing::OwnBelow(_) | Crossing::RentAlways => {}
            Crossing::OwnAbove(h) => panic!("owning cannot win above {h} h"),
        }
    }

    fn inputs() -> impl Strategy<Value = Inputs> {
        (
            0.0f64..5000.0,
            1.0f64..120.0,
            0.0f64..600.0,
            0.0f64..1.0,
            0.0f64..0.6,
            0.0f64..4.0,
            0.0f64..4.0,
            (0.0f64..1.0, 0.0f64..2.0, 0.1f64..200.0, 0.0f64..20.0),
        )
            .prop_map(
                |(price, life, load, idle_share, kwh, od, spot, (api_in, api_out, tps, ratio))| {
                    Inputs {
                        hardware_price: price,
                        lifetime_months: life,
                        load_watts: load,
                        idle_watts: load * idle_share,
                        electricity: kwh,
                        cloud_on_demand: od,
                        cloud_spot: spot,
                        api_input: api_in,
                        api_output: api_out,
                        tokens_per_second: tps,
                        input_per_output: ratio,
                    }
                },
            )
    }

    proptest! {
        /// The month found is where the two cumulative costs meet (within
        /// the first lifetime, before a second purchase), owning costs more
        /// before it and less after.
        #[test]
        fn the_break_even_month_is_where_the_lines_meet(
            i in inputs(), hours in 0.0f64..=24.0, which in 0usize..3,
        ) {
            let l = Ledger::new(i).unwrap();
            let rental = Choice::RENTALS[which];
            let be = l.break_even(rental, hours).unwrap();
            if let Some(m) = be.months.filter(|&m| m <= i.lifetime_months) {
                let own = l.cumulative(Choice::Own, hours, m).unwrap();
                let rent = l.cumulative(rental, hours, m).unwrap();
                prop_assert!(near(own, rent), "{own} vs {rent} at {m} months");
                if m > 1e-6 {
                    let before = m * 0.5;
                    prop_assert!(
                        l.cumulative(Choice::Own, hours, before).unwrap()
                            >= l.cumulative(rental, hours, before).unwrap()
                    );
                }
                let after = (m * 1.5).min(i.lifetime_months);
                prop_assert!(
                    l.cumulative(Choice::Own, hours, after).unwrap()
                        <= l.cumulative(rental, hours, after).unwrap() * (1.0 + 1e-9) + 1e-9
                );
            }
            if be.months.is_none() {
                // No saving a month: renting stays at or below owning.
                let own = l.monthly(Choice::Own).at(hours);
                let rent = l.monthly(rental).at(hours);
                prop_assert!(rent <= own || i.hardware_price.is_nan());
            }
        }

        /// The utilisation found is where the two cumulative costs meet
        /// after the horizon, and owning is cheaper on the side it says.
        #[test]
        fn the_crossing_utilisation_is_where_the_lines_meet(
            i in inputs(), months in 0.5f64..200.0, which in 0usize..3,
        ) {
            let l = Ledger::new(i).unwrap();
            let rental = Choice::RENTALS[which];
            let diff = |h: f64| {
                l.cumulative(rental, h, months).unwrap() - l.cumulative(Choice::Own, h, months).unwrap()
            };
            let scale = 1e-9 * (1.0 + l.cumulative(rental, 24.0, months).unwrap()
                + l.cumulative(Choice::Own, 24.0, months).unwrap());
            match l.crossing(rental, months).unwrap() {
                Crossing::OwnAbove(h) => {
                    prop_assert!((0.0..=24.0).contains(&h));
                    prop_assert!(diff(h).abs() <= scale * 10.0, "{} at {h}", diff(h));
                    prop_assert!(diff(24.0) >= -scale);
                    prop_assert!(diff(h / 2.0) <= scale);
                }
                Crossing::OwnBelow(h) => {
                    prop_assert!((0.0..=24.0).contains(&h));
                    prop_assert!(diff(h).abs() <= scale * 10.0, "{} at {h}", diff(h));
                    prop_assert!(diff(0.0) >= -scale);
                    prop_assert!(diff((h + 24.0) / 2.0) <= scale);
                }
                Crossing::OwnAlways => {
                    prop_assert!(diff(0.0) >= -scale && diff(24.0) >= -scale);
                }
                Crossing::RentAlways => {
                    prop_assert!(diff(0.0) <= scale && diff(24.0) <= scale);
                }
            }
        }

        /// The cumulative ratio tends to the long-run ratio: a thousand
        /// lifetimes on, it is within a purchase's thousandth of it.
        #[test]
        fn the_ratio_tends_to_a_constant(i in inputs(), hours in 1.0f64..=24.0) {
            let l = Ledger::new(i).unwrap();
            prop_assume!(l.amortised_own(hours) > 1e-6);
            let limit = l.long_run_ratio(Choice::OnDemand, hours).unwrap();
            let far = 1000.5 * i.lifetime_months;
            let ratio = l.cumulative(Choice::OnDemand, hours, far).unwrap()
                / l.cumulative(Choice::Own, hours, far).unwrap();
            prop_assert!((ratio - limit).abs() <= 2e-3 * limit + 1e-12, "{ratio} vs {limit}");
        }
    }
}
