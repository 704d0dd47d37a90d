//! Algorithm chains in the PyNX operator notation.
//!
//! Syntax (case-insensitive, spaces ignored):
//! - `ALGO**N` runs `N` cycles of `ALGO` (`ER`, `HIO` or `RAAR`); a bare `ALGO` is one cycle.
//! - `Sup` is one shrink-wrap support update.
//! - `A*B` composes operators the PyNX way, **right to left**: `ER**200*RAAR**600` runs RAAR
//!   first; `Sup*RAAR**50` runs 50 RAAR cycles then updates the support.
//! - `(...)**N` repeats a group: `(Sup*RAAR**50)**12` is 600 RAAR cycles with a shrink-wrap
//!   every 50.
//! - `,` sequences steps **left to right**: `RAAR**600,ER**200`.
//!
//! Besides explicit `Sup`, a run can apply shrink-wrap automatically every `period` cycles of
//! HIO/RAAR (see [`super::ShrinkWrap::period`]); `bragg phase` does so by default.

use super::kernels::Algorithm;
use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Longest program accepted after expansion (operations, not cycles).
const MAX_OPS: usize = 100_000;
/// Most cycles accepted in one chain.
const MAX_CYCLES: usize = 10_000_000;
/// Deepest nesting of parentheses accepted.
pub const MAX_DEPTH: usize = 32;
/// Longest chain string accepted (characters).
pub const MAX_LEN: usize = 4096;

/// The chain string as quoted in messages (long strings shortened).
fn quoted(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_string()
    } else {
        let head: String = text.chars().take(60).collect();
        format!("{head}... ({} characters)", text.chars().count())
    }
}

/// One operation of an expanded chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `count` cycles of one update rule.
    Cycles {
        /// The real-space update.
        algorithm: Algorithm,
        /// Number of cycles.
        count: usize,
    },
    /// One shrink-wrap support update.
    ShrinkWrap,
}

/// A parsed algorithm chain: the operations in execution order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The operations, first to run first.
    pub ops: Vec<Op>,
}

impl Chain {
    /// Parses a chain string (see the module documentation for the syntax).
    pub fn parse(text: &str) -> Result<Self> {
        let len = text.chars().count();
        if len > MAX_LEN {
            return Err(Error::arg(
                "phasing chain",
                "algorithm",
                format!(
                    "`{}`: {len} characters, at most {MAX_LEN} allowed",
                    quoted(text)
                ),
            ));
        }
        let tokens = tokenize(text)?;
        let mut p = Parser {
            text,
            tokens,
            pos: 0,
            depth: 0,
        };
        let ops = p.sequence()?;
        if p.pos != p.tokens.len() {
            return Err(p.error(format!("unexpected `{}`", p.tokens[p.pos])));
        }
        if ops.is_empty() {
            return Err(Error::arg("phasing chain", "algorithm", "empty chain"));
        }
        let chain = Chain { ops: merge(ops) };
        if chain.total_cycles() == 0 {
            return Err(Error::arg(
                "phasing chain",
                "algorithm",
                format!("`{}` runs no ER/HIO/RAAR cycle", quoted(text)),
            ));
        }
        Ok(chain)
    }

    /// Total number of cycles.
    pub fn total_cycles(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Cycles { count, .. } => *count,
                Op::ShrinkWrap => 0,
            })
            .sum()
    }
}

impl FromStr for Chain {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Chain::parse(s)
    }
}

impl fmt::Display for Chain {
    /// Writes the chain back in the left-to-right `,` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, op) in self.ops.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            match op {
                Op::Cycles { algorithm, count } => write!(f, "{}**{}", algorithm.name(), count)?,
                Op::ShrinkWrap => write!(f, "Sup")?,
            }
        }
        Ok(())
    }
}

fn merge(ops: Vec<Op>) -> Vec<Op> {
    let mut out: Vec<Op> = Vec::with_capacity(ops.len());
    for op in ops {
        match (out.last_mut(), op) {
            (
                Some(Op::Cycles {
                    algorithm: a,
                    count,
                }),
                Op::Cycles {
                    algorithm: b,
                    count: c,
                },
            ) if *a == b => *count += c,
            (_, Op::Cycles { count: 0, .. }) => {}
            _ => out.push(op),
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Num(usize),
    Star,
    Pow,
    Comma,
    Open,
    Close,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Name(s) => write!(f, "{s}"),
            Tok::Num(n) => write!(f, "{n}"),
            Tok::Star => write!(f, "*"),
            Tok::Pow => write!(f, "**"),
            Tok::Comma => write!(f, ","),
            Tok::Open => write!(f, "("),
            Tok::Close => write!(f, ")"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '*' {
            if chars.get(i + 1) == Some(&'*') {
                out.push(Tok::Pow);
                i += 2;
            } else {
                out.push(Tok::Star);
                i += 1;
            }
        } else if c == ',' {
            out.push(Tok::Comma);
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s.parse::<usize>().map_err(|_| {
                Error::arg(
                    "phasing chain",
                    "algorithm",
                    format!("`{}`: number `{s}` is too large", quoted(text)),
                )
            })?;
            out.push(Tok::Num(n));
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
        } else {
            return Err(Error::arg(
                "phasing chain",
                "algorithm",
                format!(
                    "`{}`: unexpected character `{c}` at position {i}",
                    quoted(text)
                ),
            ));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Tok>,
    pos: usize,
    /// Current nesting depth of parentheses.
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, detail: String) -> Error {
        Error::arg(
            "phasing chain",
            "algorithm",
            format!(
                "`{}`: {detail} (expected e.g. `RAAR**600,ER**200` or `(Sup*HIO**50)**6,ER**100`)",
                quoted(self.text)
            ),
        )
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    /// sequence := product (',' product)*
    fn sequence(&mut self) -> Result<Vec<Op>> {
        let mut ops = self.product()?;
        while self.peek() == Some(&Tok::Comma) {
            self.pos += 1;
            ops.extend(self.product()?);
            self.check_len(&ops)?;
        }
        Ok(ops)
    }

    /// product := power ('*' power)*, executed right to left.
    fn product(&mut self) -> Result<Vec<Op>> {
        let mut factors = vec![self.power()?];
        while self.peek() == Some(&Tok::Star) {
            self.pos += 1;
            factors.push(self.power()?);
        }
        let ops: Vec<Op> = factors.into_iter().rev().flatten().collect();
        self.check_len(&ops)?;
        Ok(ops)
    }

    /// power := atom ('**' NUM)?
    fn power(&mut self) -> Result<Vec<Op>> {
        let atom = self.atom()?;
        if self.peek() != Some(&Tok::Pow) {
            return Ok(atom);
        }
        self.pos += 1;
        let n = match self.peek() {
            Some(Tok::Num(n)) => *n,
            Some(t) => return Err(self.error(format!("expected a count after `**`, found `{t}`"))),
            None => return Err(self.error("expected a count after `**`".into())),
        };
        self.pos += 1;
        if n == 0 {
            return Err(self.error("a count of 0".into()));
        }
        if let [Op::Cycles { algorithm, count }] = atom.as_slice() {
            let count = count.checked_mul(n).filter(|&c| c <= MAX_CYCLES);
            return match count {
                Some(count) => Ok(vec![Op::Cycles {
                    algorithm: *algorithm,
                    count,
                }]),
                None => Err(self.error(format!("more than {MAX_CYCLES} cycles"))),
            };
        }
        if atom.len().saturating_mul(n) > MAX_OPS {
            return Err(self.error(format!("expands to more than {MAX_OPS} operations")));
        }
        let mut out = Vec::with_capacity(atom.len() * n);
        for _ in 0..n {
            out.extend_from_slice(&atom);
        }
        Ok(out)
    }

    /// atom := NAME | '(' sequence ')'
    fn atom(&mut self) -> Result<Vec<Op>> {
        let tok = self.peek().cloned();
        match tok {
            Some(Tok::Name(name)) => {
                self.pos += 1;
                let op = match name.to_ascii_uppercase().as_str() {
                    "ER" => Op::Cycles {
                        algorithm: Algorithm::Er,
                        count: 1,
                    },
                    "HIO" => Op::Cycles {
                        algorithm: Algorithm::Hio,
                        count: 1,
                    },
                    "RAAR" => Op::Cycles {
                        algorithm: Algorithm::Raar,
                        count: 1,
                    },
                    "SUP" => Op::ShrinkWrap,
                    _ => {
                        return Err(self.error(format!(
                            "unknown operator `{name}` (known: ER, HIO, RAAR, Sup)"
                        )))
                    }
                };
                Ok(vec![op])
            }
            Some(Tok::Open) => {
                self.pos += 1;
                if self.depth >= MAX_DEPTH {
                    return Err(
                        self.error(format!("parentheses nested deeper than {MAX_DEPTH} levels"))
                    );
                }
                self.depth += 1;
                let ops = self.sequence();
                self.depth -= 1;
                let ops = ops?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(self.error("missing `)`".into()));
                }
                self.pos += 1;
                Ok(ops)
            }
            Some(t) => Err(self.error(format!("expected an operator, found `{t}`"))),
            None => Err(self.error("unexpected end".into())),
        }
    }

    fn check_len(&self, ops: &[Op]) -> Result<()> {
        if ops.len() > MAX_OPS {
            return Err(self.error(format!("expands to more than {MAX_OPS} operations")));
        }
        let cycles: usize = ops
            .iter()
            .map(|o| match o {
                Op::Cycles { count, .. } => *count,
                Op::ShrinkWrap => 0,
            })
            .fold(0usize, |a, b| a.saturating_add(b));
        if cycles > MAX_CYCLES {
            return Err(self.error(format!("more than {MAX_CYCLES} cycles")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cyc(algorithm: Algorithm, count: usize) -> Op {
        Op::Cycles { algorithm, count }
    }

    #[test]
    fn parses_sequences_products_and_groups() {
        let c = Chain::parse("RAAR**600, ER**200").unwrap();
        assert_eq!(
            c.ops,
            vec![cyc(Algorithm::Raar, 600), cyc(Algorithm::Er, 200)]
        );
        let c = Chain::parse("ER**200*RAAR**600").unwrap();
        assert_eq!(
            c.ops,
            vec![cyc(Algorithm::Raar, 600), cyc(Algorithm::Er, 200)]
        );
        let c = Chain::parse("(sup*hio**50)**3,ER").unwrap();
        assert_eq!(c.ops.len(), 7);
        assert_eq!(c.ops[0], cyc(Algorithm::Hio, 50));
        assert_eq!(c.ops[1], Op::ShrinkWrap);
        assert_eq!(c.ops[6], cyc(Algorithm::Er, 1));
        assert_eq!(c.total_cycles(), 151);
        assert_eq!(Chain::parse("HIO**300").unwrap().to_string(), "HIO**300");
        assert_eq!(Chain::parse("(RAAR**10)**5").unwrap().total_cycles(), 50);
    }

    #[test]
    fn rejects_bad_strings_with_a_clear_message() {
        for bad in [
            "",
            "RAAR**",
            "RAAR**0",
            "FOO**3",
            "RAAR**600,",
            "(ER**3",
            "ER**3)",
            "ER**-1",
            "Sup",
            "ER;HIO",
            "RAAR**99999999999999999999999",
            "(ER**1000)**100000",
        ] {
            let err = Chain::parse(bad).expect_err(bad).to_string();
            assert!(err.contains("algorithm"), "{bad}: {err}");
        }
        let err = Chain::parse("FOO**3").unwrap_err().to_string();
        assert!(err.contains("unknown operator `FOO`"), "{err}");
        let deep = format!("{}ER**1{}", "(".repeat(1000), ")".repeat(1000));
        let err = Chain::parse(&deep).unwrap_err().to_string();
        assert!(err.contains("nested deeper than 32"), "{err}");
        assert!(err.len() < 400, "{err}");
        let ok = format!("{}ER**1{}", "(".repeat(32), ")".repeat(32));
        assert_eq!(Chain::parse(&ok).unwrap().total_cycles(), 1);
        let long = "ER,".repeat(3000) + "ER";
        let err = Chain::parse(&long).unwrap_err().to_string();
        assert!(err.contains("at most 4096"), "{err}");
    }
}
