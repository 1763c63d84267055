//! `StringNormalizer` (opset 10): removes stop words from a `[C]` or `[1, C]`
//! string tensor (whole elements equal to a stop word, compared exactly or,
//! when not `is_case_sensitive`, after lower-casing both), then changes the
//! case of the kept strings (`LOWER`, `UPPER` or `NONE`). The output is `[C']`
//! or `[1, C']`; when every element is removed it holds one empty string.
//! Only the default locale is supported (Unicode case mapping).

use std::collections::HashSet;

use uniml_data::{ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseChange {
    None,
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
pub struct StringNormalizer {
    pub case_change: CaseChange,
    pub case_sensitive: bool,
    /// Stop words as given (lower-cased when not case-sensitive).
    pub stopwords: HashSet<String>,
}

impl StringNormalizer {
    pub fn new(case_change: CaseChange, case_sensitive: bool, stopwords: &[String]) -> Self {
        let stopwords = stopwords
            .iter()
            .map(|s| {
                if case_sensitive {
                    s.clone()
                } else {
                    s.to_lowercase()
                }
            })
            .collect();
        StringNormalizer {
            case_change,
            case_sensitive,
            stopwords,
        }
    }

    fn is_stopword(&self, s: &str) -> bool {
        if self.stopwords.is_empty() {
            return false;
        }
        if self.case_sensitive {
            self.stopwords.contains(s)
        } else {
            self.stopwords.contains(&s.to_lowercase())
        }
    }

    fn change_case(&self, s: &str) -> String {
        match self.case_change {
            CaseChange::None => s.to_string(),
            CaseChange::Lower => s.to_lowercase(),
            CaseChange::Upper => s.to_uppercase(),
        }
    }
}

impl Op for StringNormalizer {
    fn name(&self) -> &'static str {
        "StringNormalizer"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let shape = inputs.first().and_then(|f| f.shape.as_ref()).map(|s| {
            let mut d = s.0.clone();
            if let Some(last) = d.last_mut() {
                if !self.stopwords.is_empty() {
                    *last = Dim::Unknown;
                }
            }
            SymbolicShape(d)
        });
        Ok(vec![Fact {
            dtype: Some(DType::String),
            shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "StringNormalizer")?;
        let xs = x.shape();
        ensure!(
            xs.len() == 1 || (xs.len() == 2 && xs[0] == 1),
            "StringNormalizer input must be [C] or [1, C], got shape {xs:?}"
        );
        let data = x.as_strings()?;
        let mut kept: Vec<String> = data
            .iter()
            .filter(|s| !self.is_stopword(s))
            .map(|s| self.change_case(s))
            .collect();
        if kept.is_empty() {
            kept.push(String::new());
        }
        let shape: Vec<usize> = if xs.len() == 1 {
            vec![kept.len()]
        } else {
            vec![1, kept.len()]
        };
        let mut out = ctx.alloc(DType::String, &shape)?;
        for (o, s) in out.as_strings_mut()?.iter_mut().zip(kept) {
            *o = s;
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
    fn stopwords_and_case() {
        let x = strs(&[1, 4], &["Monday", "tuesday", "monday", "Wednesday"]);
        let op = StringNormalizer::new(CaseChange::Upper, false, &["monday".to_string()]);
        let y = run(&op, &[Some(&x)]).unwrap();
        assert_eq!(y[0].shape(), &[1, 2]);
        assert_eq!(y[0].as_strings().unwrap(), &["TUESDAY", "WEDNESDAY"]);
        let op = StringNormalizer::new(CaseChange::Lower, true, &["monday".to_string()]);
        let y = run(&op, &[Some(&x)]).unwrap();
        assert_eq!(
            y[0].as_strings().unwrap(),
            &["monday", "tuesday", "wednesday"]
        );
        let all = strs(&[2], &["monday", "monday"]);
        let y = run(&op, &[Some(&all)]).unwrap();
        assert_eq!(y[0].shape(), &[1]);
        assert_eq!(y[0].as_strings().unwrap(), &[""]);
        let bad = strs(&[2, 2], &["a", "b", "c", "d"]);
        assert!(run(&op, &[Some(&bad)]).is_err());
        let num = Tensor::from_slice(&[1], &[1f32]).unwrap();
        assert!(run(&op, &[Some(&num)]).is_err());
    }
}
