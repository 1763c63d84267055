//! `Einsum` (opsets 12+): general equations with ellipsis, implicit output,
//! repeated indices (diagonals) and size-1 broadcasting.
//!
//! Operands are contracted left to right. Each pairwise step sums away labels
//! no later operand or the output needs, gathers both sides into
//! `[batch, m, k]` / `[batch, k, n]` (zero-copy when already laid out so) and
//! runs one GEMM per batch (SGEMM for f32/f16/bf16). Repeated labels inside
//! one operand become a strided diagonal view, never a copy.

use std::borrow::Cow;

use uniml_data::{bail, DType, Result, Tensor, TensorView};
use uniml_linalg as la;

use crate::op::{EvalCtx, Fact, Op};
use crate::ops::nn::{f32_data, store_f32};
use crate::parallel::{par_chunks_mut, Parallelism};

/// A label: a letter's code point, or `ELLIPSIS + i` for the i-th broadcast dim
/// (counted from the right, so ellipses of different ranks align).
type Label = u32;
const ELLIPSIS: Label = 1 << 16;

/// The parsed equation.
#[derive(Clone, Debug, PartialEq)]
pub struct Equation {
    /// Per input: letters with `None` standing for the ellipsis.
    pub inputs: Vec<Vec<Option<char>>>,
    /// Explicit output (`None`: implicit).
    pub output: Option<Vec<Option<char>>>,
}

fn parse_term(s: &str) -> Result<Vec<Option<char>>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("...") {
            if out.contains(&None) {
                bail!("Einsum: term '{s}' has more than one ellipsis");
            }
            out.push(None);
            rest = &rest[3..];
        } else if c.is_ascii_alphabetic() {
            out.push(Some(c));
            rest = &rest[1..];
        } else if c.is_whitespace() {
            rest = &rest[1..];
        } else {
            bail!("Einsum: unexpected character '{c}' in term '{s}'");
        }
    }
    Ok(out)
}

impl Equation {
    pub fn parse(eq: &str) -> Result<Equation> {
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (eq, None),
        };
        let inputs = lhs.split(',').map(parse_term).collect::<Result<Vec<_>>>()?;
        let output = match rhs {
            Some(r) => {
                let o = parse_term(r)?;
                for (i, l) in o.iter().enumerate() {
                    if o[..i].contains(l) {
                        bail!("Einsum: output '{r}' repeats a label");
                    }
                }
                Some(o)
            }
            None => None,
        };
        Ok(Equation { inputs, output })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Einsum {
    pub equation: Equation,
}

/// A strided view of one operand (labels unique after diagonal merging).
#[derive(Clone, Debug)]
struct View {
    labels: Vec<Label>,
    dims: Vec<usize>,
    strides: Vec<usize>,
}

/// Labels of a term for an operand of `rank` dims (ellipsis expanded).
fn expand(term: &[Option<char>], rank: usize, what: &str) -> Result<Vec<Label>> {
    let letters = term.iter().filter(|l| l.is_some()).count();
    let has_ell = term.contains(&None);
    if (!has_ell && letters != rank) || (has_ell && letters > rank) {
        bail!(
            "Einsum: {what} has rank {rank} but its term has {letters} labels{}",
            if has_ell { " and an ellipsis" } else { "" }
        );
    }
    let ell = rank - letters;
    let mut out = Vec::with_capacity(rank);
    for l in term {
        match l {
            Some(c) => out.push(*c as Label),
            None => out.extend((0..ell).rev().map(|i| ELLIPSIS + i as Label)),
        }
    }
    Ok(out)
}

fn make_view(labels: &[Label], shape: &[usize]) -> Result<View> {
    let st = crate::ops::util::strides(shape);
    let mut v = View {
        labels: vec![],
        dims: vec![],
        strides: vec![],
    };
    for (i, &l) in labels.iter().enumerate() {
        match v.labels.iter().position(|&x| x == l) {
            Some(p) => {
                if v.dims[p] != shape[i] {
                    bail!(
                        "Einsum: repeated label has sizes {} and {}",
                        v.dims[p],
                        shape[i]
                    );
                }
                v.strides[p] += st[i];
            }
            None => {
                v.labels.push(l);
                v.dims.push(shape[i]);
                v.strides.push(st[i]);
            }
        }
    }
    Ok(v)
}

/// Element type of the computation.
trait Elem:
    Copy + Default + Send + Sync + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> + 'static
{
    /// `c[bt][m×n] = a[bt][m×k] · b[bt][k×n]` (all contiguous).
    #[allow(clippy::too_many_arguments)]
    fn batched_gemm(
        _par: &dyn Parallelism,
        bt: usize,
        m: usize,
        n: usize,
        k: usize,
        a: &[Self],
        b: &[Self],
        c: &mut [Self],
    ) {
        for t in 0..bt {
            let (a, b, c) = (
                &a[t * m * k..],
                &b[t * k * n..],
                &mut c[t * m * n..(t + 1) * m * n],
            );
            for i in 0..m {
                let row = &mut c[i * n..(i + 1) * n];
                for p in 0..k {
                    let av = a[i * k + p];
                    for (o, &bv) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                        *o = *o + av * bv;
                    }
                }
            }
        }
    }
}
impl Elem for f64 {}
impl Elem for i64 {}
impl Elem for u64 {}
impl Elem for f32 {
    #[allow(clippy::too_many_arguments)]
    fn batched_gemm(
        par: &dyn Parallelism,
        bt: usize,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
    ) {
        if m == 0 || n == 0 || k == 0 {
            return;
        }
        // One task per batch, or blocks of rows for a single big product.
        let rows = if bt > 1 || par.threads() <= 1 || m * n * k < (1 << 18) {
            m
        } else {
            m.div_ceil(par.threads() * 2).max(4)
        };
        let per_batch = m.div_ceil(rows);
        par_chunks_mut(par, &mut c[..bt * m * n], rows * n, &|task, cc| {
            let (t, i0) = (task / per_batch, (task % per_batch) * rows);
            let mr = cc.len() / n;
            let am = la::MatRef::new(&a[(t * m + i0) * k..(t * m + i0 + mr) * k], mr, k);
            let bm = la::MatRef::new(&b[t * k * n..(t + 1) * k * n], k, n);
            la::sgemm(mr, n, k, 1.0, am, bm, 0.0, cc, n);
        });
    }
}

/// Gathers `v` into a contiguous tensor with labels `out` (row-major), summing
/// over the view's labels not in `out`. Labels of `out` missing from the view
/// (broadcast) take `sizes` and stride 0. Borrows when no work is needed.
fn gather<'a, T: Elem>(
    data: &'a [T],
    v: &View,
    out: &[Label],
    size_of: &dyn Fn(Label) -> usize,
) -> Cow<'a, [T]> {
    let odims: Vec<usize> = out.iter().map(|&l| size_of(l)).collect();
    let ostr: Vec<usize> = out
        .iter()
        .map(|&l| match v.labels.iter().position(|&x| x == l) {
            Some(p) if v.dims[p] == size_of(l) => v.strides[p],
            _ => 0,
        })
        .collect();
    let sum: Vec<usize> = (0..v.labels.len())
        .filter(|&p| !out.contains(&v.labels[p]))
        .collect();
    let sdims: Vec<usize> = sum.iter().map(|&p| v.dims[p]).collect();
    let sstr: Vec<usize> = sum.iter().map(|&p| v.strides[p]).collect();
    let total: usize = odims.iter().product();
    // Zero-copy when the view already is `out` contiguous.
    if sum.is_empty()
        && odims
            .iter()
            .zip(&ostr)
            .zip(crate::ops::util::strides(&odims))
            .all(|((&d, &s), c)| d <= 1 || s == c)
        && data.len() >= total
    {
        return Cow::Borrowed(&data[..total]);
    }
    let stotal: usize = sdims.iter().product();
    let mut res = vec![T::default(); total];
    if total == 0 {
        return Cow::Owned(res);
    }
    let mut oidx = vec![0usize; odims.len()];
    let mut off = 0usize;
    let mut sidx = vec![0usize; sdims.len()];
    for r in res.iter_mut() {
        let mut acc = T::default();
        if stotal > 0 {
            sidx.fill(0);
            let mut soff = 0usize;
            for _ in 0..stotal {
                acc = acc + data[off + soff];
                for d in (0..sdims.len()).rev() {
                    sidx[d] += 1;
                    soff += sstr[d];
                    if sidx[d] < sdims[d] {
                        break;
                    }
                    soff -= sstr[d] * sdims[d];
                    sidx[d] = 0;
                }
            }
        }
        *r = acc;
        for d in (0..odims.len()).rev() {
            oidx[d] += 1;
            off += ostr[d];
            if oidx[d] < odims[d] {
                break;
            }
            off -= ostr[d] * odims[d];
            oidx[d] = 0;
        }
    }
    Cow::Owned(res)
}

fn contiguous(labels: Vec<Label>, size_of: &dyn Fn(Label) -> usize) -> View {
    let dims: Vec<usize> = labels.iter().map(|&l| size_of(l)).collect();
    let strides = crate::ops::util::strides(&dims);
    View {
        labels,
        dims,
        strides,
    }
}

/// Contracts `(a, av)` with `(b, bv)`, keeping the labels in `keep`.
fn contract<T: Elem>(
    par: &dyn Parallelism,
    a: &[T],
    av: &View,
    b: &[T],
    bv: &View,
    keep: &[Label],
    size_of: &dyn Fn(Label) -> usize,
) -> (Vec<T>, View) {
    let in_a = |l: &Label| av.labels.contains(l);
    let in_b = |l: &Label| bv.labels.contains(l);
    let batch: Vec<Label> = av
        .labels
        .iter()
        .copied()
        .filter(|l| in_b(l) && keep.contains(l))
        .collect();
    let kl: Vec<Label> = av
        .labels
        .iter()
        .copied()
        .filter(|l| in_b(l) && !keep.contains(l))
        .collect();
    let ml: Vec<Label> = av
        .labels
        .iter()
        .copied()
        .filter(|l| !in_b(l) && keep.contains(l))
        .collect();
    let nl: Vec<Label> = bv
        .labels
        .iter()
        .copied()
        .filter(|l| !in_a(l) && keep.contains(l))
        .collect();
    let prod = |ls: &[Label]| ls.iter().map(|&l| size_of(l)).product::<usize>();
    let (bt, m, n, k) = (prod(&batch), prod(&ml), prod(&nl), prod(&kl));
    let a_order: Vec<Label> = batch.iter().chain(&ml).chain(&kl).copied().collect();
    let b_order: Vec<Label> = batch.iter().chain(&kl).chain(&nl).copied().collect();
    let ag = gather(a, av, &a_order, size_of);
    let bg = gather(b, bv, &b_order, size_of);
    let mut c = vec![T::default(); bt * m * n];
    T::batched_gemm(par, bt, m, n, k, &ag, &bg, &mut c);
    let labels: Vec<Label> = batch.into_iter().chain(ml).chain(nl).collect();
    (c, contiguous(labels, size_of))
}

/// Runs the equation on `T` data; returns the output and its shape.
fn run<T: Elem>(
    par: &dyn Parallelism,
    eq: &Einsum,
    datas: &[Cow<[T]>],
    shapes: &[&[usize]],
) -> Result<(Vec<T>, Vec<usize>)> {
    let terms = &eq.equation.inputs;
    if terms.len() != datas.len() {
        bail!(
            "Einsum: equation has {} operands, got {} inputs",
            terms.len(),
            datas.len()
        );
    }
    let mut views = Vec::with_capacity(terms.len());
    let mut max_ell = 0usize;
    for (i, (term, shape)) in terms.iter().zip(shapes).enumerate() {
        let labels = expand(term, shape.len(), &format!("input {i}"))?;
        max_ell = max_ell.max(labels.iter().filter(|&&l| l >= ELLIPSIS).count());
        views.push(make_view(&labels, shape)?);
    }
    // Global label sizes (size 1 broadcasts).
    let mut sizes: Vec<(Label, usize)> = vec![];
    for v in &views {
        for (&l, &d) in v.labels.iter().zip(&v.dims) {
            match sizes.iter_mut().find(|(x, _)| *x == l) {
                Some((_, s)) => {
                    if *s == 1 {
                        *s = d;
                    } else if d != 1 && d != *s {
                        bail!("Einsum: label '{}' has sizes {s} and {d}", label_name(l));
                    }
                }
                None => sizes.push((l, d)),
            }
        }
    }
    let size_of = |l: Label| sizes.iter().find(|(x, _)| *x == l).map_or(1, |(_, s)| *s);
    let out_labels: Vec<Label> = match &eq.equation.output {
        Some(o) => {
            let expanded = expand(
                o,
                o.iter().filter(|l| l.is_some()).count()
                    + if o.contains(&None) { max_ell } else { 0 },
                "output",
            )?;
            for l in &expanded {
                if *l < ELLIPSIS && !sizes.iter().any(|(x, _)| x == l) {
                    bail!(
                        "Einsum: output label '{}' does not appear in the inputs",
                        label_name(*l)
                    );
                }
            }
            expanded
        }
        None => {
            let mut ell: Vec<Label> = (0..max_ell).rev().map(|i| ELLIPSIS + i as Label).collect();
            let mut letters: Vec<Label> = vec![];
            for v in terms.iter().flatten().flatten() {
                let l = *v as Label;
                let count = terms
                    .iter()
                    .flatten()
                    .flatten()
                    .filter(|&&c| c as Label == l)
                    .count();
                if count == 1 {
                    letters.push(l);
                }
            }
            letters.sort_unstable();
            ell.extend(letters);
            ell
        }
    };
    let out_shape: Vec<usize> = out_labels.iter().map(|&l| size_of(l)).collect();
    let mut cur: Cow<[T]> = Cow::Borrowed(&datas[0][..]);
    let mut cur_view = views[0].clone();
    for i in 1..views.len() {
        let mut keep: Vec<Label> = out_labels.clone();
        for v in &views[i + 1..] {
            keep.extend(v.labels.iter().copied());
        }
        let (c, cv) = contract(par, &cur, &cur_view, &datas[i], &views[i], &keep, &size_of);
        cur = Cow::Owned(c);
        cur_view = cv;
    }
    let res = gather(&cur, &cur_view, &out_labels, &size_of).into_owned();
    Ok((res, out_shape))
}

fn label_name(l: Label) -> String {
    if l >= ELLIPSIS {
        "...".into()
    } else {
        char::from_u32(l).map_or_else(|| "?".into(), |c| c.to_string())
    }
}

impl Op for Einsum {
    fn name(&self) -> &'static str {
        "Einsum"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        if inputs.len() != self.equation.inputs.len() {
            bail!(
                "Einsum: equation has {} operands, got {} inputs",
                self.equation.inputs.len(),
                inputs.len()
            );
        }
        Ok(vec![Fact::dtype_only(dtype)])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let mut views = Vec::with_capacity(inputs.len());
        for (i, x) in inputs.iter().enumerate() {
            let Some(x) = x else {
                bail!("Einsum: input {i} is missing")
            };
            views.push(x);
        }
        let Some(first) = views.first() else {
            bail!("Einsum needs at least one input")
        };
        let dt = first.dtype();
        if views.iter().any(|v| v.dtype() != dt) {
            bail!(
                "Einsum: all inputs must have the same dtype, got {:?}",
                views.iter().map(|v| v.dtype()).collect::<Vec<_>>()
            );
        }
        let shapes: Vec<&[usize]> = views.iter().map(|v| v.shape()).collect();
        match dt {
            DType::F32 | DType::F16 | DType::BF16 => {
                let datas = views
                    .iter()
                    .map(|v| f32_data(v))
                    .collect::<Result<Vec<_>>>()?;
                let (res, shape) = run::<f32>(ctx.par, self, &datas, &shapes)?;
                let mut out = ctx.alloc(dt, &shape)?;
                store_f32(&res, &mut out)?;
                Ok(vec![out])
            }
            DType::F64 => {
                let datas = views
                    .iter()
                    .map(|v| v.as_slice::<f64>().map(Cow::Borrowed))
                    .collect::<Result<Vec<_>>>()?;
                let (res, shape) = run::<f64>(ctx.par, self, &datas, &shapes)?;
                Ok(vec![Tensor::from_vec(&shape, res)?])
            }
            DType::U64 => {
                let datas = views
                    .iter()
                    .map(|v| v.as_slice::<u64>().map(Cow::Borrowed))
                    .collect::<Result<Vec<_>>>()?;
                let (res, shape) = run::<u64>(ctx.par, self, &datas, &shapes)?;
                Ok(vec![Tensor::from_vec(&shape, res)?])
            }
            d if d.is_integer() => {
                let datas = views
                    .iter()
                    .map(|v| crate::ops::util::read_i64s(v).map(Cow::Owned))
                    .collect::<Result<Vec<_>>>();
                let datas = match datas {
                    Ok(d) => d,
                    Err(_) => views
                        .iter()
                        .map(|v| {
                            v.to_f64_vec()
                                .map(|x| Cow::Owned(x.into_iter().map(|f| f as i64).collect()))
                        })
                        .collect::<Result<Vec<_>>>()?,
                };
                let (res, shape) = run::<i64>(ctx.par, self, &datas, &shapes)?;
                let mut out = ctx.alloc(dt, &shape)?;
                store_ints(&res, &mut out)?;
                Ok(vec![out])
            }
            other => bail!("Einsum does not support {other} inputs"),
        }
    }
    crate::op_as_any!();
}

/// Stores i64 results into an integer tensor (wrapping).
fn store_ints(v: &[i64], out: &mut Tensor) -> Result<()> {
    macro_rules! st {
        ($t:ty) => {{
            for (o, &x) in out.as_slice_mut::<$t>()?.iter_mut().zip(v) {
                *o = x as $t;
            }
        }};
    }
    match out.dtype() {
        DType::I8 => st!(i8),
        DType::U8 => st!(u8),
        DType::I16 => st!(i16),
        DType::U16 => st!(u16),
        DType::I32 => st!(i32),
        DType::U32 => st!(u32),
        DType::I64 => st!(i64),
        other => bail!("Einsum: cannot store integer results as {other}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, rand_vec, run as run_op, t};

    fn es(eq: &str, ins: &[&Tensor]) -> Result<Tensor> {
        let op = Einsum {
            equation: Equation::parse(eq)?,
        };
        let opts: Vec<Option<&Tensor>> = ins.iter().map(|x| Some(*x)).collect();
        Ok(run_op(&op, &opts)?.remove(0))
    }

    #[test]
    fn matmul_batch_and_transpose() {
        let a = rand_vec(2 * 3 * 4, 1);
        let b = rand_vec(2 * 4 * 5, 2);
        let y = es("bij,bjk->bik", &[&t(&[2, 3, 4], &a), &t(&[2, 4, 5], &b)]).unwrap();
        assert_eq!(y.shape(), &[2, 3, 5]);
        let mut want = vec![0f32; 30];
        for bb in 0..2 {
            for i in 0..3 {
                for k in 0..5 {
                    want[(bb * 3 + i) * 5 + k] = (0..4)
                        .map(|j| a[(bb * 3 + i) * 4 + j] * b[(bb * 4 + j) * 5 + k])
                        .sum();
                }
            }
        }
        assert_close(y.as_slice::<f32>().unwrap(), &want, 1e-5);
        let y = es("ij->ji", &[&t(&[2, 3], &[1., 2., 3., 4., 5., 6.])]).unwrap();
        assert_eq!(y.as_slice::<f32>().unwrap(), &[1., 4., 2., 5., 3., 6.]);
        // Implicit output: sorted single labels.
        let y = es("ba", &[&t(&[2, 3], &[1., 2., 3., 4., 5., 6.])]).unwrap();
        assert_eq!(y.shape(), &[3, 2]);
    }

    #[test]
    fn big_single_product_split_over_threads() {
        let (m, k, n) = (64, 64, 65);
        let a = rand_vec(m * k, 3);
        let b = rand_vec(k * n, 4);
        let op = Einsum {
            equation: Equation::parse("ik,kj->ij").unwrap(),
        };
        let (ta, tb) = (t(&[m, k], &a), t(&[k, n], &b));
        let y = crate::ops::nn::test_util::run_with(
            &crate::ops::nn::test_util::FakePar,
            &op,
            &[Some(&ta), Some(&tb)],
        )
        .unwrap();
        let mut want = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        assert_close(y[0].as_slice::<f32>().unwrap(), &want, 1e-4);
    }

    #[test]
    fn diagonal_trace_sum_outer_and_ellipsis() {
        let m = t(&[3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
        assert_eq!(
            es("ii->i", &[&m]).unwrap().as_slice::<f32>().unwrap(),
            &[1., 5., 9.]
        );
        assert_eq!(es("ii", &[&m]).unwrap().as_slice::<f32>().unwrap(), &[15.]);
        assert_eq!(
            es("ij->", &[&m]).unwrap().as_slice::<f32>().unwrap(),
            &[45.]
        );
        assert_eq!(
            es("ij->i", &[&m]).unwrap().as_slice::<f32>().unwrap(),
            &[6., 15., 24.]
        );
        let v = t(&[2], &[1., 2.]);
        let w = t(&[3], &[1., 10., 100.]);
        assert_eq!(
            es("i,j->ij", &[&v, &w]).unwrap().as_slice::<f32>().unwrap(),
            &[1., 10., 100., 2., 20., 200.]
        );
        assert_eq!(
            es("i,i", &[&v, &v]).unwrap().as_slice::<f32>().unwrap(),
            &[5.]
        );
        // Ellipsis with broadcasting: [2,1,2] x [3,2] -> [2,3]
        let x = t(&[2, 1, 2], &[1., 2., 3., 4.]);
        let y = t(&[3, 2], &[1., 0., 0., 1., 1., 1.]);
        let r = es("...j,...j->...", &[&x, &y]).unwrap();
        assert_eq!(r.shape(), &[2, 3]);
        assert_eq!(r.as_slice::<f32>().unwrap(), &[1., 2., 3., 3., 4., 7.]);
        // Batch diagonal.
        let bd = es("...ii->...i", &[&t(&[1, 2, 2], &[1., 2., 3., 4.])]).unwrap();
        assert_eq!(bd.as_slice::<f32>().unwrap(), &[1., 4.]);
        // Three operands.
        let r = es(
            "i,ij,j->",
            &[&v, &t(&[2, 3], &[1., 1., 1., 1., 1., 1.]), &w],
        )
        .unwrap();
        assert_eq!(r.as_slice::<f32>().unwrap(), &[333.]);
    }

    #[test]
    fn integers_and_errors() {
        let a = Tensor::from_slice(&[2, 2], &[1i32, 2, 3, 4]).unwrap();
        let r = es("ij,jk->ik", &[&a, &a]).unwrap();
        assert_eq!(r.as_slice::<i32>().unwrap(), &[7, 10, 15, 22]);
        assert!(es("ij,jk->ik", &[&t(&[2, 3], &[0.; 6]), &t(&[2, 3], &[0.; 6])]).is_err());
        assert!(es("ij->ii", &[&t(&[2, 2], &[0.; 4])]).is_err());
        assert!(es("ijk->i", &[&t(&[2, 2], &[0.; 4])]).is_err());
        assert!(Equation::parse("i$->i").is_err());
    }
}
