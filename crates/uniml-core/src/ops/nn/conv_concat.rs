//! `ConvConcat` (CPU only, from `passes::fuse_concat_convs`): a channel
//! `Concat` whose inputs include convolutions read nowhere else. Each such
//! convolution writes its channels of the concatenated output directly: for
//! batch 1 (what the pass fuses) those are one contiguous range, so the
//! copy a `Concat` makes of every conv output (SqueezeNet's fire modules,
//! Inception's branches) is gone. Other inputs are copied in as before.

use std::ops::Range;

use uniml_data::{ensure, DType, Result, Tensor, TensorView};

use super::conv::Conv;
use super::float_data;
use crate::op::{EvalCtx, Fact, Op};
use crate::ops::shape::concat::Concat;
use crate::parallel::par_chunks_mut;

/// One input of the concatenation, in order.
#[derive(Debug, Clone)]
pub enum ConcatPart {
    /// A tensor copied in (one input).
    Copy,
    /// A convolution computed in place, from its `n` inputs (X, W, B?).
    Conv(Conv, usize),
}

impl ConcatPart {
    fn arity(&self) -> usize {
        match self {
            ConcatPart::Copy => 1,
            ConcatPart::Conv(_, n) => *n,
        }
    }
}

/// `Concat(axis = 1)` of [`ConcatPart`]s; its inputs are the parts' inputs
/// one after another.
#[derive(Debug, Clone)]
pub struct ConvConcat {
    pub parts: Vec<ConcatPart>,
}

impl ConvConcat {
    /// Each part with the range of the node's inputs it reads.
    fn spans(&self) -> impl Iterator<Item = (&ConcatPart, Range<usize>)> {
        self.parts.iter().scan(0, |at, p| {
            let r = *at..*at + p.arity();
            *at = r.end;
            Some((p, r))
        })
    }
}

impl Op for ConvConcat {
    fn name(&self) -> &'static str {
        "ConvConcat"
    }

    fn output_facts(&self, inputs: &[&Fact], n: usize) -> Result<Vec<Fact>> {
        let mut facts = Vec::with_capacity(self.parts.len());
        for (part, r) in self.spans() {
            let ins = inputs.get(r.clone()).unwrap_or(&[]);
            facts.push(match part {
                ConcatPart::Copy => ins.first().copied().cloned().unwrap_or_default(),
                ConcatPart::Conv(conv, _) => conv.output_facts(ins, 1)?.remove(0),
            });
        }
        let refs: Vec<&Fact> = facts.iter().collect();
        Concat { axis: 1 }.output_facts(&refs, n)
    }

    fn pack_constants(&self, inputs: &[&Fact]) {
        for (part, r) in self.spans() {
            if let (ConcatPart::Conv(conv, _), Some(ins)) = (part, inputs.get(r)) {
                conv.pack_constants(ins);
            }
        }
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        // Every part's shape first: the output's, and each part's channels.
        let mut shapes = Vec::with_capacity(self.parts.len());
        for (part, r) in self.spans() {
            let ins = inputs.get(r).unwrap_or(&[]);
            let x = crate::op::input(ins, 0, "ConvConcat")?;
            ensure!(x.dtype() == DType::F32, "ConvConcat takes f32 inputs, got {}", x.dtype());
            shapes.push(match part {
                ConcatPart::Copy => x.shape().to_vec(),
                ConcatPart::Conv(conv, _) => {
                    let w = crate::op::input(ins, 1, "ConvConcat")?;
                    conv.output_shape(x.shape(), w.shape())?
                }
            });
        }
        let first = &shapes[0];
        ensure!(first.len() >= 2, "Concat: inputs must have rank >= 2 for axis 1, got {first:?}");
        for s in &shapes {
            ensure!(
                s.len() == first.len() && s[0] == first[0] && s[2..] == first[2..],
                "Concat: input shapes {first:?} and {s:?} differ outside axis 1"
            );
        }
        let mut out_shape = first.clone();
        out_shape[1] = shapes.iter().map(|s| s[1]).sum();
        let outer = first[0];
        // Values per batch item of each part, and of the output.
        let blocks: Vec<usize> = shapes.iter().map(|s| s[1..].iter().product()).collect();
        let row: usize = blocks.iter().sum();
        let par = ctx.par;
        // Every element is written: each part fills its channels.
        let mut y = ctx.alloc_overwritten(DType::F32, &out_shape)?;
        let out = y.as_slice_mut::<f32>()?;
        let mut off = 0;
        for ((part, r), &b) in self.spans().zip(&blocks) {
            let ins = &inputs[r];
            match part {
                ConcatPart::Copy => {
                    let src = float_data(crate::op::input(ins, 0, "ConvConcat")?, "Concat input")?;
                    if outer == 1 {
                        // Big copies (DenseNet's running feature map) in parallel chunks.
                        let grain = crate::ops::shape::PAR_GRAIN;
                        par_chunks_mut(par, &mut out[off..off + b], grain, &|t, d| {
                            d.copy_from_slice(&src[t * grain..t * grain + d.len()])
                        });
                    } else {
                        for o in 0..outer {
                            out[o * row + off..o * row + off + b].copy_from_slice(&src[o * b..(o + 1) * b]);
                        }
                    }
                }
                ConcatPart::Conv(conv, _) if outer == 1 => conv.compute_into(par, ins, false, &mut out[off..off + b])?,
                ConcatPart::Conv(conv, _) => {
                    // Batch > 1: a part's channels are `outer` separate ranges.
                    let mut tmp = vec![0f32; outer * b];
                    conv.compute_into(par, ins, false, &mut tmp)?;
                    for o in 0..outer {
                        out[o * row + off..o * row + off + b].copy_from_slice(&tmp[o * b..(o + 1) * b]);
                    }
                }
            }
            off += b;
        }
        Ok(vec![y])
    }

    crate::op_as_any!();
}
