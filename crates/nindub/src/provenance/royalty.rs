//! Royalties down a lineage: a payment to one model split among it and
//! its ancestors by the two policies Story's Royalty Module ships.
//!
//! - **LAP** (Liquid Absolute Percentage): every ancestor's percent
//!   applies to the revenue of every descendant. A model's royalty stack
//!   is the sum, over its parents, of the parent's stack plus the license
//!   percent that links them.
//! - **LRP** (Liquid Relative Percentage): a parent's percent applies
//!   only to its direct child's revenue; a grandparent is paid its percent
//!   of what the parent received.
//!
//! Money is an integer count of the currency's smallest unit (`u128`: an
//! 18-decimal token's wei), percents are `u32` of [`MAX_PERCENT`], every
//! share is rounded down as a contract's integer division would, and the
//! paid model keeps the rest: the shares sum to the payment exactly, and
//! no unit is created or lost.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// 100 %, in the units of `commercialRevShare` (protocol-core-v1's
/// `MAX_PERCENT`).
pub const MAX_PERCENT: u32 = 100_000_000;

/// A royalty policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Lap,
    Lrp,
}

impl Policy {
    pub fn from_name(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lap" => Ok(Policy::Lap),
            "lrp" => Ok(Policy::Lrp),
            _ => Err(Error::invalid(
                "royalty policy",
                format!("`{s}` (known: lap, lrp)"),
            )),
        }
    }
}

/// Models and their parent links, each with the license percent the child
/// owes that parent.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    pub names: Vec<String>,
    /// For each model, its parents and the percent owed to each.
    pub parents: Vec<Vec<(usize, u32)>>,
}

impl Lineage {
    /// Adds a model; returns its index.
    pub fn add(&mut self, name: &str) -> usize {
        self.names.push(name.to_string());
        self.parents.push(Vec::new());
        self.names.len() - 1
    }

    /// Links `child` to `parent` at `percent` (of [`MAX_PERCENT`]).
    pub fn link(&mut self, child: usize, parent: usize, percent: u32) -> Result<()> {
        let n = self.names.len();
        if child >= n || parent >= n || child == parent {
            return Err(Error::invalid(
                "royalty link",
                format!("{child} → {parent} among {n} models"),
            ));
        }
        if percent > MAX_PERCENT {
            return Err(Error::invalid(
                "royalty percent",
                format!("{percent} is over 100 % ({MAX_PERCENT})"),
            ));
        }
        self.parents[child].push((parent, percent));
        Ok(())
    }

    /// The ancestors of `node`, nearest first, each once; refuses a cycle.
    fn ancestors_in_order(&self, node: usize) -> Result<Vec<usize>> {
        // Depth-first post-order over parents gives ancestors after their
        // descendants once reversed.
        fn visit(
            l: &Lineage,
            n: usize,
            state: &mut BTreeMap<usize, bool>,
            out: &mut Vec<usize>,
        ) -> Result<()> {
            match state.get(&n) {
                Some(true) => return Ok(()),
                Some(false) => {
                    return Err(Error::invalid(
                        "lineage",
                        format!("`{}` is its own ancestor", l.names[n]),
                    ));
                }
                None => {}
            }
            state.insert(n, false);
            for &(p, _) in &l.parents[n] {
                visit(l, p, state, out)?;
            }
            state.insert(n, true);
            out.push(n);
            Ok(())
        }
        if node >= self.names.len() {
            return Err(Error::invalid("royalty payee", format!("no model {node}")));
        }
        let mut out = Vec::new();
        visit(self, node, &mut BTreeMap::new(), &mut out)?;
        out.reverse();
        Ok(out)
    }

    // ANCHOR: stack
    /// Each ancestor's absolute percent of `node`'s revenue under LAP
    /// (summed over every path), and under LRP the direct parents' only.
    pub fn percents(&self, node: usize, policy: Policy) -> Result<BTreeMap<usize, u64>> {
        let order = self.ancestors_in_order(node)?;
        let mut out = BTreeMap::new();
        match policy {
            Policy::Lrp => {
                for &(p, pct) in &self.parents[node] {
                    *out.entry(p).or_insert(0) += u64::from(pct);
                }
            }
            Policy::Lap => {
                // Memoised over the ancestors, farthest first.
                let mut memo: BTreeMap<usize, BTreeMap<usize, u64>> = BTreeMap::new();
                for &n in order.iter().rev() {
                    let mut mine = BTreeMap::new();
                    for &(p, pct) in &self.parents[n] {
                        *mine.entry(p).or_insert(0) += u64::from(pct);
                        for (&a, &x) in &memo[&p] {
                            *mine.entry(a).or_insert(0) += x;
                        }
                    }
                    memo.insert(n, mine);
                }
                out = memo.remove(&node).unwrap_or_default();
            }
        }
        let stack: u64 = out.values().sum();
        if stack > u64::from(MAX_PERCENT) {
            return Err(Error::invalid(
                "royalty stack",
                format!(
                    "`{}` owes {:.2} % to its ancestors, over 100 %",
                    self.names[node],
                    stack as f64 / f64::from(MAX_PERCENT) * 100.0
                ),
            ));
        }
        Ok(out)
    }
    // ANCHOR_END: stack

    // ANCHOR: split
    /// Splits `amount` paid to `payee`: what each model ends with. Every
    /// share rounds down; the payer-side model keeps the remainder, so the
    /// shares sum to `amount` exactly.
    pub fn split(&self, payee: usize, amount: u128, policy: Policy) -> Result<Vec<u128>> {
        let mut held = vec![0u128; self.names.len()];
        let share = |x: u128, pct: u64| -> Result<u128> {
            x.checked_mul(u128::from(pct))
                .map(|v| v / u128::from(MAX_PERCENT))
                .ok_or_else(|| Error::invalid("royalty amount", format!("{x} is too large")))
        };
        match policy {
            Policy::Lap => {
                let mut kept = amount;
                for (a, pct) in self.percents(payee, Policy::Lap)? {
                    let s = share(amount, pct)?;
                    held[a] += s;
                    kept -= s;
                }
                held[payee] += kept;
            }
            Policy::Lrp => {
                // Revenue flows up, a generation at a time: each model
                // pays its parents their percent of all it received.
                let order = self.ancestors_in_order(payee)?;
                self.percents(payee, Policy::Lrp)?;
                let mut received = vec![0u128; self.names.len()];
                received[payee] = amount;
                for n in order {
                    let x = received[n];
                    let mut kept = x;
                    let owed = self.percents(n, Policy::Lrp)?;
                    for (p, pct) in owed {
                        let s = share(x, pct)?;
                        received[p] += s;
                        kept -= s;
                    }
                    held[n] += kept;
                }
            }
        }
        Ok(held)
    }
    // ANCHOR_END: split
}

/// An amount of a token with `decimals` decimals, written exactly.
pub fn format_units(amount: u128, decimals: u32) -> String {
    let scale = 10u128.pow(decimals);
    let (whole, frac) = (amount / scale, amount % scale);
    if decimals == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = decimals as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{frac}")
    }
}

/// An exact decimal amount (`12.5`) in units of a token with `decimals`
/// decimals; more decimals than the token has, or anything else, is refused.
pub fn parse_units(text: &str, decimals: u32) -> Result<u128> {
    let bad = |why: &str| Error::invalid("amount", format!("`{text}`: {why}"));
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(bad("empty"));
    }
    if !whole
        .bytes()
        .chain(frac.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(bad("not a decimal number"));
    }
    if frac.len() > decimals as usize {
        return Err(bad(&format!("more than {decimals} decimals")));
    }
    let scale = 10u128
        .checked_pow(decimals)
        .ok_or_else(|| bad("too many decimals"))?;
    let w: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad("too large"))?
    };
    let f: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u128>().map_err(|_| bad("too large"))?
            * 10u128.pow(decimals - frac.len() as u32)
    };
    w.checked_mul(scale)
        .and_then(|w| w.checked_add(f))
        .ok_or_else(|| bad("too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PCT: u32 = MAX_PERCENT / 100;

    /// Story's documented chain: IPA 1 ← IPA 2 at 5 %, IPA 2 ← IPA 3 at 10 %.
    fn chain() -> Lineage {
        let mut l = Lineage::default();
        let (a, b, c) = (l.add("IPA 1"), l.add("IPA 2"), l.add("IPA 3"));
        l.link(b, a, 5 * PCT).unwrap();
        l.link(c, b, 10 * PCT).unwrap();
        l
    }

    #[test]
    fn the_documented_stacks_come_out() {
        let l = chain();
        let stack = |n, p| l.percents(n, p).unwrap().values().sum::<u64>();
        // LAP: stack(3) = stack(2) + 10 % = 15 %; LRP: 10 %.
        assert_eq!(stack(2, Policy::Lap), 15 * u64::from(PCT));
        assert_eq!(stack(2, Policy::Lrp), 10 * u64::from(PCT));
        // 100 tokens (18 decimals) paid to IPA 3.
        let amount = 100 * 10u128.pow(18);
        let lap = l.split(2, amount, Policy::Lap).unwrap();
        assert_eq!(lap, [5, 10, 85].map(|x| x * 10u128.pow(18)));
        let lrp = l.split(2, amount, Policy::Lrp).unwrap();
        // IPA 2 receives 10 and pays IPA 1 5 % of it.
        assert_eq!(
            lrp,
            [5 * 10u128.pow(17), 95 * 10u128.pow(17), 90 * 10u128.pow(18)]
        );
    }

    #[test]
    fn an_odd_amount_loses_no_unit_and_rounds_towards_the_payee() {
        let l = chain();
        for policy in [Policy::Lap, Policy::Lrp] {
            let s = l.split(2, 7, policy).unwrap();
            assert_eq!(s.iter().sum::<u128>(), 7);
        }
        // 15 % of 7 units is 1.05: the ancestors get floor shares.
        assert_eq!(l.split(2, 7, Policy::Lap).unwrap(), [0, 0, 7]);
        assert_eq!(l.split(2, 20, Policy::Lap).unwrap(), [1, 2, 17]);
    }

    #[test]
    fn cycles_stacks_over_100_percent_and_bad_links_are_refused() {
        let mut l = chain();
        l.link(0, 2, PCT).unwrap();
        assert!(
            l.split(2, 100, Policy::Lap)
                .unwrap_err()
                .to_string()
                .contains("own ancestor")
        );
        let mut m = Lineage::default();
        let (a, b, c) = (m.add("a"), m.add("b"), m.add("c"));
        m.link(b, a, 60 * PCT).unwrap();
        m.link(c, b, 50 * PCT).unwrap();
        assert!(
            m.split(c, 100, Policy::Lap)
                .unwrap_err()
                .to_string()
                .contains("over 100")
        );
        assert!(m.split(c, 100, Policy::Lrp).is_ok());
        assert!(m.link(a, a, 1).is_err());
        assert!(m.link(a, 9, 1).is_err());
        assert!(m.link(a, b, MAX_PERCENT + 1).is_err());
        assert!(
            m.split(c, u128::MAX, Policy::Lrp)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
        assert!(Policy::from_name("LAP").is_ok() && Policy::from_name("x").is_err());
    }

    #[test]
    fn units_are_written_exactly() {
        assert_eq!(format_units(1_500_000_000_000_000_000, 18), "1.5");
        assert_eq!(format_units(1, 18), "0.000000000000000001");
        assert_eq!(format_units(42, 0), "42");
        assert_eq!(format_units(10u128.pow(18), 18), "1");
        assert_eq!(parse_units("1.5", 18).unwrap(), 1_500_000_000_000_000_000);
        assert_eq!(parse_units("100", 0).unwrap(), 100);
        assert_eq!(parse_units(".25", 2).unwrap(), 25);
        for bad in [
            "",
            ".",
            "1.234",
            "-1",
            "1e3",
            "99999999999999999999999999999999999999999",
        ] {
            assert!(parse_units(bad, 2).is_err(), "{bad}");
        }
    }

    /// A random lineage: each model links to up to two earlier ones.
    fn lineage() -> impl Strategy<Value = (Lineage, usize)> {
        prop::collection::vec(
            (
                0usize..100,
                0usize..100,
                0u32..=(20 * PCT),
                0u32..=(20 * PCT),
            ),
            1..8,
        )
        .prop_map(|links| {
            let mut l = Lineage::default();
            l.add("root");
            for (i, (a, b, x, y)) in links.iter().enumerate() {
                let n = l.add(&format!("m{i}"));
                l.link(n, a % n, *x).unwrap();
                if b % n != a % n {
                    l.link(n, b % n, *y).unwrap();
                }
            }
            let last = l.names.len() - 1;
            (l, last)
        })
    }

    proptest! {
        #[test]
        fn every_split_sums_to_the_payment(
            (l, payee) in lineage(),
            amount in 0u128..(1u128 << 100),
        ) {
            for policy in [Policy::Lap, Policy::Lrp] {
                match l.split(payee, amount, policy) {
                    Ok(s) => prop_assert_eq!(s.iter().sum::<u128>(), amount),
                    Err(e) => prop_assert!(e.to_string().contains("over 100")),
                }
            }
        }

        #[test]
        fn lap_shares_are_the_exact_shares_rounded_down(
            (l, payee) in lineage(),
            amount in 0u128..(1u128 << 90),
        ) {
            if let (Ok(p), Ok(s)) = (l.percents(payee, Policy::Lap), l.split(payee, amount, Policy::Lap)) {
                for (a, pct) in p {
                    // Exact rational share is amount·pct / MAX_PERCENT.
                    let exact_num = amount * u128::from(pct);
                    let m = u128::from(MAX_PERCENT);
                    prop_assert!(s[a] * m <= exact_num && exact_num < (s[a] + 1) * m);
                }
            }
        }

        #[test]
        fn lrp_never_pays_an_ancestor_more_than_lap(
            (l, payee) in lineage(),
            amount in 0u128..(1u128 << 90),
        ) {
            if let (Ok(lap), Ok(lrp)) = (l.split(payee, amount, Policy::Lap), l.split(payee, amount, Policy::Lrp)) {
                for a in 0..l.names.len() {
                    if a != payee {
                        prop_assert!(lrp[a] <= lap[a] + 1, "{} {} {}", a, lrp[a], lap[a]);
                    }
                }
                prop_assert!(lrp[payee] >= lap[payee]);
            }
        }
    }
}
