//! A comparison such as `<= 250`: what an expectation holds a number to.

/// A comparison such as `<= 250`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub op: Op,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Bound {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (op, rest) = [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("<", Op::Lt), (">", Op::Gt)]
            .iter()
            .find_map(|(sym, op)| text.strip_prefix(sym).map(|rest| (*op, rest)))
            .ok_or_else(|| format!("`{text}` is not a comparison: write `< 5`, `<= 5`, `> 5`, `>= 5` or `== 5`"))?;
        let value = rest.trim().parse::<f64>().map_err(|_| format!("`{}` in `{text}` is not a number", rest.trim()))?;
        Ok(Self { op, value })
    }

    pub fn holds(&self, x: f64) -> bool {
        match self.op {
            Op::Lt => x < self.value,
            Op::Le => x <= self.value,
            Op::Gt => x > self.value,
            Op::Ge => x >= self.value,
            Op::Eq => (x - self.value).abs() < 1e-9,
        }
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
        };
        write!(f, "{op} {}", self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(Bound::parse("<= 5").unwrap().holds(5.0));
        assert!(!Bound::parse("< 5").unwrap().holds(5.0));
        assert!(Bound::parse(">=1e6").unwrap().holds(2e6));
        assert!(Bound::parse("== 3").unwrap().holds(3.0));
        assert!(Bound::parse("about 3").is_err());
        assert!(Bound::parse("> three").is_err());
    }
}
