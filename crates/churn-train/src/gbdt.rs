//! Histogram gradient boosting for binary log loss, producing a `churn_core::TreeEnsemble`.
//!
//! The recipe is LightGBM's: per-column quantile bins (at most 255, plus one for missing values),
//! leaf-wise growth (split the leaf with the largest gain next), histograms built for the smaller
//! child and subtracted from the parent for the larger, a learned default direction for missing
//! values, native categorical splits (categories sorted by gradient ratio, the best set from
//! either end sent left, under LightGBM's rules against fitting rare categories),
//! L2 on leaf values, row and column subsampling, and early stopping on a stratified validation
//! split. Histograms are built feature by feature on all cores; every sum runs in a fixed order,
//! so the model depends on the seed only.
//!
//! Bins exist only in training: each split is written with a raw-value threshold (the midpoint
//! between the bins it separates) or a category mask, so `churn-core` scores without them.

use churn_core::tree::MAX_CATEGORY_CODES;
use churn_core::{Tree, TreeEnsemble, sigmoid};
use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Parameters of the booster, as given (see [`GbdtParams::check`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtParams {
    /// Most trees; early stopping usually ends sooner.
    pub max_trees: usize,
    pub learning_rate: f64,
    pub max_leaves: usize,
    /// Deepest a leaf may be; 0 for no limit beyond `max_leaves`.
    pub max_depth: usize,
    pub min_data_in_leaf: usize,
    pub min_hessian_in_leaf: f64,
    /// L2 penalty on leaf values.
    pub l2: f64,
    /// A split must reduce the loss by at least this much.
    pub min_split_gain: f64,
    /// Most bins per numeric column (2 to 255).
    pub max_bins: usize,
    /// Added to a category's hessian when categories are ordered for a split; tames rare ones.
    pub category_smoothing: f64,
    /// Columns of at most this many categories are split on any prefix of their ratio order,
    /// free of the four rules below, which are for columns of many categories (LightGBM's
    /// `max_cat_to_onehot`).
    pub few_categories: usize,
    /// Added to `l2` when a categorical split's gain is measured, so that a column of many
    /// categories does not win by fitting each one (LightGBM's `cat_l2`).
    pub category_l2: f64,
    /// Categories with fewer rows in a leaf are never picked out by its split; they go with
    /// the rest (LightGBM's `cat_smooth` used as a count).
    pub min_data_per_category: usize,
    /// A categorical split is tried only once the categories it adds since the last one tried
    /// hold this many rows, and only with this many rows on the other side
    /// (LightGBM's `min_data_per_group`).
    pub min_data_per_group: usize,
    /// Most categories a split picks out (LightGBM's `max_cat_threshold`).
    pub max_categories_picked: usize,
    /// Share of rows each tree learns from (bagging without replacement); 1 for all.
    pub row_subsample: f64,
    /// Share of columns each tree may split on; 1 for all.
    pub column_subsample: f64,
    /// Stop after this many trees without improving validation log loss; 0 turns early
    /// stopping off and every training row is used.
    pub early_stopping_rounds: usize,
    /// Share of training rows held out (stratified) for early stopping.
    pub validation_fraction: f64,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            max_trees: 1000,
            learning_rate: 0.05,
            max_leaves: 15,
            max_depth: 0,
            min_data_in_leaf: 20,
            min_hessian_in_leaf: 1e-3,
            l2: 1.0,
            min_split_gain: 0.0,
            max_bins: 255,
            category_smoothing: 10.0,
            few_categories: 4,
            category_l2: 10.0,
            min_data_per_category: 10,
            min_data_per_group: 100,
            max_categories_picked: 32,
            row_subsample: 1.0,
            column_subsample: 1.0,
            early_stopping_rounds: 50,
            validation_fraction: 0.1,
        }
    }
}

/// Checked booster parameters; only these can fit.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidGbdtParams(GbdtParams);

impl GbdtParams {
    /// Checks the parameters.
    pub fn check(self) -> Result<ValidGbdtParams> {
        let invalid = |name: &'static str, value: String, reason: &'static str| {
            Err(TrainError::InvalidParam {
                name,
                value,
                reason,
            })
        };
        let share = |x: f64| x.is_finite() && 0.0 < x && x <= 1.0;
        if self.max_trees == 0 {
            return invalid("max_trees", "0".into(), "must be at least 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return invalid(
                "learning_rate",
                self.learning_rate.to_string(),
                "must be a finite number > 0",
            );
        }
        // A tree with n leaves is at most n - 1 levels deep; scoring refuses deeper trees. The
        // assertion keeps the message below true.
        const _: () = assert!(churn_core::compiled::MAX_TREE_DEPTH == 512);
        if !(2..=churn_core::compiled::MAX_TREE_DEPTH).contains(&self.max_leaves) {
            return invalid(
                "max_leaves",
                self.max_leaves.to_string(),
                "must be between 2 and 512",
            );
        }
        if self.min_data_in_leaf == 0 {
            return invalid("min_data_in_leaf", "0".into(), "must be at least 1");
        }
        for (name, value) in [
            ("min_hessian_in_leaf", self.min_hessian_in_leaf),
            ("l2", self.l2),
            ("min_split_gain", self.min_split_gain),
            ("category_smoothing", self.category_smoothing),
            ("category_l2", self.category_l2),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return invalid(name, value.to_string(), "must be a finite number ≥ 0");
            }
        }
        if self.max_categories_picked == 0 {
            return invalid("max_categories_picked", "0".into(), "must be at least 1");
        }
        if !(2..=255).contains(&self.max_bins) {
            return invalid(
                "max_bins",
                self.max_bins.to_string(),
                "must be between 2 and 255",
            );
        }
        for (name, value) in [
            ("row_subsample", self.row_subsample),
            ("column_subsample", self.column_subsample),
        ] {
            if !share(value) {
                return invalid(name, value.to_string(), "must be in (0, 1]");
            }
        }
        if self.early_stopping_rounds > 0
            && !(self.validation_fraction > 0.0 && self.validation_fraction < 0.5)
        {
            return invalid(
                "validation_fraction",
                self.validation_fraction.to_string(),
                "must be in (0, 0.5) when early stopping is on",
            );
        }
        Ok(ValidGbdtParams(self))
    }
}

/// A fitted ensemble with what early stopping saw.
#[derive(Debug, Clone)]
pub struct FittedGbdt {
    pub ensemble: TreeEnsemble,
    /// Margins and labels of the validation rows (empty without early stopping), for calibration.
    pub validation_margins: Vec<f64>,
    pub validation_labels: Vec<bool>,
    /// Trees grown before early stopping ended the boosting.
    pub trees_grown: usize,
}

/// Sums of gradients, hessians and rows over a set of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Bin {
    gradient: f64,
    hessian: f64,
    count: f64,
}

impl Bin {
    #[inline]
    fn add_row(&mut self, gradient: f64, hessian: f64) {
        self.gradient += gradient;
        self.hessian += hessian;
        self.count += 1.0;
    }

    fn add(&mut self, other: &Bin) {
        self.gradient += other.gradient;
        self.hessian += other.hessian;
        self.count += other.count;
    }

    fn minus(&self, other: &Bin) -> Bin {
        Bin {
            gradient: self.gradient - other.gradient,
            hessian: self.hessian - other.hessian,
            count: self.count - other.count,
        }
    }
}

/// Most histogram slots of a column filled in [`LANES`] interleaved copies.
const FEW_SLOTS: usize = 16;

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
struct BinnedColumn {
    categorical: bool,
    /// Numeric columns: upper bound of each bin but the last (bin `t` holds `x <= upper[t]`).
    upper: Vec<f64>,
    n_bins: usize,
    /// Histogram offset of this column's first bin.
    offset: usize,
    bins: Vec<u8>,
}

impl BinnedColumn {
    fn new(values: &[f64], categorical: bool, max_bins: usize) -> Result<Self> {
        if categorical {
            let mut n_bins = 0;
            for &value in values.iter().filter(|value| !value.is_nan()) {
                if value < 0.0 || value.fract() != 0.0 || value >= MAX_CATEGORY_CODES as f64 {
                    return Err(TrainError::Fit {
                        model: "gbdt",
                        reason: format!("category code {value} out of range"),
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
    fn slots(&self) -> usize {
        self.n_bins + 1
    }
}

/// Places each column's slots after the previous column's in one histogram; returns its length.
fn lay_out_histogram(columns: &mut [BinnedColumn]) -> usize {
    let mut offset = 0;
    for column in columns {
        column.offset = offset;
        offset += column.slots();
    }
    offset
}

/// Returns bin upper bounds for a numeric column: every distinct value its own bin when they fit,
/// else bins of about equal row counts. Bounds are midpoints between neighbouring values.
fn bin_uppers(values: &[f64], max_bins: usize) -> Vec<f64> {
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

/// The best way found to split one leaf.
#[derive(Debug, Clone, Copy)]
struct Split {
    gain: f64,
    feature: usize,
    /// Numeric: values in bins `0..=bin` go left.
    bin: usize,
    /// Categorical: codes sent left.
    mask: u64,
    default_left: bool,
    left: Bin,
    right: Bin,
}

/// A leaf of the tree being grown.
struct Leaf {
    node: usize,
    depth: usize,
    rows: Vec<u32>,
    histogram: Vec<Bin>,
    total: Bin,
    best: Option<Split>,
}

/// Everything fixed while one tree grows.
struct Grower<'a> {
    params: &'a GbdtParams,
    columns: &'a [BinnedColumn],
    histogram_len: usize,
    /// Gradient and hessian per training row.
    gradients: &'a [[f64; 2]],
    /// Columns this tree may split on.
    allowed: Vec<bool>,
}

impl Grower<'_> {
    fn histogram(&self, rows: &[u32]) -> Vec<Bin> {
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

    /// Offers `try_left` the category sets of a categorical column worth trying, ordered by
    /// smoothed gradient ratio. A column of few categories offers every prefix. Otherwise
    /// LightGBM's way: only categories with enough rows, sets grown from either end (the
    /// categories most and least likely to churn), tried when the rows added since the last
    /// set tried reach `min_data_per_group`, each gain taken with `category_l2` more L2 than
    /// the leaf's own.
    fn categorical_splits(
        &self,
        slots: &[Bin],
        total: &Bin,
        try_left: &mut impl FnMut(Bin, usize, u64, f64),
    ) {
        let params = self.params;
        let n_bins = slots.len() - 1;
        // Few categories: every prefix from the low end, at the leaf's own L2, is the same
        // search with no floor, no groups and no penalty.
        let few = n_bins <= params.few_categories;
        let (floor, group, penalty) = if few {
            (1, 0.0, 0.0)
        } else {
            (
                params.min_data_per_category.max(1),
                params.min_data_per_group as f64,
                params.category_l2,
            )
        };
        let mut frequent: Vec<usize> = (0..n_bins)
            .filter(|&bin| slots[bin].count >= floor as f64)
            .collect();
        let ratio =
            |bin: usize| slots[bin].gradient / (slots[bin].hessian + params.category_smoothing);
        frequent.sort_by(|&a, &b| ratio(a).total_cmp(&ratio(b)).then(a.cmp(&b)));
        let (most, ends): (usize, &[bool]) = if few {
            (frequent.len().saturating_sub(1), &[false])
        } else {
            (
                params.max_categories_picked.min(frequent.len().div_ceil(2)),
                &[false, true],
            )
        };
        for &from_high_end in ends {
            let (mut left, mut mask, mut added) = (Bin::default(), 0u64, 0.0);
            for index in 0..most {
                let bin = if from_high_end {
                    frequent[frequent.len() - 1 - index]
                } else {
                    frequent[index]
                };
                left.add(&slots[bin]);
                mask |= 1 << bin;
                added += slots[bin].count;
                if total.count - left.count < group {
                    break;
                }
                if added < group {
                    continue;
                }
                added = 0.0;
                try_left(left, bin, mask, penalty);
            }
        }
    }

    fn admissible(&self, side: &Bin) -> bool {
        side.count >= self.params.min_data_in_leaf as f64
            && side.hessian >= self.params.min_hessian_in_leaf
    }

    /// Returns the best split of a leaf, or `None` when no split gains enough.
    fn best_split(&self, histogram: &[Bin], total: &Bin, depth: usize) -> Option<Split> {
        if self.params.max_depth > 0 && depth >= self.params.max_depth {
            return None;
        }
        if total.count < 2.0 * self.params.min_data_in_leaf as f64 {
            return None;
        }
        let score = |bin: &Bin, l2: f64| bin.gradient * bin.gradient / (bin.hessian + l2);
        let parent_score = score(total, self.params.l2);
        let mut best: Option<Split> = None;
        let mut consider = |candidate: Split| {
            if candidate.gain > self.params.min_split_gain
                && best.is_none_or(|current| candidate.gain > current.gain)
            {
                best = Some(candidate);
            }
        };
        for (feature, column) in self.columns.iter().enumerate() {
            if !self.allowed[feature] {
                continue;
            }
            let slots = &histogram[column.offset..column.offset + column.slots()];
            let missing = slots[column.n_bins];
            let mut try_left = |left: Bin, bin: usize, mask: u64, penalty: f64| {
                for default_left in [false, true] {
                    if default_left && missing.count == 0.0 {
                        continue;
                    }
                    let mut left_side = left;
                    if default_left {
                        left_side.add(&missing);
                    }
                    let right_side = total.minus(&left_side);
                    if !(self.admissible(&left_side) && self.admissible(&right_side)) {
                        continue;
                    }
                    let l2 = self.params.l2 + penalty;
                    let gain = score(&left_side, l2) + score(&right_side, l2) - parent_score;
                    // With no missing values here, unseen ones go where most rows went.
                    let default_left = if missing.count == 0.0 {
                        left_side.count >= right_side.count
                    } else {
                        default_left
                    };
                    consider(Split {
                        gain,
                        feature,
                        bin,
                        mask,
                        default_left,
                        left: left_side,
                        right: right_side,
                    });
                }
            };
            if column.categorical {
                self.categorical_splits(slots, total, &mut try_left);
                continue;
            }
            let mut left = Bin::default();
            let values = &slots[..column.n_bins.saturating_sub(1)];
            for (bin, slot) in values.iter().enumerate() {
                left.add(slot);
                // An empty bin gives the same partition as its neighbour.
                if slot.count > 0.0 {
                    try_left(left, bin, 0, 0.0);
                }
            }
        }
        best
    }

    /// Splits `rows` into those `split` sends left and right, keeping their order. Each row
    /// is written to both sides and only the side it goes to moves on, so the loop has no
    /// branch on the data, whose direction is a coin toss at most splits.
    fn partition(&self, split: &Split, rows: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let column = &self.columns[split.feature];
        // Per bin, 1 when it goes left.
        let mut goes_left = [0u8; 256];
        for (bin, left) in goes_left.iter_mut().enumerate().take(column.slots()) {
            let sent_left = if bin == column.n_bins {
                split.default_left
            } else if column.categorical {
                (split.mask >> bin) & 1 == 1
            } else {
                bin <= split.bin
            };
            *left = u8::from(sent_left);
        }
        // Sized by the split's counts, which the histogram took from these rows; one spare
        // slot on each side takes the writes of rows that go the other way.
        let mut left = vec![0; split.left.count as usize + 1];
        let mut right = vec![0; split.right.count as usize + 1];
        let (mut n_left, mut n_right) = (0, 0);
        for &row in rows {
            let sent_left = usize::from(goes_left[usize::from(column.bins[row as usize])]);
            left[n_left] = row;
            right[n_right] = row;
            n_left += sent_left;
            n_right += 1 - sent_left;
        }
        left.truncate(n_left);
        right.truncate(n_right);
        (left, right)
    }

    fn leaf_value(&self, total: &Bin) -> f64 {
        -total.gradient / (total.hessian + self.params.l2) * self.params.learning_rate
    }

    /// Grows one tree on `rows`, leaf-wise. Returns it with each leaf's value and rows.
    fn grow(&self, rows: Vec<u32>) -> (Tree, Vec<(f64, Vec<u32>)>) {
        let mut tree = Tree::empty();
        let histogram = self.histogram(&rows);
        let mut total = Bin::default();
        for &row in &rows {
            let [gradient, hessian] = self.gradients[row as usize];
            total.add(&Bin {
                gradient,
                hessian,
                count: 1.0,
            });
        }
        tree.push_leaf(total.count);
        let best = self.best_split(&histogram, &total, 0);
        let mut leaves = vec![Leaf {
            node: 0,
            depth: 0,
            rows,
            histogram,
            total,
            best,
        }];
        let mut n_leaves = 1;
        while n_leaves < self.params.max_leaves {
            // The leaf with the largest gain; ties go to the earliest, for determinism.
            let mut chosen: Option<(usize, f64)> = None;
            for (index, leaf) in leaves.iter().enumerate() {
                if let Some(split) = &leaf.best
                    && chosen.is_none_or(|(_, gain)| split.gain > gain)
                {
                    chosen = Some((index, split.gain));
                }
            }
            let Some((index, _)) = chosen else { break };
            let leaf = leaves.swap_remove(index);
            let Some(split) = leaf.best else { break };
            let (left_rows, right_rows) = self.partition(&split, &leaf.rows);
            let (small_rows, small_is_left) = if left_rows.len() <= right_rows.len() {
                (&left_rows, true)
            } else {
                (&right_rows, false)
            };
            let small = self.histogram(small_rows);
            let large: Vec<Bin> = leaf
                .histogram
                .iter()
                .zip(&small)
                .map(|(parent, child)| parent.minus(child))
                .collect();
            let (left_histogram, right_histogram) = if small_is_left {
                (small, large)
            } else {
                (large, small)
            };

            let column = &self.columns[split.feature];
            let left_node = tree.push_leaf(split.left.count);
            let right_node = tree.push_leaf(split.right.count);
            let node = leaf.node;
            tree.feature[node] = split.feature as u32;
            if column.categorical {
                tree.left_categories[node] = split.mask;
            } else {
                tree.threshold[node] = column.upper[split.bin];
            }
            tree.default_left[node] = split.default_left;
            tree.left[node] = left_node as u32;
            tree.right[node] = right_node as u32;

            let depth = leaf.depth + 1;
            for (node, rows, histogram, total) in [
                (left_node, left_rows, left_histogram, split.left),
                (right_node, right_rows, right_histogram, split.right),
            ] {
                let best = self.best_split(&histogram, &total, depth);
                leaves.push(Leaf {
                    node,
                    depth,
                    rows,
                    histogram,
                    total,
                    best,
                });
            }
            n_leaves += 1;
        }
        let mut leaf_rows = Vec::with_capacity(leaves.len());
        for leaf in leaves {
            let value = self.leaf_value(&leaf.total);
            tree.value[leaf.node] = value;
            leaf_rows.push((value, leaf.rows));
        }
        (tree, leaf_rows)
    }
}

fn log_loss(margins: &[f64], labels: &[bool]) -> f64 {
    let total: f64 = margins
        .iter()
        .zip(labels)
        .map(|(&margin, &label)| {
            // log(1 + e^-m) for churners, log(1 + e^m) otherwise, computed stably.
            let signed = if label { -margin } else { margin };
            signed.max(0.0) + (-signed.abs()).exp().ln_1p()
        })
        .sum();
    total / margins.len().max(1) as f64
}

impl ValidGbdtParams {
    /// Returns the parameters.
    pub fn params(&self) -> &GbdtParams {
        &self.0
    }

    /// Fits on encoded rows `x` (NaN for missing) with churn labels `y`; `categorical[k]` says
    /// whether column `k` holds category codes. `seed` drives the validation split and sampling.
    pub fn fit(
        &self,
        x: &Array2<f64>,
        categorical: &[bool],
        y: &[bool],
        seed: u64,
    ) -> Result<FittedGbdt> {
        self.fit_grouped(x, categorical, y, None, seed)
    }

    /// Fits like [`fit`](Self::fit); with `groups` (a customer id per row, when customers recur
    /// across snapshots) the early-stopping validation rows are whole customers, so stopping
    /// measures customers the trees have not seen rather than rewarding memorised ones.
    pub fn fit_grouped(
        &self,
        x: &Array2<f64>,
        categorical: &[bool],
        y: &[bool],
        groups: Option<&[String]>,
        seed: u64,
    ) -> Result<FittedGbdt> {
        let params = &self.0;
        let fit_error = |reason: String| TrainError::Fit {
            model: "gbdt",
            reason,
        };
        if x.nrows() != y.len() || x.ncols() != categorical.len() || x.nrows() == 0 {
            return Err(fit_error(format!(
                "{} rows × {} columns for {} labels and {} column kinds",
                x.nrows(),
                x.ncols(),
                y.len(),
                categorical.len()
            )));
        }
        if x.iter().any(|value| value.is_infinite()) {
            return Err(fit_error("infinite value in the encoded rows".into()));
        }
        let (train_rows, validation_rows) = if params.early_stopping_rounds > 0 {
            let split = match groups {
                Some(groups) => {
                    churn_data::grouped_split(groups, y, params.validation_fraction, seed)?
                }
                None => churn_data::stratified_split(y, params.validation_fraction, seed)?,
            };
            (split.train, split.test)
        } else {
            ((0..y.len()).collect(), Vec::new())
        };

        let mut columns = (0..x.ncols())
            .map(|k| {
                let values: Vec<f64> = train_rows.iter().map(|&row| x[[row, k]]).collect();
                BinnedColumn::new(&values, categorical[k], params.max_bins)
            })
            .collect::<Result<Vec<_>>>()?;
        let histogram_len = lay_out_histogram(&mut columns);

        let labels: Vec<bool> = train_rows.iter().map(|&row| y[row]).collect();
        let positives = labels.iter().filter(|&&label| label).count() as f64;
        let rate = (positives / labels.len() as f64).clamp(1e-6, 1.0 - 1e-6);
        let base_score = (rate / (1.0 - rate)).ln();
        // Trees walk rows as slices; a standard-layout matrix is borrowed, not copied.
        let standard = x.as_standard_layout();
        let data = standard
            .as_slice()
            .ok_or_else(|| fit_error("encoded rows are not contiguous".into()))?;
        let width = x.ncols();
        let row_of = |row: usize| &data[row * width..(row + 1) * width];
        let validation_labels: Vec<bool> = validation_rows.iter().map(|&row| y[row]).collect();

        let mut margins = vec![base_score; train_rows.len()];
        let mut validation_margins = vec![base_score; validation_rows.len()];
        let mut gradients = vec![[0.0; 2]; train_rows.len()];
        let mut trees: Vec<Tree> = Vec::new();
        let mut best = (f64::INFINITY, 0usize);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let all_rows: Vec<u32> = (0..train_rows.len() as u32).collect();
        let n_sampled_columns =
            ((columns.len() as f64 * params.column_subsample).ceil() as usize).max(1);

        for iteration in 0..params.max_trees {
            gradients
                .par_iter_mut()
                .zip(&margins)
                .zip(&labels)
                .for_each(|((slot, &margin), &label)| {
                    let probability = sigmoid(margin);
                    let target = if label { 1.0 } else { 0.0 };
                    *slot = [
                        probability - target,
                        (probability * (1.0 - probability)).max(1e-16),
                    ];
                });
            let rows = if params.row_subsample < 1.0 {
                let n = ((all_rows.len() as f64 * params.row_subsample).ceil() as usize).max(1);
                let mut sample: Vec<u32> = all_rows.choose_multiple(&mut rng, n).copied().collect();
                sample.sort_unstable();
                sample
            } else {
                all_rows.clone()
            };
            let mut allowed = vec![true; columns.len()];
            if n_sampled_columns < columns.len() {
                allowed.fill(false);
                let mut order: Vec<usize> = (0..columns.len()).collect();
                order.shuffle(&mut rng);
                for &feature in &order[..n_sampled_columns] {
                    allowed[feature] = true;
                }
            }
            let grower = Grower {
                params,
                columns: &columns,
                histogram_len,
                gradients: &gradients,
                allowed,
            };
            let (tree, leaf_rows) = grower.grow(rows);
            if tree.len() == 1 && iteration > 0 {
                // Nothing left to learn: a lone leaf would only shift every score alike.
                break;
            }
            if params.row_subsample < 1.0 {
                margins
                    .par_iter_mut()
                    .zip(&train_rows)
                    .for_each(|(margin, &row)| *margin += tree.predict(row_of(row)));
            } else {
                // Every row sits in exactly one leaf: no need to walk the tree.
                for (value, rows) in &leaf_rows {
                    for &row in rows {
                        margins[row as usize] += value;
                    }
                }
            }
            validation_margins
                .par_iter_mut()
                .zip(&validation_rows)
                .for_each(|(margin, &row)| *margin += tree.predict(row_of(row)));
            trees.push(tree);
            if params.early_stopping_rounds > 0 {
                let loss = log_loss(&validation_margins, &validation_labels);
                if loss < best.0 {
                    best = (loss, trees.len());
                } else if trees.len() - best.1 >= params.early_stopping_rounds {
                    break;
                }
            }
        }
        let trees_grown = trees.len();
        if params.early_stopping_rounds > 0 {
            trees.truncate(best.1.max(1));
        }
        let ensemble = TreeEnsemble { base_score, trees };
        let validation_margins = validation_rows
            .iter()
            .map(|&row| ensemble.margin(row_of(row)))
            .collect();
        Ok(FittedGbdt {
            ensemble,
            validation_margins,
            validation_labels,
            trees_grown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_core::CompiledTrees;

    #[test]
    fn bins_split_between_distinct_values_and_balance_counts() {
        assert_eq!(
            bin_uppers(&[3.0, 1.0, 2.0, 2.0, f64::NAN], 255),
            vec![1.5, 2.5]
        );
        let many: Vec<f64> = (0..1000).map(f64::from).collect();
        let upper = bin_uppers(&many, 4);
        assert_eq!(upper.len(), 3);
        // Four bins of 250 values each: bounds between 249|250, 499|500, 749|750.
        assert_eq!(upper, vec![249.5, 499.5, 749.5]);
    }

    /// Columns of every kind the histogram fills differently: a two-code category, a few-bin
    /// numeric column with missing values (both filled in lanes) and one of 255 bins; with
    /// random gradients, and an odd subset of rows so that lanes leave a remainder.
    fn binned_columns() -> (Vec<BinnedColumn>, Vec<[f64; 2]>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 5003;
        let mut draw = |k: u32| f64::from(rand::Rng::gen_range(&mut rng, 0..k));
        let code: Vec<f64> = (0..n).map(|_| draw(2)).collect();
        let few: Vec<f64> = (0..n)
            .map(|_| {
                let value = draw(5);
                if value == 4.0 { f64::NAN } else { value }
            })
            .collect();
        let many: Vec<f64> = (0..n).map(|_| draw(1000)).collect();
        let mut columns = vec![
            BinnedColumn::new(&code, true, 255).unwrap(),
            BinnedColumn::new(&few, false, 255).unwrap(),
            BinnedColumn::new(&many, false, 255).unwrap(),
        ];
        lay_out_histogram(&mut columns);
        assert!(columns[1].slots() <= FEW_SLOTS && columns[2].slots() > FEW_SLOTS);
        let gradients = (0..n)
            .map(|_| [draw(2001) / 1000.0 - 1.0, draw(250) / 1000.0 + 1e-3])
            .collect();
        let rows = (0..n as u32).filter(|_| draw(3) > 0.0).collect();
        (columns, gradients, rows)
    }

    fn grower<'a>(
        params: &'a GbdtParams,
        columns: &'a [BinnedColumn],
        gradients: &'a [[f64; 2]],
    ) -> Grower<'a> {
        Grower {
            params,
            columns,
            histogram_len: columns.iter().map(BinnedColumn::slots).sum(),
            gradients,
            allowed: vec![true; columns.len()],
        }
    }

    #[test]
    fn histograms_in_lanes_equal_plain_sums() {
        let (columns, gradients, rows) = binned_columns();
        let params = GbdtParams::default();
        let histogram = grower(&params, &columns, &gradients).histogram(&rows);
        for column in &columns {
            let mut plain = vec![Bin::default(); column.slots()];
            for &row in &rows {
                let [gradient, hessian] = gradients[row as usize];
                plain[column.bins[row as usize] as usize].add_row(gradient, hessian);
            }
            let filled = &histogram[column.offset..][..column.slots()];
            for (bin, (filled, plain)) in filled.iter().zip(&plain).enumerate() {
                assert_eq!(filled.count, plain.count, "bin {bin}");
                assert!((filled.gradient - plain.gradient).abs() < 1e-9, "bin {bin}");
                assert!((filled.hessian - plain.hessian).abs() < 1e-9, "bin {bin}");
            }
            assert!(plain.iter().filter(|bin| bin.count > 0.0).count() >= 2);
        }
    }

    #[test]
    fn partitions_keep_order_and_follow_the_split() {
        let (columns, gradients, rows) = binned_columns();
        let params = GbdtParams::default();
        let grower = grower(&params, &columns, &gradients);
        // Codes: code 1 left. Few bins: up to bin 1, missing (bin 4) left or right. Many: bin 100.
        let splits = [
            (0, 0, 0b10, false),
            (1, 1, 0, true),
            (1, 1, 0, false),
            (2, 100, 0, false),
        ];
        for (feature, bin, mask, default_left) in splits {
            let column = &columns[feature];
            let goes_left = |row: &u32| {
                let value = column.bins[*row as usize] as usize;
                if value == column.n_bins {
                    default_left
                } else if column.categorical {
                    mask >> value & 1 == 1
                } else {
                    value <= bin
                }
            };
            let expected: (Vec<u32>, Vec<u32>) = rows.iter().partition(|row| goes_left(row));
            let count = |rows: &[u32]| Bin {
                count: rows.len() as f64,
                ..Bin::default()
            };
            let split = Split {
                gain: 1.0,
                feature,
                bin,
                mask,
                default_left,
                left: count(&expected.0),
                right: count(&expected.1),
            };
            assert!(!expected.0.is_empty() && !expected.1.is_empty());
            assert_eq!(
                grower.partition(&split, &rows),
                expected,
                "{feature} {default_left}"
            );
        }
    }

    /// A leaf's histogram over one categorical column of eight codes, 0.25 hessian a row:
    /// code 0 has 5 rows and the churniest gradient ratio of all, codes 1 and 2 have 200 rows
    /// and churn, codes 3..=7 have 200 rows and churn a little less than average; no missing
    /// values.
    fn category_histogram() -> (Vec<BinnedColumn>, Vec<Bin>, Bin) {
        let codes: Vec<f64> = (0..8).map(f64::from).collect();
        let mut columns = vec![BinnedColumn::new(&codes, true, 255).unwrap()];
        lay_out_histogram(&mut columns);
        let sums = [(5.0, -10.0), (200.0, -50.0), (200.0, -40.0)]
            .into_iter()
            .chain([0.0, 1.0, 2.0, 3.0, 4.0].map(|gradient| (200.0, gradient)));
        let (histogram, total) = code_histogram(sums);
        (columns, histogram, total)
    }

    /// A categorical column's histogram from each code's (rows, gradient sum) at 0.25 hessian a
    /// row, with an empty slot for missing values; and its total.
    fn code_histogram(sums: impl IntoIterator<Item = (f64, f64)>) -> (Vec<Bin>, Bin) {
        let mut histogram: Vec<Bin> = sums
            .into_iter()
            .map(|(count, gradient)| Bin {
                gradient,
                hessian: 0.25 * count,
                count,
            })
            .collect();
        histogram.push(Bin::default());
        let mut total = Bin::default();
        histogram.iter().for_each(|bin| total.add(bin));
        (histogram, total)
    }

    /// Expected splits and gains from LightGBM's search re-derived in Python from
    /// feature_histogram.hpp (FindBestThresholdCategoricalInner: categories with at least
    /// `cat_smooth` rows sorted by smoothed ratio, sets grown from both ends up to
    /// `max_cat_threshold` and half the categories, tried every `min_data_per_group` rows, the
    /// children scored with `cat_l2` more L2 than the parent), run on this histogram.
    #[test]
    fn categorical_splits_follow_lightgbms_rules() {
        let (columns, histogram, total) = category_histogram();
        let best =
            |params: GbdtParams| grower(&params, &columns, &[]).best_split(&histogram, &total, 0);
        let defaults = GbdtParams::default();
        let cases = [
            // The two churny codes; code 0, too rare to pick out, goes with the rest.
            (defaults.clone(), Some((0b110, 400.0, 49.977941035428614))),
            // Without the count rule, its ratio puts it first and it joins them.
            (
                GbdtParams {
                    min_data_per_category: 1,
                    ..defaults.clone()
                },
                Some((0b111, 405.0, 66.47496951310374)),
            ),
            // At most `max_categories_picked` codes.
            (
                GbdtParams {
                    max_categories_picked: 1,
                    ..defaults.clone()
                },
                Some((0b10, 200.0, 23.112673899256233)),
            ),
            // Sets are tried once they add `min_data_per_group` rows: 500 takes three codes.
            (
                GbdtParams {
                    min_data_per_group: 500,
                    ..defaults.clone()
                },
                Some((0b1110, 600.0, 27.31552706866682)),
            ),
            // And never with fewer rows than that on the other side.
            (
                GbdtParams {
                    min_data_per_group: 1000,
                    ..defaults
                },
                None,
            ),
        ];
        for (params, expected) in cases {
            let found =
                best(params.clone()).map(|split| (split.mask, split.left.count, split.gain));
            match (found, expected) {
                (Some((mask, count, gain)), Some((want_mask, want_count, want_gain))) => {
                    assert_eq!((mask, count), (want_mask, want_count), "{params:?}");
                    assert!((gain - want_gain).abs() < 1e-9, "{gain} {want_gain}");
                }
                _ => assert_eq!(found.is_none(), expected.is_none(), "{params:?}"),
            }
        }
    }

    #[test]
    fn a_column_of_few_categories_may_send_any_prefix_left() {
        // Code 0: 5 rows and the churniest ratio; code 1 churns; code 2 does not.
        let codes = [0.0, 1.0, 2.0];
        let mut columns = vec![BinnedColumn::new(&codes, true, 255).unwrap()];
        lay_out_histogram(&mut columns);
        let (histogram, total) = code_histogram([(5.0, -10.0), (200.0, -50.0), (200.0, 40.0)]);
        let best = |params: GbdtParams| {
            let split = grower(&params, &columns, &[])
                .best_split(&histogram, &total, 0)
                .expect("a split");
            (split.mask, split.gain)
        };
        // Three codes are few: codes 0 and 1 go left together, the gain at the leaf's own L2
        // (Python: g²/(h + 1) summed over the sides, less the parent's).
        let (mask, gain) = best(GbdtParams::default());
        assert_eq!(mask, 0b011);
        assert!((gain - 96.36009011061053).abs() < 1e-9, "{gain}");
        // Counted as many, the rules apply: code 0 is too rare, one code at most is picked, and
        // code 2 alone wins (LightGBM's search re-derived in Python).
        let (mask, gain) = best(GbdtParams {
            few_categories: 2,
            ..GbdtParams::default()
        });
        assert_eq!(mask, 0b100);
        assert!((gain - 80.14885305782833).abs() < 1e-9, "{gain}");
    }

    /// Churn from one numeric column, and a column of 60 codes drawn at random (noise that a
    /// split can fit: each code holds about 50 rows).
    fn noise_category(n: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut data = Vec::with_capacity(n * 2);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let x: f64 = rand::Rng::r#gen(&mut rng);
            let code = f64::from(rand::Rng::gen_range(&mut rng, 0..60u8));
            let churn = rand::Rng::r#gen::<f64>(&mut rng) < 0.2 + 0.5 * x;
            data.extend([x, code]);
            labels.push(churn);
        }
        (Array2::from_shape_vec((n, 2), data).unwrap(), labels)
    }

    #[test]
    fn the_category_rules_keep_trees_off_noise_and_generalise_better() {
        let ((train, train_labels), (test, test_labels)) =
            (noise_category(3000, 5), noise_category(3000, 6));
        // Splits on the noise column per tree, and log loss on the 3,000 rows not trained on.
        let fit = |params: GbdtParams| {
            let fitted = params
                .check()
                .unwrap()
                .fit(&train, &[false, true], &train_labels, 1)
                .unwrap();
            let trees = &fitted.ensemble.trees;
            let on_noise = trees
                .iter()
                .flat_map(|tree| {
                    (0..tree.len()).filter(|&node| tree.left[node] != 0 && tree.feature[node] == 1)
                })
                .count() as f64
                / trees.len() as f64;
            let log_loss = test
                .rows()
                .into_iter()
                .zip(&test_labels)
                .map(|(row, &churn)| {
                    let p = sigmoid(fitted.ensemble.margin(row.as_slice().unwrap()));
                    -(if churn { p } else { 1.0 - p }).ln()
                })
                .sum::<f64>()
                / 3000.0;
            (on_noise, log_loss)
        };
        let fixed = GbdtParams {
            max_trees: 50,
            early_stopping_rounds: 0,
            ..GbdtParams::default()
        };
        let regularised = fit(fixed.clone());
        let unregularised = fit(GbdtParams {
            category_l2: 0.0,
            min_data_per_category: 1,
            min_data_per_group: 1,
            max_categories_picked: 64,
            ..fixed
        });
        assert!(
            regularised.0 < 0.7 * unregularised.0 && regularised.1 < unregularised.1,
            "splits on the noise per tree and holdout log loss: {regularised:?} against \
             {unregularised:?}"
        );
    }

    /// Rows where churn = (x0 > 0.5) xor (code of x1 is 2), with x0 missing for some rows
    /// that churn: an interaction, a categorical effect and informative missingness.
    fn synthetic(n: usize) -> (Array2<f64>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut data = Vec::with_capacity(n * 3);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let x0: f64 = rand::Rng::r#gen(&mut rng);
            let code = f64::from(rand::Rng::gen_range(&mut rng, 0..4u8));
            let noise: f64 = rand::Rng::r#gen(&mut rng);
            let missing = noise < 0.1;
            let churn = if missing {
                true
            } else {
                (x0 > 0.5) != (code == 2.0)
            };
            data.extend([if missing { f64::NAN } else { x0 }, code, noise]);
            labels.push(churn);
        }
        (Array2::from_shape_vec((n, 3), data).unwrap(), labels)
    }

    #[test]
    fn learns_interactions_categories_and_missing_values() {
        let (x, y) = synthetic(4000);
        let params = GbdtParams {
            max_leaves: 8,
            learning_rate: 0.2,
            ..GbdtParams::default()
        }
        .check()
        .unwrap();
        let fitted = params.fit(&x, &[false, true, false], &y, 7).unwrap();
        let ensemble = &fitted.ensemble;
        let correct = x
            .rows()
            .into_iter()
            .zip(&y)
            .filter(|(row, label)| (ensemble.margin(row.as_slice().unwrap()) > 0.0) == **label)
            .count();
        assert!(correct as f64 / y.len() as f64 > 0.98, "{correct}");
        // Early stopping kept fewer trees than allowed, and the trees are valid for core.
        assert!(ensemble.trees.len() < 1000);
        let compiled = CompiledTrees::new(ensemble, &[false, true, false]).unwrap();
        // The noise column is nearly useless: most of |SHAP| goes to x0 and the category.
        let mut phi_total = [0.0; 3];
        let mut scratch = compiled.scratch();
        for row in x.rows().into_iter().take(500) {
            let mut phi = [0.0; 3];
            compiled.shap_into(row.as_slice().unwrap(), &mut phi, &mut scratch);
            for (total, value) in phi_total.iter_mut().zip(phi) {
                *total += value.abs();
            }
        }
        assert!(
            phi_total[2] < 0.1 * (phi_total[0] + phi_total[1]),
            "{phi_total:?}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_trees_and_another_seed_differs() {
        let (x, y) = synthetic(1500);
        let params = GbdtParams {
            row_subsample: 0.7,
            column_subsample: 0.67,
            max_trees: 30,
            ..GbdtParams::default()
        }
        .check()
        .unwrap();
        let first = params.fit(&x, &[false, true, false], &y, 11).unwrap();
        let again = params.fit(&x, &[false, true, false], &y, 11).unwrap();
        let other = params.fit(&x, &[false, true, false], &y, 12).unwrap();
        assert_eq!(first.ensemble, again.ensemble);
        assert_ne!(first.ensemble, other.ensemble);
    }

    #[test]
    fn bad_parameters_and_inputs_are_refused() {
        for bad in [
            GbdtParams {
                max_leaves: 1,
                ..GbdtParams::default()
            },
            GbdtParams {
                max_leaves: 513,
                ..GbdtParams::default()
            },
            GbdtParams {
                max_bins: 256,
                ..GbdtParams::default()
            },
            GbdtParams {
                row_subsample: 0.0,
                ..GbdtParams::default()
            },
        ] {
            assert!(bad.clone().check().is_err(), "{bad:?}");
        }
        let params = GbdtParams::default().check().unwrap();
        let x = Array2::from_shape_vec((2, 1), vec![1.0, f64::INFINITY]).unwrap();
        assert!(params.fit(&x, &[false], &[true, false], 0).is_err());
        let codes = Array2::from_shape_vec((2, 1), vec![1.0, 70.0]).unwrap();
        assert!(params.fit(&codes, &[true], &[true, false], 0).is_err());
    }
}
