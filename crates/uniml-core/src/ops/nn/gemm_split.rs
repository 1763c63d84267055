//! How a parallel `m × n` product (the columns are a conv's output pixels)
//! is cut into tasks so that every thread gets the same share.
//!
//! Column tiles of whole 32-column panels alone leave threads unequal when
//! the panels do not divide by the thread count: ResNet-50's 14×14 layers
//! have 196 columns = 7 panels, split 4 : 3 between 2 threads, which capped
//! them at 1.75× the 1-thread speed. Here each thread gets the same number
//! of whole panels as column tiles, and the columns left over (fewer than a
//! panel per thread, plus the partial panel) are cut by rows instead, one row
//! block per thread. Those row blocks each pack the leftover columns of B
//! again, which is cheap next to what they balance.

use std::ops::Range;

/// Column granularity of the split (the widest microtile).
pub(crate) const COL_PANEL: usize = 32;

/// The tasks of one parallel product: `col_tasks` column tiles over all rows
/// (of `tile` columns, or whole panels shared out evenly over
/// `0..main_cols`), then `row_tasks` row blocks over the leftover columns
/// `main_cols..n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockSplit {
    m: usize,
    n: usize,
    /// Plain tiles of this many columns, the last one short; 0 = panels.
    tile: usize,
    col_tasks: usize,
    main_cols: usize,
    row_tasks: usize,
    rows_per: usize,
    threads: usize,
}

impl BlockSplit {
    /// Splits `m × n` for `threads` threads with column tiles of at most
    /// `tile` columns (whole panels, where `tile` holds one). A `tile` of
    /// all `n` columns is one task: the caller found the product too small
    /// to share.
    pub(crate) fn new(m: usize, n: usize, tile: usize, threads: usize) -> BlockSplit {
        let tile = tile.clamp(1, n.max(1));
        let per_thread = n / COL_PANEL / threads.max(1);
        if threads <= 1 || per_thread == 0 || tile < COL_PANEL || tile >= n {
            let col_tasks = n.div_ceil(tile);
            return BlockSplit { m, n, tile, col_tasks, main_cols: n, row_tasks: 0, rows_per: m, threads };
        }
        let rounds = per_thread.div_ceil(tile / COL_PANEL);
        let main_cols = per_thread * threads * COL_PANEL;
        let (row_tasks, rows_per) = if main_cols == n {
            (0, m)
        } else if m >= 8 * threads {
            // One row block per thread, in multiples of 4 rows.
            let rows_per = m.div_ceil(threads).next_multiple_of(4);
            (m.div_ceil(rows_per), rows_per)
        } else {
            (1, m)
        };
        BlockSplit { m, n, tile: 0, col_tasks: threads * rounds, main_cols, row_tasks, rows_per, threads }
    }

    pub(crate) fn tasks(&self) -> usize {
        self.col_tasks + self.row_tasks
    }

    /// Rows and columns of task `t < self.tasks()`.
    pub(crate) fn block(&self, t: usize) -> (Range<usize>, Range<usize>) {
        if t >= self.col_tasks {
            let r0 = ((t - self.col_tasks) * self.rows_per).min(self.m);
            return (r0..(r0 + self.rows_per).min(self.m), self.main_cols..self.n);
        }
        let cols = if self.tile > 0 {
            t * self.tile..((t + 1) * self.tile).min(self.n)
        } else {
            // Round `r` gives each thread the same whole panels, so that
            // tasks handed out in order keep the threads level.
            let threads = self.threads;
            let (r, i) = (t / threads, t % threads);
            let rounds = self.col_tasks / threads;
            let per_thread = self.main_cols / COL_PANEL / threads;
            let (q0, q1) = (r * per_thread / rounds, (r + 1) * per_thread / rounds);
            let p0 = threads * q0 + i * (q1 - q0);
            p0 * COL_PANEL..(p0 + q1 - q0) * COL_PANEL
        };
        (0..self.m, cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element of C in exactly one task, one task when the tile is
    /// every column, and otherwise per-thread shares (tasks
    /// handed out in order to the least loaded thread, as the pools do)
    /// within one panel of rows × columns of each other.
    #[test]
    fn blocks_cover_once_and_balance() {
        for &(m, n, tile, threads) in &[
            (256usize, 196usize, 96usize, 2usize),
            (512, 49, 49, 2),
            (128, 784, 224, 2),
            (64, 3136, 448, 2),
            (1000, 169, 128, 2),
            (6, 200, 64, 2),
            (64, 200, 200, 2),
            (30, 100, 100, 1),
            (48, 700, 64, 3),
            (100, 33, 32, 4),
        ] {
            let s = BlockSplit::new(m, n, tile, threads);
            let mut seen = vec![0u8; m * n];
            for t in 0..s.tasks() {
                let (rows, cols) = s.block(t);
                assert!(cols.len() <= tile.max(COL_PANEL) * 2, "{s:?} task {t}: {cols:?}");
                for i in rows {
                    for j in cols.clone() {
                        seen[i * n + j] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&v| v == 1), "{m}×{n} tile {tile} threads {threads}: {s:?}");
            if tile >= n {
                // The caller's "too small to share": one task.
                assert_eq!(s.tasks(), 1, "{s:?}");
                continue;
            }
            if threads > 1 && n >= COL_PANEL * threads {
                let mut load = vec![0usize; threads];
                for t in 0..s.tasks() {
                    let (rows, cols) = s.block(t);
                    let least = (0..threads).min_by_key(|&i| load[i]).unwrap();
                    load[least] += rows.len() * cols.len();
                }
                let (lo, hi) = (load.iter().min().unwrap(), load.iter().max().unwrap());
                assert!(hi - lo <= m * COL_PANEL, "{m}×{n} tile {tile}: loads {load:?} ({s:?})");
            }
        }
    }
}
