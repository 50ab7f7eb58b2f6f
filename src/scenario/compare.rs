//! Expectations across a sweep's rounds (docs/scenarios.md: Sweeps): one round's figure against another round's, times a
//! factor (`result.req_per_s at replicas=8 >= 1.5x at replicas=1`), or against a number
//! (`result.latency_ms.p99 at replicas=16 < 100`).

use super::report::{short_number, SweepTable};
use super::sweep::plain;
use super::sweep_table::Spread;
use crate::guard::Bound;

/// A round, named by some of its parameters' values: `replicas=8` or `replicas=8,concurrency=50`.
type Selector = Vec<(String, String)>;

#[derive(Debug, Clone)]
pub struct Comparison {
    text: String,
    figure: String,
    left: Selector,
    op_text: String,
    right: Right,
}

#[derive(Debug, Clone)]
enum Right {
    Number(f64),
    Factor(f64, Selector),
}

const OPS: [&str; 5] = [">=", "<=", "==", "<", ">"];

impl Comparison {
    /// Parses one comparison; `params` are the sweep's parameter names, which the selectors must use.
    pub fn parse(text: &str, params: &[String]) -> Result<Self, String> {
        let form = "write it like `result.req_per_s at replicas=8 >= 1.5x at replicas=1` or \
                    `result.latency_ms.p99 at replicas=16 < 100`";
        let (at, op) = OPS
            .iter()
            .filter_map(|op| text.find(op).map(|at| (at, *op)))
            .min_by_key(|(at, op)| (*at, std::cmp::Reverse(op.len())))
            .ok_or_else(|| format!("`{text}` has no comparison (<, <=, >, >=, ==); {form}"))?;
        let (left, right) = (text[..at].trim(), text[at + op.len()..].trim());
        let (figure, selector) =
            left.split_once(" at ").ok_or_else(|| format!("`{left}` needs `FIGURE at PARAM=VALUE`; {form}"))?;
        let left = selector_of(selector, params)?;
        let right = match right.split_once(" at ") {
            Some((factor, selector)) => {
                let factor = factor.trim().trim_end_matches('x').trim();
                let factor =
                    factor.parse::<f64>().map_err(|_| format!("`{factor}` is not a factor such as 1.5x; {form}"))?;
                Right::Factor(factor, selector_of(selector, params)?)
            }
            None => Right::Number(right.parse::<f64>().map_err(|_| format!("`{right}` is not a number; {form}"))?),
        };
        Ok(Self { text: text.to_owned(), figure: figure.trim().to_owned(), left, op_text: op.to_owned(), right })
    }

    /// Every `PARAM=VALUE` it selects rounds by.
    pub fn selected(&self) -> impl Iterator<Item = (&String, &String)> {
        let right = match &self.right {
            Right::Factor(_, selector) => selector.as_slice(),
            Right::Number(_) => &[],
        };
        self.left.iter().chain(right).map(|(p, v)| (p, v))
    }

    /// Holds or not on the sweep's table: the detail either way.
    pub fn check(&self, table: &SweepTable) -> Result<String, String> {
        let x = self.value(table, &self.left)?;
        let (threshold, against) = match &self.right {
            Right::Number(n) => (*n, format!("{n}")),
            Right::Factor(factor, selector) => {
                let other = self.value(table, selector)?;
                (factor * other, format!("{factor}x {} = {}", short_number(other), short_number(factor * other)))
            }
        };
        let bound = Bound::parse(&format!("{} {threshold}", self.op_text))?;
        let said = format!("{}: {} {} {against}", self.text, short_number(x), self.op_text);
        if bound.holds(x) {
            Ok(said)
        } else {
            Err(format!("{said} does not hold"))
        }
    }

    /// The figure at the round `selector` names: over several runs of it, their median.
    fn value(&self, table: &SweepTable, selector: &Selector) -> Result<f64, String> {
        let point = table
            .points()
            .into_iter()
            .find(|point| {
                selector.iter().all(|(param, want)| {
                    let at = table.params.iter().position(|p| p == param);
                    at.and_then(|i| point.values.get(i)).is_some_and(|v| plain(v) == *want)
                })
            })
            .ok_or_else(|| format!("{}: no round with {}", self.text, show(selector)))?;
        point.figures.get(&self.figure).and_then(|runs| Spread::of(runs)).map(|s| s.median).ok_or_else(|| {
            format!(
                "{}: the round with {} recorded no `{}` (record it in an exec step)",
                self.text,
                show(selector),
                self.figure
            )
        })
    }
}

fn selector_of(text: &str, params: &[String]) -> Result<Selector, String> {
    text.split(',')
        .map(|pair| {
            let (param, value) = pair.split_once('=').ok_or_else(|| format!("`{}` is not PARAM=VALUE", pair.trim()))?;
            let param = param.trim();
            if !params.iter().any(|p| p == param) {
                return Err(format!("`{param}` is no parameter of this sweep ({})", params.join(", ")));
            }
            Ok((param.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

fn show(selector: &Selector) -> String {
    selector.iter().map(|(p, v)| format!("{p}={v}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::report::SweepRow;

    fn table() -> SweepTable {
        let row = |replicas: u64, rps: f64| SweepRow {
            values: vec![replicas.into()],
            figures: [("result.req_per_s".to_owned(), rps)].into(),
            notes: Default::default(),
        };
        SweepTable {
            name: "s".into(),
            params: vec!["replicas".into()],
            rows: vec![row(1, 100.0), row(8, 160.0)],
            chart: Default::default(),
            source: None,
        }
    }

    #[test]
    fn rounds_compare_with_a_factor_or_a_number() {
        let params = vec!["replicas".to_owned()];
        let holds = Comparison::parse("result.req_per_s at replicas=8 >= 1.5x at replicas=1", &params).unwrap();
        assert!(holds.check(&table()).unwrap().contains("160 >= 1.5x 100 = 150"));
        let fails = Comparison::parse("result.req_per_s at replicas=8 >= 2x at replicas=1", &params).unwrap();
        assert!(fails.check(&table()).unwrap_err().contains("does not hold"));
        let number = Comparison::parse("result.req_per_s at replicas=1 <= 100", &params).unwrap();
        assert!(number.check(&table()).is_ok());
        let missing = Comparison::parse("result.req_per_s at replicas=4 > 1", &params).unwrap();
        assert!(missing.check(&table()).unwrap_err().contains("no round with replicas=4"));
        assert!(Comparison::parse("result.x at cores=1 > 1", &params).unwrap_err().contains("no parameter"));
        assert!(Comparison::parse("result.x > 1", &params).unwrap_err().contains("FIGURE at"));
    }
}
