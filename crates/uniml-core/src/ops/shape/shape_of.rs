//! `Shape` (with `start`/`end`, opset 15) and `Size`. When the input's
//! shape is fully known, the output fact carries the value as a constant, so
//! shape subgraphs fold away at load time.

use std::sync::Arc;

use uniml_data::{DType, Result, SymbolicShape, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};

/// `Shape`: the input's dims `start..end` (negative values count from the end, clamped).
#[derive(Debug, Clone, Default)]
pub struct Shape {
    pub start: i64,
    pub end: Option<i64>,
}

impl Shape {
    fn range(&self, rank: usize) -> (usize, usize) {
        let r = rank as i64;
        let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let s = fix(self.start);
        let e = self.end.map_or(rank, fix);
        (s, e.max(s))
    }
}

impl Op for Shape {
    fn name(&self) -> &'static str {
        "Shape"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(s) = inputs.first().and_then(|f| f.shape.as_ref()) else {
            return Ok(vec![Fact::dtype_only(Some(DType::I64))]);
        };
        let (a, b) = self.range(s.rank());
        let dims = &s.0[a..b];
        if let Some(known) = dims
            .iter()
            .map(|d| d.known().map(|v| v as i64))
            .collect::<Option<Vec<i64>>>()
        {
            return Ok(vec![Fact::constant(Arc::new(Tensor::from_slice(
                &[known.len()],
                &known,
            )?))]);
        }
        Ok(vec![Fact::new(DType::I64, SymbolicShape::known(&[b - a]))])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Shape")?;
        let (a, b) = self.range(x.shape().len());
        let mut out = ctx.alloc(DType::I64, &[b - a])?;
        for (o, &d) in out.as_slice_mut::<i64>()?.iter_mut().zip(&x.shape()[a..b]) {
            *o = d as i64;
        }
        Ok(vec![out])
    }
    crate::op_as_any!();
}

/// `Size`: the input's element count as an int64 scalar.
#[derive(Debug, Clone, Default)]
pub struct Size;

impl Op for Size {
    fn name(&self) -> &'static str {
        "Size"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        if let Some(c) = inputs
            .first()
            .and_then(|f| f.shape.as_ref())
            .and_then(|s| s.concrete())
        {
            let n: usize = c.iter().product();
            return Ok(vec![Fact::constant(Arc::new(Tensor::scalar(n as i64)))]);
        }
        Ok(vec![Fact::new(DType::I64, SymbolicShape::known(&[]))])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Size")?;
        let mut out = ctx.alloc(DType::I64, &[])?;
        out.as_slice_mut::<i64>()?[0] = x.len() as i64;
        Ok(vec![out])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use uniml_data::Dim;

    #[test]
    fn shape_ranges_clamp() {
        let s = Shape {
            start: -10,
            end: Some(100),
        };
        assert_eq!(s.range(3), (0, 3));
        assert_eq!(
            Shape {
                start: 2,
                end: Some(1)
            }
            .range(3),
            (2, 2)
        );
        assert_eq!(
            Shape {
                start: 1,
                end: Some(-1)
            }
            .range(4),
            (1, 3)
        );
    }

    #[test]
    fn shape_fact_is_constant_when_known() {
        let f = Fact::new(DType::F32, SymbolicShape::known(&[2, 3]));
        let out = Shape::default().output_facts(&[&f], 1).unwrap();
        assert_eq!(
            out[0].konst.as_ref().unwrap().as_slice::<i64>().unwrap(),
            &[2, 3]
        );
        let g = Fact::new(
            DType::F32,
            SymbolicShape(vec![Dim::Sym("b".into()), Dim::Known(3)]),
        );
        let out = Shape {
            start: 1,
            end: None,
        }
        .output_facts(&[&g], 1)
        .unwrap();
        assert_eq!(
            out[0].konst.as_ref().unwrap().as_slice::<i64>().unwrap(),
            &[3]
        );
        let out = Shape::default().output_facts(&[&g], 1).unwrap();
        assert!(out[0].konst.is_none());
        assert_eq!(out[0].shape, Some(SymbolicShape::known(&[2])));
    }
}
