//! String ops: `StringNormalizer`, `StringConcat`, `StringSplit`,
//! `RegexFullMatch`, and the n-gram counter `TfIdfVectorizer`.

pub mod normalizer;
pub mod regex_match;
pub mod strings;
pub mod tfidf;

#[cfg(test)]
pub(crate) mod test_util {
    use uniml_data::{Result, Tensor};

    use crate::op::{BufferPool, EvalCtx, Op};
    use crate::parallel::Serial;

    pub fn run(op: &dyn Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let views: Vec<_> = inputs.iter().map(|t| t.map(|t| t.view())).collect();
        op.eval(&mut ctx, &views)
    }

    pub fn strs(shape: &[usize], v: &[&str]) -> Tensor {
        Tensor::from_strings(shape, v.iter().map(|s| s.to_string()).collect()).unwrap()
    }
}
