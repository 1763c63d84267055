//! Unit tests for the control family: bodies are built by hand from tiny
//! test-only ops, so these tests depend on no other op family.

use uniml_data::{DType, Result, SymbolicShape, Tensor, TensorView};

use super::*;
use crate::graph::{Graph, Subgraph};
use crate::op::{BufferPool, EvalCtx, Fact, Op, Value, ValueRef};
use crate::parallel::Serial;
use crate::plan::Plan;

/// Test op: `a + b` on i64 or f32 tensors of one shape (b may be a scalar).
#[derive(Debug)]
struct AddT;
impl Op for AddT {
    fn name(&self) -> &'static str {
        "AddT"
    }
    fn eval(&self, _ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let a = crate::op::input(inputs, 0, "AddT")?;
        let b = crate::op::input(inputs, 1, "AddT")?;
        let av = a.to_f64_vec()?;
        let bv = b.to_f64_vec()?;
        let v: Vec<f64> = av
            .iter()
            .enumerate()
            .map(|(i, x)| x + bv[if bv.len() == 1 { 0 } else { i }])
            .collect();
        Ok(vec![match a.dtype() {
            DType::I64 => {
                Tensor::from_vec(a.shape(), v.iter().map(|&x| x as i64).collect::<Vec<_>>())?
            }
            _ => Tensor::from_vec(a.shape(), v.iter().map(|&x| x as f32).collect::<Vec<_>>())?,
        }])
    }
    crate::op_as_any!();
}

/// Test op: `a < b` on i64 scalars, as a bool.
#[derive(Debug)]
struct LessT;
impl Op for LessT {
    fn name(&self) -> &'static str {
        "LessT"
    }
    fn eval(&self, _ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let a = crate::op::input(inputs, 0, "LessT")?.to_f64_vec()?;
        let b = crate::op::input(inputs, 1, "LessT")?.to_f64_vec()?;
        Ok(vec![Tensor::from_bools(&[], &[a[0] < b[0]])?])
    }
    crate::op_as_any!();
}

fn sub(graph: Graph, captures: Vec<usize>) -> Subgraph {
    let plan = Plan::new(&graph).unwrap();
    Subgraph {
        graph,
        plan,
        captures,
    }
}

fn run(op: &dyn Op, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
    let mut pool = BufferPool::new(u64::MAX);
    let mut ctx = EvalCtx::new(&Serial, &mut pool);
    op.eval_values(&mut ctx, inputs)
}

fn f32s(v: &Value) -> (Vec<usize>, Vec<f32>) {
    match v {
        Value::Tensor(t) => (t.shape().to_vec(), t.as_slice::<f32>().unwrap().to_vec()),
        other => panic!("expected a tensor, got {other:?}"),
    }
}

fn t32(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_slice(shape, v).unwrap()
}

fn tv(t: &Tensor) -> Option<ValueRef<'_>> {
    Some(ValueRef::Tensor(t.view()))
}

/// A branch with no formal inputs returning `captured + konst`.
fn add_branch(konst: f32, capture: usize) -> Subgraph {
    let mut g = Graph::default();
    let x = g.add_value("x", Fact::unknown());
    let c = g.add_const("c", Tensor::scalar(konst));
    let y = g.add_value("y", Fact::new(DType::F32, SymbolicShape::known(&[2])));
    g.add_node("add", Box::new(AddT), vec![Some(x), Some(c)], vec![y]);
    g.inputs = vec![x];
    g.outputs = vec![y];
    sub(g, vec![capture])
}

#[test]
fn if_picks_branch_and_feeds_captures() {
    // then: x + 1 (captures extra input 0), else: w + 10 (captures extra input 1).
    let op = If {
        then_branch: add_branch(1.0, 0),
        else_branch: add_branch(10.0, 1),
        n_formal: 1,
    };
    let x = t32(&[2], &[1.0, 2.0]);
    let w = t32(&[2], &[5.0, 6.0]);
    for (c, want) in [(true, vec![2.0, 3.0]), (false, vec![15.0, 16.0])] {
        let cond = Tensor::from_bools(&[], &[c]).unwrap();
        let out = run(&op, &[tv(&cond), tv(&x), tv(&w)]).unwrap();
        assert_eq!(f32s(&out[0]), (vec![2], want));
    }
    let facts = op.output_facts(&[], 1).unwrap();
    assert_eq!(facts[0].shape, Some(SymbolicShape::known(&[2])));
    // A condition with two elements is an error, not a panic.
    let bad = Tensor::from_bools(&[2], &[true, false]).unwrap();
    assert!(run(&op, &[tv(&bad), tv(&x), tv(&w)]).is_err());
    assert!(run(&op, &[tv(&bad)]).is_err());
}

/// Loop body: (i, cond, acc) -> (i + 1 < limit, acc + i, acc + i as scan output).
fn loop_body(with_limit: bool) -> Subgraph {
    let mut g = Graph::default();
    let i = g.add_value("i", Fact::new(DType::I64, SymbolicShape::known(&[])));
    let c = g.add_value("c", Fact::new(DType::Bool, SymbolicShape::known(&[])));
    let acc = g.add_value("acc", Fact::new(DType::I64, SymbolicShape::known(&[1])));
    let one = g.add_const("one", Tensor::scalar(1i64));
    let lim = g.add_const("lim", Tensor::scalar(3i64));
    let next = g.add_value("next", Fact::unknown());
    let cond_out = g.add_value("cond_out", Fact::unknown());
    let acc_out = g.add_value("acc_out", Fact::new(DType::I64, SymbolicShape::known(&[1])));
    g.add_node("n", Box::new(AddT), vec![Some(i), Some(one)], vec![next]);
    g.add_node(
        "lt",
        Box::new(LessT),
        vec![Some(next), Some(lim)],
        vec![cond_out],
    );
    g.add_node(
        "acc",
        Box::new(AddT),
        vec![Some(acc), Some(i)],
        vec![acc_out],
    );
    g.inputs = vec![i, c, acc];
    g.outputs = vec![if with_limit { cond_out } else { c }, acc_out, acc_out];
    sub(g, vec![])
}

fn i64s(v: &Value) -> (Vec<usize>, Vec<i64>) {
    match v {
        Value::Tensor(t) => (t.shape().to_vec(), t.as_slice::<i64>().unwrap().to_vec()),
        other => panic!("expected a tensor, got {other:?}"),
    }
}

#[test]
fn loop_trip_count_cond_and_scan_outputs() {
    let init = Tensor::from_slice(&[1], &[100i64]).unwrap();
    // M = 5, cond from the body stops after 3 iterations (i = 0, 1, 2).
    let op = Loop {
        body: loop_body(true),
        n_formal: 3,
    };
    let m = Tensor::scalar(5i64);
    let t = Tensor::from_bools(&[], &[true]).unwrap();
    let out = run(&op, &[tv(&m), tv(&t), tv(&init)]).unwrap();
    assert_eq!(i64s(&out[0]), (vec![1], vec![103]));
    assert_eq!(i64s(&out[1]), (vec![3, 1], vec![100, 101, 103]));
    // Only M (cond passes through): 4 iterations.
    let op = Loop {
        body: loop_body(false),
        n_formal: 3,
    };
    let m = Tensor::scalar(4i64);
    let out = run(&op, &[tv(&m), None, tv(&init)]).unwrap();
    assert_eq!(i64s(&out[0]), (vec![1], vec![106]));
    assert_eq!(i64s(&out[1]).0, vec![4, 1]);
    // Zero (and negative) trip counts run no iteration: initial values, empty scans.
    for m in [0i64, -3] {
        let m = Tensor::scalar(m);
        let out = run(&op, &[tv(&m), None, tv(&init)]).unwrap();
        assert_eq!(i64s(&out[0]), (vec![1], vec![100]));
        assert_eq!(i64s(&out[1]), (vec![0, 1], vec![]));
    }
    // cond false at entry: no iteration.
    let f = Tensor::from_bools(&[], &[false]).unwrap();
    let out = run(&op, &[None, tv(&f), tv(&init)]).unwrap();
    assert_eq!(i64s(&out[0]).1, vec![100]);
    // A non-integer M is an error.
    let bad = t32(&[], &[1.0]);
    assert!(run(&op, &[tv(&bad), None, tv(&init)]).is_err());
    let facts = op
        .output_facts(
            &[
                &Fact::unknown(),
                &Fact::unknown(),
                &Fact::new(DType::I64, SymbolicShape::known(&[1])),
            ],
            2,
        )
        .unwrap();
    assert_eq!(facts[0].dtype, Some(DType::I64));
    assert_eq!(facts[1].rank(), Some(2));
}

/// Scan body: (sum, x) -> (sum + x, sum + x).
fn scan_body() -> Subgraph {
    let mut g = Graph::default();
    let s = g.add_value("s", Fact::new(DType::F32, SymbolicShape::known(&[2])));
    let x = g.add_value("x", Fact::new(DType::F32, SymbolicShape::known(&[2])));
    let y = g.add_value("y", Fact::new(DType::F32, SymbolicShape::known(&[2])));
    g.add_node("add", Box::new(AddT), vec![Some(s), Some(x)], vec![y]);
    g.inputs = vec![s, x];
    g.outputs = vec![y, y];
    sub(g, vec![])
}

fn scan_op(batched: bool, in_axis: i64, in_rev: bool, out_axis: i64, out_rev: bool) -> Scan {
    Scan {
        body: scan_body(),
        n_formal: if batched { 3 } else { 2 },
        num_scan_inputs: 1,
        batched,
        input_axes: vec![in_axis],
        input_reverse: vec![in_rev],
        output_axes: vec![out_axis],
        output_reverse: vec![out_rev],
    }
}

#[test]
fn scan_axes_and_directions() {
    let init = t32(&[2], &[0.0, 0.0]);
    let x = t32(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let out = run(&scan_op(false, 0, false, 0, false), &[tv(&init), tv(&x)]).unwrap();
    assert_eq!(f32s(&out[0]), (vec![2], vec![9.0, 12.0]));
    assert_eq!(
        f32s(&out[1]),
        (vec![3, 2], vec![1.0, 2.0, 4.0, 6.0, 9.0, 12.0])
    );
    // Reverse input: partial sums from the back.
    let out = run(&scan_op(false, 0, true, 0, false), &[tv(&init), tv(&x)]).unwrap();
    assert_eq!(f32s(&out[1]).1, vec![5.0, 6.0, 8.0, 10.0, 9.0, 12.0]);
    // Reverse output: the same sums stacked back to front.
    let out = run(&scan_op(false, 0, false, 0, true), &[tv(&init), tv(&x)]).unwrap();
    assert_eq!(f32s(&out[1]).1, vec![9.0, 12.0, 4.0, 6.0, 1.0, 2.0]);
    // Output axis 1 (= -1): [2, 3].
    let out = run(&scan_op(false, 0, false, -1, false), &[tv(&init), tv(&x)]).unwrap();
    assert_eq!(
        f32s(&out[1]),
        (vec![2, 3], vec![1.0, 4.0, 9.0, 2.0, 6.0, 12.0])
    );
    // Input axis 1 on the transposed data gives the original sums.
    let xt = t32(&[2, 3], &[1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    let out = run(&scan_op(false, 1, false, 0, false), &[tv(&init), tv(&xt)]).unwrap();
    assert_eq!(f32s(&out[1]).1, vec![1.0, 2.0, 4.0, 6.0, 9.0, 12.0]);
    // Input axis out of range is an error.
    assert!(run(&scan_op(false, 2, false, 0, false), &[tv(&init), tv(&x)]).is_err());
    let facts = scan_op(false, 0, false, 0, false)
        .output_facts(
            &[
                &Fact::new(DType::F32, SymbolicShape::known(&[2])),
                &Fact::new(DType::F32, SymbolicShape::known(&[3, 2])),
            ],
            2,
        )
        .unwrap();
    assert_eq!(facts[1].shape, Some(SymbolicShape::known(&[3, 2])));
}

#[test]
fn scan_opset8_batches_and_sequence_lens() {
    let init = t32(&[2, 2], &[0.0; 4]);
    let x = t32(
        &[2, 3, 2],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    );
    let op = scan_op(true, 0, false, 0, false);
    let out = run(&op, &[None, tv(&init), tv(&x)]).unwrap();
    assert_eq!(f32s(&out[0]), (vec![2, 2], vec![9.0, 12.0, 3.0, 3.0]));
    assert_eq!(f32s(&out[1]).0, vec![2, 3, 2]);
    // Batch 1 runs only 2 steps; its scan output is zero-padded.
    let lens = Tensor::from_slice(&[2], &[3i64, 2]).unwrap();
    let out = run(&op, &[tv(&lens), tv(&init), tv(&x)]).unwrap();
    assert_eq!(f32s(&out[0]).1, vec![9.0, 12.0, 2.0, 2.0]);
    assert_eq!(
        f32s(&out[1]).1,
        vec![1.0, 2.0, 4.0, 6.0, 9.0, 12.0, 1.0, 1.0, 2.0, 2.0, 0.0, 0.0]
    );
    let too_long = Tensor::from_slice(&[2], &[4i64, 2]).unwrap();
    assert!(run(&op, &[tv(&too_long), tv(&init), tv(&x)]).is_err());
}

#[test]
fn sequence_ops() {
    let a = t32(&[2], &[1.0, 2.0]);
    let b = t32(&[3], &[3.0, 4.0, 5.0]);
    let s = run(&SequenceConstruct, &[tv(&a), tv(&b)])
        .unwrap()
        .remove(0);
    let Value::Sequence(seq) = &s else {
        panic!("not a sequence")
    };
    assert_eq!(seq.len(), 2);
    let sr = Some(ValueRef::Sequence(seq));
    let len = run(&SequenceLength, std::slice::from_ref(&sr)).unwrap();
    assert_eq!(i64s(&len[0]).1, vec![2]);
    let at = |p: i64| run(&SequenceAt, &[sr.clone(), tv(&Tensor::scalar(p))]);
    assert_eq!(f32s(&at(-1).unwrap()[0]).1, vec![3.0, 4.0, 5.0]);
    assert_eq!(f32s(&at(0).unwrap()[0]).1, vec![1.0, 2.0]);
    let err = at(2).unwrap_err().to_string();
    assert!(
        err.contains("position 2") && err.contains("length 2"),
        "{err}"
    );
    assert!(at(-3).is_err());
    // Insert at the front, then erase the last.
    let c = t32(&[1], &[9.0]);
    let ins = run(
        &SequenceInsert,
        &[sr.clone(), tv(&c), tv(&Tensor::scalar(0i32))],
    )
    .unwrap()
    .remove(0);
    let Value::Sequence(ins) = ins else { panic!() };
    assert_eq!(
        ins.iter().map(|t| t.len()).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let er = run(&SequenceErase, &[Some(ValueRef::Sequence(&ins))])
        .unwrap()
        .remove(0);
    let Value::Sequence(er) = er else { panic!() };
    assert_eq!(er.iter().map(|t| t.len()).collect::<Vec<_>>(), vec![1, 2]);
    assert!(run(
        &SequenceInsert,
        &[sr.clone(), tv(&c), tv(&Tensor::scalar(3i64))]
    )
    .is_err());
    // Dtype mismatch on insert.
    let wrong = Tensor::scalar(1i64);
    assert!(run(&SequenceInsert, &[sr.clone(), tv(&wrong)]).is_err());
    // Empty sequences.
    let e = run(&SequenceEmpty { dtype: DType::F32 }, &[])
        .unwrap()
        .remove(0);
    let Value::Sequence(e) = e else { panic!() };
    assert!(run(&SequenceErase, &[Some(ValueRef::Sequence(&e))]).is_err());
    assert!(run(
        &SequenceAt,
        &[Some(ValueRef::Sequence(&e)), tv(&Tensor::scalar(0i64))]
    )
    .is_err());
    // A tensor where a sequence is expected.
    assert!(run(&SequenceLength, &[tv(&a)]).is_err());
    let f = SequenceEmpty { dtype: DType::I32 }
        .output_facts(&[], 1)
        .unwrap();
    assert!(f[0].is_sequence && f[0].dtype == Some(DType::I32));
}

#[test]
fn split_and_concat_sequences() {
    let x = t32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let split = |s: Option<&Tensor>, axis: i64, keepdims: bool| {
        let op = SplitToSequence { axis, keepdims };
        match run(&op, &[tv(&x), s.and_then(tv)]).map(|mut v| v.remove(0)) {
            Ok(Value::Sequence(s)) => Ok(s),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        }
    };
    let parts = split(None, 1, true).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[1].shape(), &[2, 1]);
    assert_eq!(parts[1].as_slice::<f32>().unwrap(), &[2.0, 5.0]);
    let parts = split(None, 1, false).unwrap();
    assert_eq!(parts[2].shape(), &[2]);
    let two = Tensor::scalar(2i64);
    let parts = split(Some(&two), 1, false).unwrap();
    assert_eq!(
        parts.iter().map(|t| t.shape().to_vec()).collect::<Vec<_>>(),
        vec![vec![2, 2], vec![2, 1]]
    );
    let lens = Tensor::from_slice(&[2], &[1i64, 2]).unwrap();
    let parts = split(Some(&lens), -1, true).unwrap();
    assert_eq!(parts[1].as_slice::<f32>().unwrap(), &[2.0, 3.0, 5.0, 6.0]);
    let bad = Tensor::from_slice(&[2], &[1i64, 1]).unwrap();
    assert!(split(Some(&bad), 1, true).is_err());
    assert!(split(Some(&Tensor::scalar(0i64)), 1, true).is_err());
    assert!(split(None, 2, true).is_err());

    // Concat back along axis 1, and stack along a new axis.
    let parts = split(Some(&lens), 1, true).unwrap();
    let cat = ConcatFromSequence {
        axis: 1,
        new_axis: false,
    };
    let out = run(&cat, &[Some(ValueRef::Sequence(&parts))]).unwrap();
    assert_eq!(
        f32s(&out[0]),
        (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    );
    let rows = split(None, 0, false).unwrap();
    let stack = ConcatFromSequence {
        axis: -1,
        new_axis: true,
    };
    let out = run(&stack, &[Some(ValueRef::Sequence(&rows))]).unwrap();
    assert_eq!(
        f32s(&out[0]),
        (vec![3, 2], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
    );
    // Mismatched shapes for stacking, empty sequence: errors.
    assert!(run(&stack, &[Some(ValueRef::Sequence(&parts))]).is_err());
    assert!(run(&stack, &[Some(ValueRef::Sequence(&[]))]).is_err());
    // Strings go through too.
    let s = Tensor::from_strings(&[2], vec!["a".into(), "b".into()]).unwrap();
    let seq = vec![s.clone(), s];
    let out = run(&cat, &[Some(ValueRef::Sequence(&seq))]).err();
    assert!(out.is_some(), "axis 1 is out of range for rank 1");
    let cat0 = ConcatFromSequence {
        axis: 0,
        new_axis: false,
    };
    let Value::Tensor(t) = run(&cat0, &[Some(ValueRef::Sequence(&seq))])
        .unwrap()
        .remove(0)
    else {
        panic!()
    };
    assert_eq!(t.as_strings().unwrap(), &["a", "b", "a", "b"]);
}

#[test]
fn sequence_map_per_element_and_broadcast() {
    // Body: (x, y) -> x + y.
    let mut g = Graph::default();
    let x = g.add_value("x", Fact::unknown());
    let y = g.add_value("y", Fact::unknown());
    let z = g.add_value("z", Fact::dtype_only(Some(DType::F32)));
    g.add_node("add", Box::new(AddT), vec![Some(x), Some(y)], vec![z]);
    g.inputs = vec![x, y];
    g.outputs = vec![z];
    let op = SequenceMap {
        body: sub(g, vec![]),
        n_formal: 2,
    };
    let seq = vec![t32(&[1], &[1.0]), t32(&[2], &[2.0, 3.0])];
    let ten = t32(&[], &[10.0]);
    let out = run(&op, &[Some(ValueRef::Sequence(&seq)), tv(&ten)]).unwrap();
    let Value::Sequence(s) = &out[0] else {
        panic!()
    };
    assert_eq!(s[1].as_slice::<f32>().unwrap(), &[12.0, 13.0]);
    let out = run(
        &op,
        &[
            Some(ValueRef::Sequence(&seq)),
            Some(ValueRef::Sequence(&seq)),
        ],
    )
    .unwrap();
    let Value::Sequence(s) = &out[0] else {
        panic!()
    };
    assert_eq!(s[1].as_slice::<f32>().unwrap(), &[4.0, 6.0]);
    let short = vec![t32(&[1], &[1.0])];
    assert!(run(
        &op,
        &[
            Some(ValueRef::Sequence(&seq)),
            Some(ValueRef::Sequence(&short))
        ]
    )
    .is_err());
    assert!(op.output_facts(&[], 1).unwrap()[0].is_sequence);
}

#[test]
fn optionals() {
    let a = t32(&[1], &[1.0]);
    let has = |v: Option<ValueRef>| match run(&OptionalHasElement, &[v]).unwrap().remove(0) {
        Value::Tensor(t) => t.as_bools().unwrap()[0],
        _ => panic!(),
    };
    assert!(has(tv(&a)));
    assert!(!has(Some(ValueRef::None)));
    assert!(!has(None));
    assert!(has(Some(ValueRef::Sequence(&[]))));
    let wrapped = run(&OptionalOp, &[tv(&a)]).unwrap().remove(0);
    assert_eq!(f32s(&wrapped).1, vec![1.0]);
    assert!(matches!(run(&OptionalOp, &[None]).unwrap()[0], Value::None));
    assert_eq!(
        f32s(&run(&OptionalGetElement, &[tv(&a)]).unwrap()[0]).1,
        vec![1.0]
    );
    assert!(run(&OptionalGetElement, &[Some(ValueRef::None)]).is_err());
}
