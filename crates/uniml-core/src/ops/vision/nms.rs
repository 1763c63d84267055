//! `NonMaxSuppression` (opsets 10, 11): greedy per-(batch, class) selection of
//! boxes by descending score (ties: lower box index first), dropping boxes whose
//! IoU with an already selected box exceeds `iou_threshold`. Output
//! `[selected, 3]` int64 rows `(batch, class, box)` in batch, class, selection order,
//! exactly as the ONNX reference / onnxruntime produce them.
//!
//! Inputs: `boxes [B, N, 4]`, `scores [B, C, N]`, optional
//! `max_output_boxes_per_class` (default 0: select nothing), `iou_threshold`
//! (default 0), `score_threshold` (default: no filtering; boxes need a score
//! strictly above it). Boxes are `[y1, x1, y2, x2]` (any corner order) or,
//! with `center_point_box`, `[x_center, y_center, width, height]`.

use uniml_data::{ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::scalar_f64;
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone)]
pub struct NonMaxSuppression {
    pub center_point_box: bool,
}

/// A box as (x_min, y_min, x_max, y_max).
type Rect = [f32; 4];

fn rect(b: &[f32], center: bool) -> Rect {
    if center {
        let (hw, hh) = (b[2] / 2.0, b[3] / 2.0);
        [b[0] - hw, b[1] - hh, b[0] + hw, b[1] + hh]
    } else {
        [
            b[1].min(b[3]),
            b[0].min(b[2]),
            b[1].max(b[3]),
            b[0].max(b[2]),
        ]
    }
}

/// Whether `a` and `b` overlap with IoU strictly above `threshold`.
fn suppresses(a: &Rect, b: &Rect, threshold: f32) -> bool {
    let ix_min = a[0].max(b[0]);
    let ix_max = a[2].min(b[2]);
    if ix_max <= ix_min {
        return false;
    }
    let iy_min = a[1].max(b[1]);
    let iy_max = a[3].min(b[3]);
    if iy_max <= iy_min {
        return false;
    }
    let inter = (ix_max - ix_min) * (iy_max - iy_min);
    if inter <= 0.0 {
        return false;
    }
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    let union = area_a + area_b - inter;
    if area_a <= 0.0 || area_b <= 0.0 || union <= 0.0 {
        return false;
    }
    inter / union > threshold
}

impl Op for NonMaxSuppression {
    fn name(&self) -> &'static str {
        "NonMaxSuppression"
    }

    fn output_facts(&self, _inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![Fact::new(
            DType::I64,
            SymbolicShape(vec![Dim::Unknown, Dim::Known(3)]),
        )])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let op = "NonMaxSuppression";
        let boxes = input(inputs, 0, op)?;
        let scores = input(inputs, 1, op)?;
        let (bs, ss) = (boxes.shape(), scores.shape());
        ensure!(
            bs.len() == 3 && bs[2] == 4,
            "{op}: boxes must be [batch, boxes, 4], got {bs:?}"
        );
        ensure!(
            ss.len() == 3 && ss[0] == bs[0] && ss[2] == bs[1],
            "{op}: scores must be [batch, classes, boxes] = [{}, C, {}], got {ss:?}",
            bs[0],
            bs[1]
        );
        ensure!(
            boxes.dtype().is_float() && scores.dtype().is_float(),
            "{op}: boxes and scores must be float tensors"
        );
        let max_out = match inputs.get(2).and_then(|v| v.as_ref()) {
            Some(t) => {
                let v = crate::ops::util::read_i64s(t)?;
                ensure!(
                    v.len() <= 1,
                    "{op}: max_output_boxes_per_class must hold one value, got shape {:?}",
                    t.shape()
                );
                v.first().copied().unwrap_or(0).max(0) as usize
            }
            None => 0,
        };
        let iou_threshold = match inputs.get(3).and_then(|v| v.as_ref()) {
            Some(t) => scalar_f64(t, "iou_threshold")?.unwrap_or(0.0) as f32,
            None => 0.0,
        };
        ensure!(
            (0.0..=1.0).contains(&iou_threshold),
            "{op}: iou_threshold must be in [0, 1], got {iou_threshold}"
        );
        let score_threshold = match inputs.get(4).and_then(|v| v.as_ref()) {
            Some(t) => scalar_f64(t, "score_threshold")?.map(|v| v as f32),
            None => None,
        };
        let (nb, nc, n) = (ss[0], ss[1], ss[2]);
        let bx: Vec<f32> = boxes.to_f64_vec()?.into_iter().map(|v| v as f32).collect();
        let sc: Vec<f32> = scores.to_f64_vec()?.into_iter().map(|v| v as f32).collect();
        let rects: Vec<Rect> = bx
            .chunks_exact(4)
            .map(|b| rect(b, self.center_point_box))
            .collect();

        let mut selected: Vec<i64> = Vec::new();
        let mut candidates: Vec<(f32, usize)> = Vec::with_capacity(n);
        let mut kept: Vec<usize> = Vec::new();
        if max_out > 0 {
            for b in 0..nb {
                let brects = &rects[b * n..(b + 1) * n];
                for c in 0..nc {
                    let cs = &sc[(b * nc + c) * n..(b * nc + c + 1) * n];
                    candidates.clear();
                    candidates.extend(
                        cs.iter()
                            .enumerate()
                            .filter(|(_, &s)| score_threshold.is_none_or(|t| s > t))
                            .map(|(i, &s)| (s, i)),
                    );
                    // Highest score first; equal scores keep the lower index first.
                    candidates.sort_by(|a, b| {
                        b.0.partial_cmp(&a.0)
                            .unwrap_or(std::cmp::Ordering::Equal)
                            .then(a.1.cmp(&b.1))
                    });
                    kept.clear();
                    for &(_, i) in candidates.iter() {
                        if kept.len() >= max_out {
                            break;
                        }
                        if kept
                            .iter()
                            .all(|&k| !suppresses(&brects[i], &brects[k], iou_threshold))
                        {
                            kept.push(i);
                            selected.extend([b as i64, c as i64, i as i64]);
                        }
                    }
                }
            }
        }
        let mut out = ctx.alloc(DType::I64, &[selected.len() / 3, 3])?;
        out.as_slice_mut::<i64>()?.copy_from_slice(&selected);
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{run, t};
    use super::*;

    fn boxes() -> Tensor {
        t(
            &[1, 6, 4],
            &[
                0.0, 0.0, 1.0, 1.0, 0.0, 0.1, 1.0, 1.1, 0.0, -0.1, 1.0, 0.9, 0.0, 10.0, 1.0, 11.0,
                0.0, 10.1, 1.0, 11.1, 0.0, 100.0, 1.0, 101.0,
            ],
        )
    }

    #[test]
    fn suppress_by_iou_matches_reference() {
        let scores = t(&[1, 1, 6], &[0.9, 0.75, 0.6, 0.95, 0.5, 0.3]);
        let max = Tensor::from_slice(&[1], &[3i64]).unwrap();
        let iou = t(&[1], &[0.5]);
        let st = t(&[1], &[0.0]);
        let op = NonMaxSuppression {
            center_point_box: false,
        };
        let y = run(
            &op,
            &[
                Some(&boxes()),
                Some(&scores),
                Some(&max),
                Some(&iou),
                Some(&st),
            ],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[3, 3]);
        assert_eq!(
            y[0].as_slice::<i64>().unwrap(),
            &[0, 0, 3, 0, 0, 0, 0, 0, 5]
        );
        // score threshold 0.4 drops box 5; no max input selects nothing.
        let st = t(&[1], &[0.4]);
        let y = run(
            &op,
            &[
                Some(&boxes()),
                Some(&scores),
                Some(&max),
                Some(&iou),
                Some(&st),
            ],
        )
        .unwrap();
        assert_eq!(y[0].as_slice::<i64>().unwrap(), &[0, 0, 3, 0, 0, 0]);
        let y = run(&op, &[Some(&boxes()), Some(&scores)]).unwrap();
        assert_eq!(y[0].shape(), &[0, 3]);
    }

    #[test]
    fn ties_keep_lower_index_and_shape_errors() {
        let b = t(
            &[1, 3, 4],
            &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 5.0, 5.0, 6.0, 6.0],
        );
        let s = t(&[1, 1, 3], &[0.9, 0.9, 0.9]);
        let max = Tensor::from_slice(&[1], &[10i64]).unwrap();
        let op = NonMaxSuppression {
            center_point_box: false,
        };
        let y = run(
            &op,
            &[Some(&b), Some(&s), Some(&max), Some(&t(&[1], &[0.5]))],
        )
        .unwrap();
        assert_eq!(y[0].as_slice::<i64>().unwrap(), &[0, 0, 0, 0, 0, 2]);
        let bad = t(&[1, 1, 2], &[0.9, 0.9]);
        assert!(run(&op, &[Some(&b), Some(&bad)]).is_err());
    }
}
