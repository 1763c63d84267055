//! `TfIdfVectorizer` (opset 9): counts the n-grams of a pool (`pool_int64s` or
//! `pool_strings`, grouped by size through `ngram_counts`) in each row of a
//! `[C]` or `[B, C]` int32/int64/string input, with skip-grams up to
//! `max_skip_count`, and weights the counts (`TF`: counts, `IDF`: weight (or 1)
//! where present, `TFIDF`: weight × count). Output `[output_size]` or
//! `[B, output_size]` f32, `output_size = max(ngram_indexes) + 1`.
//!
//! Mirrors the ONNX reference / onnxruntime: the pool is loaded into a trie
//! (only the sizes in `[min_gram_length, max_gram_length]` get ids); unigrams
//! are counted once, longer n-grams once per skip distance.

use std::collections::HashMap;

use uniml_data::{bail, ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TfIdfMode {
    Tf,
    Idf,
    TfIdf,
}

/// The n-gram pool as given.
#[derive(Debug, Clone)]
pub enum NgramPool {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    /// 1-based n-gram id; 0 = not an n-gram (only a prefix).
    id: usize,
    children: HashMap<i64, usize>,
}

#[derive(Debug, Clone)]
pub struct TfIdfVectorizer {
    pub mode: TfIdfMode,
    pub min_gram_length: usize,
    pub max_gram_length: usize,
    pub max_skip_count: usize,
    pub ngram_counts: Vec<usize>,
    pub ngram_indexes: Vec<usize>,
    pub weights: Vec<f32>,
    pub pool: NgramPool,
    pub output_size: usize,
    trie: Vec<TrieNode>,
    /// String pool entries → trie keys.
    string_keys: HashMap<String, i64>,
}

impl TfIdfVectorizer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mode: TfIdfMode,
        min_gram_length: usize,
        max_gram_length: usize,
        max_skip_count: usize,
        ngram_counts: Vec<usize>,
        ngram_indexes: Vec<usize>,
        weights: Vec<f32>,
        pool: NgramPool,
    ) -> Result<Self> {
        ensure!(
            min_gram_length >= 1 && min_gram_length <= max_gram_length,
            "TfIdfVectorizer: need 1 <= min_gram_length <= max_gram_length, got {min_gram_length} and {max_gram_length}"
        );
        let mut string_keys = HashMap::new();
        let keys: Vec<i64> = match &pool {
            NgramPool::Ints(v) => v.clone(),
            NgramPool::Strings(v) => v
                .iter()
                .map(|s| {
                    let n = string_keys.len() as i64;
                    *string_keys.entry(s.clone()).or_insert(n)
                })
                .collect(),
        };
        let total = keys.len();
        let output_size = ngram_indexes.iter().max().map_or(0, |m| m + 1);
        if !weights.is_empty() {
            ensure!(
                weights.len() >= output_size,
                "TfIdfVectorizer: weights has {} values, output size is {output_size}",
                weights.len()
            );
        }
        let mut trie = vec![TrieNode::default()];
        let mut ngram_id = 1usize;
        for (i, &start) in ngram_counts.iter().enumerate() {
            let size = i + 1;
            let end = ngram_counts.get(i + 1).copied().unwrap_or(total);
            ensure!(
                start <= end && end <= total,
                "TfIdfVectorizer: ngram_counts {ngram_counts:?} do not fit a pool of {total} items"
            );
            let count = (end - start) / size;
            if size < min_gram_length || size > max_gram_length {
                ngram_id += count;
                continue;
            }
            for g in 0..count {
                let gram = &keys[start + g * size..start + (g + 1) * size];
                let mut node = 0usize;
                for &k in gram {
                    node = match trie[node].children.get(&k) {
                        Some(&c) => c,
                        None => {
                            trie.push(TrieNode::default());
                            let c = trie.len() - 1;
                            trie[node].children.insert(k, c);
                            c
                        }
                    };
                }
                ensure!(
                    ngram_id <= ngram_indexes.len(),
                    "TfIdfVectorizer: n-gram {ngram_id} has no entry in ngram_indexes (length {})",
                    ngram_indexes.len()
                );
                trie[node].id = ngram_id;
                ngram_id += 1;
            }
        }
        Ok(TfIdfVectorizer {
            mode,
            min_gram_length,
            max_gram_length,
            max_skip_count,
            ngram_counts,
            ngram_indexes,
            weights,
            pool,
            output_size,
            trie,
            string_keys,
        })
    }

    /// Adds the n-gram counts of one row of keys to `freq` (length `output_size`).
    fn count_row(&self, row: &[i64], freq: &mut [u32]) {
        let n = row.len();
        let mut start_size = self.min_gram_length;
        for skip in 1..=self.max_skip_count + 1 {
            for ngram_start in 0..n {
                if ngram_start + skip * (start_size - 1) >= n {
                    break;
                }
                let mut node = 0usize;
                let mut size = 1usize;
                let mut item = ngram_start;
                while size <= self.max_gram_length && item < n {
                    let Some(&next) = self.trie[node].children.get(&row[item]) else {
                        break;
                    };
                    let id = self.trie[next].id;
                    if size >= start_size && id != 0 {
                        freq[self.ngram_indexes[id - 1]] += 1;
                    }
                    node = next;
                    size += 1;
                    item += skip;
                }
            }
            // Unigrams are counted once: they do not depend on the skip distance.
            if start_size == 1 {
                start_size = 2;
                if start_size > self.max_gram_length {
                    break;
                }
            }
        }
    }
}

impl Op for TfIdfVectorizer {
    fn name(&self) -> &'static str {
        "TfIdfVectorizer"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let shape = inputs
            .first()
            .and_then(|f| f.shape.as_ref())
            .map(|s| match s.rank() {
                2 => SymbolicShape(vec![s.0[0].clone(), Dim::Known(self.output_size)]),
                _ => SymbolicShape(vec![Dim::Known(self.output_size)]),
            });
        Ok(vec![Fact {
            dtype: Some(DType::F32),
            shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "TfIdfVectorizer")?;
        let xs = x.shape();
        let (rows, cols, out_shape) = match xs.len() {
            0 => (1, 1, vec![self.output_size]),
            1 => (1, xs[0], vec![self.output_size]),
            2 => (xs[0], xs[1], vec![xs[0], self.output_size]),
            _ => bail!("TfIdfVectorizer input must be [C] or [B, C], got shape {xs:?}"),
        };
        let keys: Vec<i64> = match (&self.pool, x.dtype()) {
            (NgramPool::Ints(_), DType::I64 | DType::I32) => crate::ops::util::read_i64s(x)?,
            (NgramPool::Strings(_), DType::String) => x
                .as_strings()?
                .iter()
                .map(|s| self.string_keys.get(s).copied().unwrap_or(-1))
                .collect(),
            (NgramPool::Ints(_), d) => {
                bail!("TfIdfVectorizer with pool_int64s needs an int32/int64 input, got {d}")
            }
            (NgramPool::Strings(_), d) => {
                bail!("TfIdfVectorizer with pool_strings needs a string input, got {d}")
            }
        };
        let mut out = ctx.alloc(DType::F32, &out_shape)?;
        let o = out.as_slice_mut::<f32>()?;
        let mut freq = vec![0u32; if rows > 0 { self.output_size } else { 0 }];
        for r in 0..rows {
            freq.iter_mut().for_each(|f| *f = 0);
            if cols > 0 {
                self.count_row(&keys[r * cols..(r + 1) * cols], &mut freq);
            }
            let orow = &mut o[r * self.output_size..(r + 1) * self.output_size];
            for (i, (y, &f)) in orow.iter_mut().zip(&freq).enumerate() {
                let w = self.weights.get(i).copied();
                *y = match self.mode {
                    TfIdfMode::Tf => f as f32,
                    TfIdfMode::Idf => {
                        if f > 0 {
                            w.unwrap_or(1.0)
                        } else {
                            0.0
                        }
                    }
                    TfIdfMode::TfIdf => w.unwrap_or(1.0) * f as f32,
                };
            }
        }
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{run, strs};
    use super::*;

    fn op(min: usize, max: usize, skip: usize) -> TfIdfVectorizer {
        TfIdfVectorizer::new(
            TfIdfMode::Tf,
            min,
            max,
            skip,
            vec![0, 4],
            (0..7).collect(),
            vec![],
            NgramPool::Ints(vec![2, 3, 5, 4, 5, 6, 7, 8, 6, 7]),
        )
        .unwrap()
    }

    #[test]
    fn matches_onnx_examples() {
        let x = Tensor::from_slice(&[12], &[1i32, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8]).unwrap();
        let y = run(&op(2, 2, 0), &[Some(&x)]).unwrap();
        assert_eq!(
            y[0].as_slice::<f32>().unwrap(),
            &[0., 0., 0., 0., 1., 1., 1.]
        );
        let y = run(&op(2, 2, 5), &[Some(&x)]).unwrap();
        assert_eq!(
            y[0].as_slice::<f32>().unwrap(),
            &[0., 0., 0., 0., 1., 3., 1.]
        );
        let y = run(&op(1, 2, 5), &[Some(&x)]).unwrap();
        assert_eq!(
            y[0].as_slice::<f32>().unwrap(),
            &[0., 3., 1., 0., 1., 3., 1.]
        );
        let b = x.clone().reshaped(&[2, 6]).unwrap();
        let y = run(&op(1, 2, 5), &[Some(&b)]).unwrap();
        assert_eq!(y[0].shape(), &[2, 7]);
        assert_eq!(
            y[0].as_slice::<f32>().unwrap(),
            &[0., 3., 0., 0., 0., 0., 0., 0., 0., 1., 0., 1., 1., 1.]
        );
    }

    #[test]
    fn strings_idf_and_errors() {
        let o = TfIdfVectorizer::new(
            TfIdfMode::Idf,
            1,
            1,
            0,
            vec![0],
            vec![0, 1],
            vec![0.5, 2.0],
            NgramPool::Strings(vec!["a".into(), "b".into()]),
        )
        .unwrap();
        let x = strs(&[3], &["b", "c", "b"]);
        let y = run(&o, &[Some(&x)]).unwrap();
        assert_eq!(y[0].as_slice::<f32>().unwrap(), &[0.0, 2.0]);
        let ints = Tensor::from_slice(&[1], &[1i64]).unwrap();
        assert!(run(&o, &[Some(&ints)]).is_err());
        assert!(TfIdfVectorizer::new(
            TfIdfMode::Tf,
            1,
            1,
            0,
            vec![0],
            vec![],
            vec![],
            NgramPool::Ints(vec![1])
        )
        .is_err());
    }
}
