//! LightGBM's rules for categorical splits: which category sets of a column are worth trying.

use super::grow::Grower;
use super::histogram::Bin;

impl Grower<'_> {
    /// Offers `try_left` the category sets of a categorical column worth trying, ordered by
    /// smoothed gradient ratio. A column of few categories offers every prefix. Otherwise
    /// LightGBM's way: only categories with enough rows, sets grown from either end (the
    /// categories most and least likely to churn), tried when the rows added since the last
    /// set tried reach `min_data_per_group`, each gain taken with `category_l2` more L2 than
    /// the leaf's own.
    pub(super) fn categorical_splits(
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
}
