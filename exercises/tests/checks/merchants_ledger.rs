use super::Lcg;
use exercises::archmage::merchants_ledger as ml;

/// Equal within a relative 1e-12 (NaN never passes).
fn near(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// The engine's answer: what `nindub ledger` prints.
fn reference(capex: f64, local: f64, cloud: f64) -> Option<f64> {
    nindub::ledger::break_even_months(capex, local, cloud)
}

pub fn break_even_months() {
    // Worked examples: the chapter's defaults, always on.
    let m = ml::break_even_months(169.0, 8.18, 248.37);
    assert!(
        m.is_some_and(|m| near(m, 169.0 / 240.19)),
        "a USD 169 card at 8.18 a month against 248.37 a month of rent: {m:?}, expected about 0.7036 months"
    );
    let m = ml::break_even_months(169.0, 8.18, 13.25);
    assert!(
        m.is_some_and(|m| near(m, 169.0 / 5.07)),
        "against an API at 13.25 a month: {m:?}, expected about 33.33 months"
    );
    assert_eq!(
        ml::break_even_months(100.0, 10.0, 60.0),
        Some(2.0),
        "100 up front, saving 50 a month"
    );
    assert_eq!(
        ml::break_even_months(0.0, 1.0, 2.0),
        Some(0.0),
        "a free card with a saving breaks even at once"
    );

    // No saving: the lines never meet.
    assert_eq!(
        ml::break_even_months(100.0, 10.0, 10.0),
        None,
        "renting costs exactly the running cost: nothing is ever saved"
    );
    assert_eq!(
        ml::break_even_months(100.0, 20.0, 10.0),
        None,
        "renting is cheaper than the electricity alone"
    );
    assert_eq!(
        ml::break_even_months(0.0, 5.0, 5.0),
        None,
        "a free card that saves nothing: None, not 0 / 0"
    );

    // Inputs that are not costs.
    for (capex, local, cloud, why) in [
        (f64::NAN, 1.0, 2.0, "a NaN price"),
        (100.0, f64::NAN, 2.0, "a NaN running cost"),
        (100.0, 1.0, f64::NAN, "a NaN rent"),
        (100.0, 1.0, f64::INFINITY, "an infinite rent"),
        (100.0, f64::NEG_INFINITY, 1.0, "an infinite saving"),
        (f64::INFINITY, 1.0, 2.0, "an infinite price"),
        (-1.0, 1.0, 2.0, "a negative price"),
    ] {
        assert_eq!(
            ml::break_even_months(capex, local, cloud),
            None,
            "{why}: ({capex}, {local}, {cloud})"
        );
    }

    // Random cases: the engine's answer, and the definition itself.
    let mut rng = Lcg(0x1ed6e5);
    for _ in 0..2000 {
        let capex = (rng.unit() * 3000.0).floor();
        let local = rng.unit() * 100.0;
        let cloud = rng.unit() * 400.0;
        let got = ml::break_even_months(capex, local, cloud);
        let want = reference(capex, local, cloud);
        let agree = match (got, want) {
            (Some(a), Some(b)) => near(a, b),
            (a, b) => a == b,
        };
        assert!(
            agree,
            "({capex}, {local}, {cloud}): {got:?}, the engine says {want:?}"
        );
        if let Some(m) = got {
            let own = capex + m * local;
            let rent = m * cloud;
            assert!(
                (own - rent).abs() <= 1e-9 * own.max(1.0),
                "at {m} months owning has cost {own} and renting {rent}: the lines do not meet there"
            );
        }
    }
}
