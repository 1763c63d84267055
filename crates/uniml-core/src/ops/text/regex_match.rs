//! `RegexFullMatch` (opset 20): whether each string matches `pattern` in
//! full (bool output of the input's shape). Patterns use RE2 syntax through
//! `regex-lite`: no look-around or back-references, and, as in RE2, the Perl
//! classes `\w`, `\d`, `\s` and `\b` are ASCII. Unicode classes (`\p{L}`) are
//! not supported: such a pattern is an error naming it.

use regex_lite::Regex;
use uniml_data::{ensure, DType, Result, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone)]
pub struct RegexFullMatch {
    pub pattern: String,
    /// `pattern` anchored at both ends.
    regex: Regex,
}

impl RegexFullMatch {
    /// Compiles `pattern`; an invalid pattern is an error naming it.
    pub fn new(pattern: &str) -> Result<Self> {
        let regex = Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(|e| {
            uniml_data::Error::Shape(format!("invalid RegexFullMatch pattern {pattern:?}: {e}"))
        })?;
        Ok(RegexFullMatch {
            pattern: pattern.to_string(),
            regex,
        })
    }

    pub fn is_full_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

impl Op for RegexFullMatch {
    fn name(&self) -> &'static str {
        "RegexFullMatch"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let shape = inputs.first().and_then(|f| f.shape.clone());
        Ok(vec![Fact {
            dtype: Some(DType::Bool),
            shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "RegexFullMatch")?;
        ensure!(
            x.dtype() == DType::String,
            "RegexFullMatch input must be a string tensor, got {}",
            x.dtype()
        );
        let data = x.as_strings()?;
        let mut out = ctx.alloc(DType::Bool, x.shape())?;
        for (o, s) in out.as_bytes_mut().iter_mut().zip(data) {
            *o = self.is_full_match(s) as u8;
        }
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{run, strs};
    use super::*;

    #[test]
    fn full_matches_only() {
        let op = RegexFullMatch::new(r"www\.[\w.-]+\.\bcom\b").unwrap();
        let x = strs(
            &[3],
            &["www.google.com", "www.facebook.com", "www.bbc.co.uk"],
        );
        let y = run(&op, &[Some(&x)]).unwrap();
        assert_eq!(y[0].as_bools().unwrap(), &[true, true, false]);
        // alternation must not escape the anchors
        let op = RegexFullMatch::new("a|b").unwrap();
        assert!(!op.is_full_match("ab") && op.is_full_match("b"));
        assert!(RegexFullMatch::new("(").is_err());
        // RE2's \w is ASCII: "café" is not all word characters.
        let op = RegexFullMatch::new(r"\w+").unwrap();
        assert!(op.is_full_match("cafe_9") && !op.is_full_match("café"));
    }
}
