//! A leaf's best split, and the partition of its rows by it.

use super::grow::Grower;
use super::histogram::Bin;

/// The best way found to split one leaf.
#[derive(Debug, Clone, Copy)]
pub(super) struct Split {
    pub(super) gain: f64,
    pub(super) feature: usize,
    /// Numeric: values in bins `0..=bin` go left.
    pub(super) bin: usize,
    /// Categorical: codes sent left.
    pub(super) mask: u64,
    pub(super) default_left: bool,
    pub(super) left: Bin,
    pub(super) right: Bin,
}

impl Grower<'_> {
    fn admissible(&self, side: &Bin) -> bool {
        side.count >= self.params.min_data_in_leaf as f64
            && side.hessian >= self.params.min_hessian_in_leaf
    }

    /// Returns the best split of a leaf, or `None` when no split gains enough.
    pub(super) fn best_split(&self, histogram: &[Bin], total: &Bin, depth: usize) -> Option<Split> {
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
    pub(super) fn partition(&self, split: &Split, rows: &[u32]) -> (Vec<u32>, Vec<u32>) {
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
}
