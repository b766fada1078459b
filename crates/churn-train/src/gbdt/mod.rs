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

//!
//! `histogram` bins columns and sums gradients, `grow` grows one tree leaf-wise, `split` finds
//! a leaf's best split and `categorical` offers the category sets worth trying.

mod categorical;
mod grow;
mod histogram;
mod split;
#[cfg(test)]
mod tests;

use churn_core::{Tree, TreeEnsemble, sigmoid};
use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use grow::Grower;
use histogram::{BinnedColumn, lay_out_histogram};

/// Parameters of the booster, as given (see [`GbdtParams::check`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtParams {
    /// Most trees; early stopping usually ends sooner.
    pub max_trees: usize,
    /// Shrinkage: the share of each tree's fit added to the margins.
    pub learning_rate: f64,
    /// Most leaves per tree (2 to 512), grown leaf-wise.
    pub max_leaves: usize,
    /// Deepest a leaf may be; 0 for no limit beyond `max_leaves`.
    pub max_depth: usize,
    /// Fewest training rows in a leaf.
    pub min_data_in_leaf: usize,
    /// Smallest sum of hessians in a leaf.
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
    /// The trees kept: those up to the best validation loss.
    pub ensemble: TreeEnsemble,
    /// Margins of the validation rows (empty without early stopping), for calibration.
    pub validation_margins: Vec<f64>,
    /// Labels of the validation rows, in the same order.
    pub validation_labels: Vec<bool>,
    /// Trees grown before early stopping ended the boosting.
    pub trees_grown: usize,
}

/// Returns the rows the trees learn from and the rows early stopping measures: a stratified
/// split, or with `groups` one that keeps each group whole; all rows and none without early
/// stopping.
fn early_stopping_split(
    params: &GbdtParams,
    y: &[bool],
    groups: Option<&[String]>,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if params.early_stopping_rounds == 0 {
        return Ok(((0..y.len()).collect(), Vec::new()));
    }
    let split = match groups {
        Some(groups) => churn_data::grouped_split(groups, y, params.validation_fraction, seed)?,
        None => churn_data::stratified_split(y, params.validation_fraction, seed)?,
    };
    Ok((split.train, split.test))
}

/// Bins every column of `x` on the training rows; returns the columns, laid out in one
/// histogram, and the histogram's length.
fn bin_columns(
    x: &Array2<f64>,
    train_rows: &[usize],
    categorical: &[bool],
    max_bins: usize,
) -> Result<(Vec<BinnedColumn>, usize)> {
    let mut columns = (0..x.ncols())
        .map(|k| {
            let values: Vec<f64> = train_rows.iter().map(|&row| x[[row, k]]).collect();
            BinnedColumn::new(&values, categorical[k], max_bins)
        })
        .collect::<Result<Vec<_>>>()?;
    let histogram_len = lay_out_histogram(&mut columns);
    Ok((columns, histogram_len))
}

/// Sets each row's gradient and hessian of the log loss at its margin.
fn log_loss_gradients(margins: &[f64], labels: &[bool], gradients: &mut [[f64; 2]]) {
    gradients
        .par_iter_mut()
        .zip(margins)
        .zip(labels)
        .for_each(|((slot, &margin), &label)| {
            let probability = sigmoid(margin);
            let target = if label { 1.0 } else { 0.0 };
            *slot = [
                probability - target,
                (probability * (1.0 - probability)).max(1e-16),
            ];
        });
}

/// Returns the rows one tree learns from: a sorted sample of `subsample` of them, or all.
fn sample_rows(all_rows: &[u32], subsample: f64, rng: &mut ChaCha8Rng) -> Vec<u32> {
    if subsample >= 1.0 {
        return all_rows.to_vec();
    }
    let n = ((all_rows.len() as f64 * subsample).ceil() as usize).max(1);
    let mut sample: Vec<u32> = all_rows.choose_multiple(rng, n).copied().collect();
    sample.sort_unstable();
    sample
}

/// Returns which of `columns` columns one tree may split on: `sampled` of them at random, or
/// all.
fn sample_columns(columns: usize, sampled: usize, rng: &mut ChaCha8Rng) -> Vec<bool> {
    if sampled >= columns {
        return vec![true; columns];
    }
    let mut allowed = vec![false; columns];
    let mut order: Vec<usize> = (0..columns).collect();
    order.shuffle(rng);
    for &feature in &order[..sampled] {
        allowed[feature] = true;
    }
    allowed
}

/// Returns the mean log loss of `margins` against `labels`.
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
        if let Some(((row, column), value)) =
            x.indexed_iter().find(|(_, value)| value.is_infinite())
        {
            return Err(fit_error(format!(
                "encoded row {row}, column {column}: {value} is not finite"
            )));
        }
        let (train_rows, validation_rows) = early_stopping_split(params, y, groups, seed)?;
        let (columns, histogram_len) = bin_columns(x, &train_rows, categorical, params.max_bins)?;

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
            log_loss_gradients(&margins, &labels, &mut gradients);
            // Rows before columns: the order the generator is drawn in is part of the model.
            let rows = sample_rows(&all_rows, params.row_subsample, &mut rng);
            let allowed = sample_columns(columns.len(), n_sampled_columns, &mut rng);
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
