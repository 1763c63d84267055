//! The copy engine behind Slice, Pad, CenterCropPad, Tile and Expand: each
//! output axis reads its source index through a per-axis map (`None` = the
//! fill value). Trailing axes that map identically are merged, and each output
//! row is written as a few segments (contiguous copies, fills, splats), so
//! the common cases are `clone_from_slice` (memcpy) of long runs.

use uniml_data::{bail, Result};

use super::{numel, Data, PAR_GRAIN};
use crate::ops::util::strides;
use crate::parallel::{par_chunks_mut, Parallelism};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Seg {
    /// `len` elements from `src..src+len` (relative to the row's source base).
    Copy { dst: usize, src: usize, len: usize },
    /// `len` copies of the fill value.
    Fill { dst: usize, len: usize },
    /// `len` copies of source element `src`.
    Splat { dst: usize, src: usize, len: usize },
    /// `len` elements from `src`, `src + step`, … (`step` may be negative).
    Strided {
        dst: usize,
        src: usize,
        step: isize,
        len: usize,
    },
}

/// Builds the segments of one output row from the row axis' map and the size
/// of the merged identity block below it: runs of fills, contiguous copies,
/// and (for single elements) arithmetic progressions.
fn row_segments(map: &[Option<usize>], inner: usize) -> Vec<Seg> {
    let mut segs: Vec<Seg> = Vec::new();
    let mut j = 0;
    while j < map.len() {
        let dst = j * inner;
        let mut k = j + 1;
        match map[j] {
            None => {
                while k < map.len() && map[k].is_none() {
                    k += 1;
                }
                segs.push(Seg::Fill {
                    dst,
                    len: (k - j) * inner,
                });
            }
            Some(s) if inner > 1 => {
                while k < map.len() && map[k] == Some(s + (k - j)) {
                    k += 1;
                }
                segs.push(Seg::Copy {
                    dst,
                    src: s * inner,
                    len: (k - j) * inner,
                });
            }
            Some(s) => {
                let step = match map.get(j + 1) {
                    Some(Some(t)) => *t as isize - s as isize,
                    _ => 1,
                };
                while k < map.len()
                    && map[k].map(|v| v as isize) == Some(s as isize + (k - j) as isize * step)
                {
                    k += 1;
                }
                let len = k - j;
                segs.push(match step {
                    _ if len == 1 => Seg::Copy { dst, src: s, len },
                    1 => Seg::Copy { dst, src: s, len },
                    0 => Seg::Splat { dst, src: s, len },
                    step => Seg::Strided {
                        dst,
                        src: s,
                        step,
                        len,
                    },
                });
            }
        }
        j = k;
    }
    segs
}

/// Writes `dst` (row-major, shape = the maps' lengths) from `src` (shape
/// `src_shape`): `dst[j0, j1, ...] = src[maps[0][j0], maps[1][j1], ...]`, or
/// `fill` where any map entry is `None`. Map entries must be in range.
pub(crate) fn map_copy<T: Data>(
    par: &dyn Parallelism,
    src: &[T],
    src_shape: &[usize],
    maps: &[Vec<Option<usize>>],
    fill: &T,
    dst: &mut [T],
) -> Result<()> {
    let rank = src_shape.len();
    if maps.len() != rank {
        bail!(
            "internal: {} index maps for a rank-{rank} tensor",
            maps.len()
        );
    }
    let out_shape: Vec<usize> = maps.iter().map(|m| m.len()).collect();
    if dst.len() != numel(&out_shape) || src.len() != numel(src_shape) {
        bail!("internal: index-map copy buffer sizes do not match their shapes");
    }
    for (a, m) in maps.iter().enumerate() {
        if m.iter().flatten().any(|&s| s >= src_shape[a]) {
            bail!("internal: index map out of range on axis {a}");
        }
    }
    if dst.is_empty() {
        return Ok(());
    }
    let is_identity = |a: usize| {
        maps[a].len() == src_shape[a] && maps[a].iter().enumerate().all(|(j, m)| *m == Some(j))
    };
    // Row axis: the innermost axis that is not an identity map.
    let Some(k) = (0..rank).rev().find(|&a| !is_identity(a)) else {
        dst.clone_from_slice(src);
        return Ok(());
    };
    let inner = numel(&src_shape[k + 1..]);
    let row_len = out_shape[k] * inner;
    if row_len == 0 {
        return Ok(());
    }
    let segs = row_segments(&maps[k], inner);
    let st = strides(src_shape);
    let outer_dims = &out_shape[..k];
    let rows_per_task = (PAR_GRAIN / row_len).max(1);
    par_chunks_mut(par, dst, rows_per_task * row_len, &|t, chunk| {
        // Decompose the first row index into outer coordinates.
        let mut idx = vec![0usize; k];
        let mut r = t * rows_per_task;
        for a in (0..k).rev() {
            idx[a] = r % outer_dims[a];
            r /= outer_dims[a];
        }
        for row in chunk.chunks_mut(row_len) {
            let mut base = Some(0usize);
            for a in 0..k {
                base = match (base, maps[a][idx[a]]) {
                    (Some(b), Some(s)) => Some(b + s * st[a]),
                    _ => None,
                };
            }
            match base {
                None => row.fill(fill.clone()),
                Some(b) => {
                    for s in &segs {
                        match *s {
                            Seg::Copy { dst, src: o, len } => {
                                row[dst..dst + len].clone_from_slice(&src[b + o..b + o + len])
                            }
                            Seg::Fill { dst, len } => row[dst..dst + len].fill(fill.clone()),
                            Seg::Splat { dst, src: o, len } => {
                                row[dst..dst + len].fill(src[b + o].clone())
                            }
                            Seg::Strided {
                                dst,
                                src: o,
                                step,
                                len,
                            } => {
                                let first = (b + o) as isize;
                                for (i, d) in row[dst..dst + len].iter_mut().enumerate() {
                                    *d = src[(first + i as isize * step) as usize].clone();
                                }
                            }
                        }
                    }
                }
            }
            // Odometer increment over the outer axes.
            for a in (0..k).rev() {
                idx[a] += 1;
                if idx[a] < outer_dims[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Serial;

    #[test]
    fn segments_merge_runs_fills_and_splats() {
        let m = [Some(1), Some(2), None, None, Some(0), Some(0), Some(0)];
        assert_eq!(
            row_segments(&m, 1),
            vec![
                Seg::Copy {
                    dst: 0,
                    src: 1,
                    len: 2
                },
                Seg::Fill { dst: 2, len: 2 },
                Seg::Splat {
                    dst: 4,
                    src: 0,
                    len: 3
                }
            ]
        );
        assert_eq!(
            row_segments(&[Some(9), Some(7), Some(5), Some(6)], 1),
            vec![
                Seg::Strided {
                    dst: 0,
                    src: 9,
                    step: -2,
                    len: 3
                },
                Seg::Copy {
                    dst: 3,
                    src: 6,
                    len: 1
                }
            ]
        );
        assert_eq!(
            row_segments(&[Some(0), Some(1)], 3),
            vec![Seg::Copy {
                dst: 0,
                src: 0,
                len: 6
            }]
        );
    }

    #[test]
    fn random_maps_match_naive() {
        let mut seed = 12345u64;
        let mut rnd = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % n as u64) as usize
        };
        for _ in 0..300 {
            let rank = 1 + rnd(4);
            let shape: Vec<usize> = (0..rank).map(|_| 1 + rnd(5)).collect();
            let maps: Vec<Vec<Option<usize>>> = shape
                .iter()
                .map(|&d| {
                    let kind = rnd(4);
                    let len = rnd(7);
                    match kind {
                        0 => (0..d).map(Some).collect(),
                        1 => (0..len).map(|j| Some(j % d)).collect(),
                        2 => (0..len).map(|j| Some(d - 1 - (j * 2) % d)).collect(),
                        _ => (0..len)
                            .map(|_| if rnd(3) == 0 { None } else { Some(rnd(d)) })
                            .collect(),
                    }
                })
                .collect();
            let src: Vec<u32> = (0..numel(&shape) as u32).collect();
            let out_shape: Vec<usize> = maps.iter().map(|m| m.len()).collect();
            let n = numel(&out_shape);
            let mut dst = vec![0u32; n];
            map_copy(&Serial, &src, &shape, &maps, &u32::MAX, &mut dst).unwrap();
            let st = strides(&shape);
            let ost = strides(&out_shape);
            for (o, &got) in dst.iter().enumerate() {
                let mut off = Some(0);
                for a in 0..rank {
                    let j = (o / ost[a]) % out_shape[a];
                    off = match (off, maps[a][j]) {
                        (Some(b), Some(s)) => Some(b + s * st[a]),
                        _ => None,
                    };
                }
                assert_eq!(
                    got,
                    off.map_or(u32::MAX, |x| src[x]),
                    "shape {shape:?} maps {maps:?}"
                );
            }
        }
    }

    #[test]
    fn maps_select_and_fill() {
        // src 2x3, out 3x2: rows [1, fill, 0], cols [2, 0]
        let src: Vec<u32> = (0..6).collect();
        let maps = vec![vec![Some(1), None, Some(0)], vec![Some(2), Some(0)]];
        let mut dst = vec![0u32; 6];
        map_copy(&Serial, &src, &[2, 3], &maps, &99, &mut dst).unwrap();
        assert_eq!(dst, vec![5, 3, 99, 99, 2, 0]);
        let bad = vec![vec![Some(2)], vec![Some(0)]];
        assert!(map_copy(&Serial, &src, &[2, 3], &bad, &0, &mut [0u32]).is_err());
    }
}
