//! Per-column bins and gradient histograms, filled feature by feature on all cores.

use churn_core::tree::MAX_CATEGORY_CODES;
use rayon::prelude::*;

use super::grow::Grower;
use crate::error::{Result, TrainError};

/// Sums of gradients, hessians and rows over a set of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Bin {
    pub(super) gradient: f64,
    pub(super) hessian: f64,
    pub(super) count: f64,
}

impl Bin {
    #[inline]
    pub(super) fn add_row(&mut self, gradient: f64, hessian: f64) {
        self.gradient += gradient;
        self.hessian += hessian;
        self.count += 1.0;
    }

    pub(super) fn add(&mut self, other: &Bin) {
        self.gradient += other.gradient;
        self.hessian += other.hessian;
        self.count += other.count;
    }

    pub(super) fn minus(&self, other: &Bin) -> Bin {
        Bin {
            gradient: self.gradient - other.gradient,
            hessian: self.hessian - other.hessian,
            count: self.count - other.count,
        }
    }
}

/// Most histogram slots of a column filled in [`LANES`] interleaved copies.
pub(super) const FEW_SLOTS: usize = 16;

/// Copies of a few-slot column's histogram filled side by side, row `i` into copy `i % LANES`.
const LANES: usize = 4;

/// Fills `slots` (zeroed) from the rows' bins in `bins` and their gradients in `ordered`, in
/// [`LANES`] copies merged at the end. A column of few bins sends consecutive rows to the same
/// slot, and each add would wait for the previous one's store; in copies, neighbouring rows add
/// to different memory. Each copy sums its rows in order and copies merge in lane order, so the
/// result does not depend on threads.
fn fill_in_lanes(bins: &[u8], rows: &[u32], ordered: &[[f64; 2]], slots: &mut [Bin]) {
    let mut lanes = [[Bin::default(); FEW_SLOTS]; LANES];
    let mut rows_in_step = rows.chunks_exact(LANES);
    let mut gradients_in_step = ordered.chunks_exact(LANES);
    for (step, gradients) in rows_in_step.by_ref().zip(gradients_in_step.by_ref()) {
        for ((lane, &row), &[gradient, hessian]) in lanes.iter_mut().zip(step).zip(gradients) {
            lane[bins[row as usize] as usize].add_row(gradient, hessian);
        }
    }
    let rest = rows_in_step.remainder().iter();
    for (&row, &[gradient, hessian]) in rest.zip(gradients_in_step.remainder()) {
        lanes[0][bins[row as usize] as usize].add_row(gradient, hessian);
    }
    for (index, slot) in slots.iter_mut().enumerate() {
        *slot = lanes[0][index];
        for lane in &lanes[1..] {
            slot.add(&lane[index]);
        }
    }
}

/// One column cut into bins. Values map to `0..n_bins`; missing values to `n_bins`.
#[derive(Debug, Clone)]
pub(super) struct BinnedColumn {
    pub(super) categorical: bool,
    /// Numeric columns: upper bound of each bin but the last (bin `t` holds `x <= upper[t]`).
    pub(super) upper: Vec<f64>,
    pub(super) n_bins: usize,
    /// Histogram offset of this column's first bin.
    pub(super) offset: usize,
    pub(super) bins: Vec<u8>,
}

impl BinnedColumn {
    pub(super) fn new(values: &[f64], categorical: bool, max_bins: usize) -> Result<Self> {
        if categorical {
            let mut n_bins = 0;
            for &value in values.iter().filter(|value| !value.is_nan()) {
                if value < 0.0 || value.fract() != 0.0 || value >= MAX_CATEGORY_CODES as f64 {
                    return Err(TrainError::Fit {
                        model: "gbdt",
                        reason: format!(
                            "category code {value} out of range 0 to {}",
                            MAX_CATEGORY_CODES - 1
                        ),
                    });
                }
                n_bins = n_bins.max(value as usize + 1);
            }
            let bins = values
                .iter()
                .map(|&value| {
                    if value.is_nan() {
                        n_bins as u8
                    } else {
                        value as u8
                    }
                })
                .collect();
            return Ok(BinnedColumn {
                categorical,
                upper: Vec::new(),
                n_bins,
                offset: 0,
                bins,
            });
        }
        let upper = bin_uppers(values, max_bins);
        let n_bins = upper.len() + 1;
        let bins = values
            .iter()
            .map(|&value| {
                if value.is_nan() {
                    n_bins as u8
                } else {
                    upper.partition_point(|&bound| bound < value) as u8
                }
            })
            .collect();
        Ok(BinnedColumn {
            categorical,
            upper,
            n_bins,
            offset: 0,
            bins,
        })
    }

    /// Histogram slots: the value bins and the missing bin.
    pub(super) fn slots(&self) -> usize {
        self.n_bins + 1
    }
}

/// Places each column's slots after the previous column's in one histogram; returns its length.
pub(super) fn lay_out_histogram(columns: &mut [BinnedColumn]) -> usize {
    let mut offset = 0;
    for column in columns {
        column.offset = offset;
        offset += column.slots();
    }
    offset
}

/// Returns bin upper bounds for a numeric column: every distinct value its own bin when they fit,
/// else bins of about equal row counts. Bounds are midpoints between neighbouring values.
pub(super) fn bin_uppers(values: &[f64], max_bins: usize) -> Vec<f64> {
    let mut present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    present.sort_by(f64::total_cmp);
    let mut distinct: Vec<(f64, usize)> = Vec::new();
    for value in present.iter().copied() {
        match distinct.last_mut() {
            Some((last, count)) if *last == value => *count += 1,
            _ => distinct.push((value, 1)),
        }
    }
    let midpoint = |i: usize| (distinct[i].0 + distinct[i + 1].0) / 2.0;
    if distinct.len() <= max_bins {
        return (0..distinct.len().saturating_sub(1))
            .map(midpoint)
            .collect();
    }
    let total = present.len() as f64;
    let mut upper = Vec::with_capacity(max_bins - 1);
    let mut in_bin = 0usize;
    let mut before = 0usize;
    for (i, &(_, count)) in distinct.iter().enumerate().take(distinct.len() - 1) {
        in_bin += count;
        let bins_left = max_bins - upper.len();
        let target = (total - before as f64) / bins_left as f64;
        if in_bin as f64 >= target && upper.len() < max_bins - 1 {
            upper.push(midpoint(i));
            before += in_bin;
            in_bin = 0;
        }
    }
    upper
}

impl Grower<'_> {
    pub(super) fn histogram(&self, rows: &[u32]) -> Vec<Bin> {
        let mut histogram = vec![Bin::default(); self.histogram_len];
        // Gathered once, read in order by every feature (LightGBM's ordered gradients).
        let ordered: Vec<[f64; 2]> = rows
            .iter()
            .map(|&row| self.gradients[row as usize])
            .collect();
        let mut slices: Vec<(&BinnedColumn, &mut [Bin])> = Vec::with_capacity(self.columns.len());
        let mut rest = histogram.as_mut_slice();
        for column in self.columns {
            let (own, tail) = rest.split_at_mut(column.slots());
            slices.push((column, own));
            rest = tail;
        }
        let fill = |(column, slots): (&BinnedColumn, &mut [Bin])| {
            if slots.len() <= FEW_SLOTS {
                fill_in_lanes(&column.bins, rows, &ordered, slots);
            } else {
                for (&row, &[gradient, hessian]) in rows.iter().zip(&ordered) {
                    slots[column.bins[row as usize] as usize].add_row(gradient, hessian);
                }
            }
        };
        let allowed = slices
            .into_iter()
            .enumerate()
            .filter(|(feature, _)| self.allowed[*feature])
            .map(|(_, slice)| slice);
        // Small nodes are quicker on one thread than split across threads.
        if rows.len() >= 4096 {
            allowed.collect::<Vec<_>>().into_par_iter().for_each(fill);
        } else {
            allowed.for_each(fill);
        }
        histogram
    }
}
