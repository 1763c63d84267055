//! `StringConcat` (opset 20): element-wise concatenation with numpy
//! broadcasting. `StringSplit` (opset 20): splits every string like Python's
//! `str.split` (by `delimiter`, or by runs of whitespace when it is empty or
//! absent, at most `maxsplit` times), padding the rows with empty strings to the
//! longest; outputs `substrings [..., max]` and the counts `length [...]` (int64).

use uniml_data::{ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{broadcast_fact, for_each_broadcast};

#[derive(Debug, Clone)]
pub struct StringConcat;

impl Op for StringConcat {
    fn name(&self) -> &'static str {
        "StringConcat"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![broadcast_fact(inputs, Some(DType::String))?])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let a = input(inputs, 0, "StringConcat")?;
        let b = input(inputs, 1, "StringConcat")?;
        let (sa, sb) = (a.as_strings()?, b.as_strings()?);
        let shape = uniml_data::broadcast_shapes(&[a.shape(), b.shape()])?;
        let mut out = ctx.alloc(DType::String, &shape)?;
        let o = out.as_strings_mut()?;
        for_each_broadcast(&shape, [a.shape(), b.shape()], |i, [ia, ib]| {
            let mut s = String::with_capacity(sa[ia].len() + sb[ib].len());
            s.push_str(&sa[ia]);
            s.push_str(&sb[ib]);
            o[i] = s;
        });
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[derive(Debug, Clone)]
pub struct StringSplit {
    /// `None` (or empty) splits on runs of whitespace.
    pub delimiter: Option<String>,
    /// Maximum number of splits; `None` is unlimited.
    pub maxsplit: Option<usize>,
}

/// Python's `str.isspace` for one char (Rust's `is_whitespace` plus the
/// information separators U+001C..U+001F).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python `s.split(delimiter, maxsplit)`.
pub fn py_split<'s>(s: &'s str, delimiter: Option<&str>, maxsplit: Option<usize>) -> Vec<&'s str> {
    match delimiter.filter(|d| !d.is_empty()) {
        Some(d) => match maxsplit {
            Some(m) => s.splitn(m.saturating_add(1), d).collect(),
            None => s.split(d).collect(),
        },
        None => {
            let mut parts = Vec::new();
            let mut rest = s.trim_start_matches(py_space);
            while !rest.is_empty() {
                if maxsplit.is_some_and(|m| parts.len() >= m) {
                    parts.push(rest);
                    break;
                }
                match rest.find(py_space) {
                    Some(end) => {
                        parts.push(&rest[..end]);
                        rest = rest[end..].trim_start_matches(py_space);
                    }
                    None => {
                        parts.push(rest);
                        break;
                    }
                }
            }
            parts
        }
    }
}

impl Op for StringSplit {
    fn name(&self) -> &'static str {
        "StringSplit"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let shape = inputs.first().and_then(|f| f.shape.as_ref());
        let subs = shape.map(|s| {
            let mut d = s.0.clone();
            d.push(Dim::Unknown);
            SymbolicShape(d)
        });
        Ok(vec![
            Fact {
                dtype: Some(DType::String),
                shape: subs,
                konst: None,
                is_sequence: false,
            },
            Fact {
                dtype: Some(DType::I64),
                shape: shape.cloned(),
                konst: None,
                is_sequence: false,
            },
        ])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "StringSplit")?;
        ensure!(
            x.dtype() == DType::String,
            "StringSplit input must be a string tensor, got {}",
            x.dtype()
        );
        let data = x.as_strings()?;
        let parts: Vec<Vec<&str>> = data
            .iter()
            .map(|s| py_split(s, self.delimiter.as_deref(), self.maxsplit))
            .collect();
        let width = parts.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut shape = x.shape().to_vec();
        let mut lengths = ctx.alloc(DType::I64, &shape)?;
        for (l, p) in lengths.as_slice_mut::<i64>()?.iter_mut().zip(&parts) {
            *l = p.len() as i64;
        }
        shape.push(width);
        let mut subs = ctx.alloc(DType::String, &shape)?;
        if width > 0 {
            for (row, p) in subs.as_strings_mut()?.chunks_exact_mut(width).zip(&parts) {
                for (o, s) in row.iter_mut().zip(p) {
                    *o = s.to_string();
                }
            }
        }
        Ok(vec![subs, lengths])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{run, strs};
    use super::*;

    #[test]
    fn concat_broadcasts() {
        let a = strs(&[3], &["cat", "dog", "的"]);
        let b = strs(&[1], &["s"]);
        let y = run(&StringConcat, &[Some(&a), Some(&b)]).unwrap();
        assert_eq!(y[0].as_strings().unwrap(), &["cats", "dogs", "的s"]);
        let n = Tensor::from_slice(&[1], &[1f32]).unwrap();
        assert!(run(&StringConcat, &[Some(&a), Some(&n)]).is_err());
        let c = strs(&[2], &["a", "b"]);
        assert!(run(&StringConcat, &[Some(&a), Some(&c)]).is_err());
    }

    #[test]
    fn split_like_python() {
        assert_eq!(
            py_split("o-n-n--x-", Some("-"), None),
            ["o", "n", "n", "", "x", ""]
        );
        assert_eq!(
            py_split("  hello   world ! ", None, None),
            ["hello", "world", "!"]
        );
        assert_eq!(py_split("  a b  c ", None, Some(1)), ["a", "b  c "]);
        assert_eq!(py_split("", Some("."), None), [""]);
        assert!(py_split("   ", None, None).is_empty());
        assert_eq!(py_split("a.b.c", Some("."), Some(1)), ["a", "b.c"]);
        let x = strs(
            &[2, 2],
            &["hello world", "def.net", "o n n x", "the quick brown fox"],
        );
        let op = StringSplit {
            delimiter: None,
            maxsplit: Some(2),
        };
        let y = run(&op, &[Some(&x)]).unwrap();
        assert_eq!(y[0].shape(), &[2, 2, 3]);
        assert_eq!(y[1].as_slice::<i64>().unwrap(), &[2, 1, 3, 3]);
        assert_eq!(
            &y[0].as_strings().unwrap()[9..],
            &["the", "quick", "brown fox"]
        );
        let empty = strs(&[0], &[]);
        let y = run(&op, &[Some(&empty)]).unwrap();
        assert_eq!(y[0].shape(), &[0, 0]);
    }
}
