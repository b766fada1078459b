//! Margins without walking trees: QuickScorer's leaf masks (Lucchese et al. 2015), tabulated per
//! value bin.
//!
//! Number each tree's leaves left to right. A split the row does not take (it goes right) rules
//! out every leaf of its left subtree, and the leaf the row reaches is the leftmost one no split
//! on its way rules out: the leftmost set bit of the AND of the masks of those splits. Which
//! splits on a column a value fails depends only on the value's bin: how many of the column's
//! thresholds lie below it, or its category code, or that it is missing. So each column keeps,
//! per bin, every tree's mask of the leaves its splits on that column leave reachable, and a
//! margin is one bin lookup per column, a run of ANDs over contiguous masks (one row of masks per
//! column, vectorised), and one leaf value per tree: no branch on the customer's values and no
//! chain of dependent loads, where a walk takes one per level of every tree.

use std::ops::{BitAnd, BitAndAssign, BitOr, Not};

use crate::tree::{MAX_CATEGORY_CODES, Tree, TreeEnsemble};

/// Most bytes of masks an ensemble gets; a larger model is walked node by node.
const MASK_BUDGET: usize = 16 << 20;

/// Trees whose masks are ANDed in one pass, into an array on the stack.
const CHUNK: usize = 64;

/// An ensemble's masks, in the narrowest integer that holds its largest tree's leaves.
#[derive(Debug, Clone)]
pub(crate) enum LeafMasks {
    Narrow(Masks<u32>),
    Wide(Masks<u64>),
}

impl LeafMasks {
    /// Tabulates `ensemble`'s masks, validated against `columns` encoded columns; `None` when a
    /// tree has more than 64 leaves or the masks would outgrow [`MASK_BUDGET`].
    pub(crate) fn new(ensemble: &TreeEnsemble, columns: usize) -> Option<LeafMasks> {
        let most_leaves = ensemble.trees.iter().map(leaf_count).max().unwrap_or(0);
        if most_leaves <= 32 {
            Masks::new(ensemble, columns).map(LeafMasks::Narrow)
        } else if most_leaves <= 64 {
            Masks::new(ensemble, columns).map(LeafMasks::Wide)
        } else {
            None
        }
    }

    /// Returns the margin of an encoded row, equal to [`TreeEnsemble::margin`] to the bit.
    pub(crate) fn margin(&self, row: &[f64]) -> f64 {
        match self {
            LeafMasks::Narrow(masks) => masks.margin(row),
            LeafMasks::Wide(masks) => masks.margin(row),
        }
    }

    /// Returns the bytes the masks take.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            LeafMasks::Narrow(masks) => masks.masks.len() * 4,
            LeafMasks::Wide(masks) => masks.masks.len() * 8,
        }
    }
}

/// A set of a tree's leaves, bit `i` for the `i`-th leaf from the left.
pub(crate) trait LeafSet:
    Copy
    + std::fmt::Debug
    + BitAnd<Output = Self>
    + BitAndAssign
    + BitOr<Output = Self>
    + Not<Output = Self>
{
    const ALL: Self;
    const NONE: Self;
    fn leaf(index: usize) -> Self;
    /// The leftmost leaf in the set.
    fn first(self) -> usize;
}

macro_rules! leaf_set {
    ($($word:ty),*) => {$(
        impl LeafSet for $word {
            const ALL: Self = <$word>::MAX;
            const NONE: Self = 0;
            fn leaf(index: usize) -> Self {
                1 << index
            }
            #[inline(always)]
            fn first(self) -> usize {
                self.trailing_zeros() as usize
            }
        }
    )*};
}

leaf_set!(u32, u64);

/// Per split column and bin, every tree's reachable leaves.
#[derive(Debug, Clone)]
pub(crate) struct Masks<M> {
    base_score: f64,
    trees: usize,
    /// `trees` rounded up to whole chunks; the padding's masks keep every leaf.
    padded_trees: usize,
    /// The columns some tree splits on.
    columns: Vec<MaskColumn>,
    /// Per column of `columns`, per bin (value bins, then missing): `padded_trees` masks.
    masks: Vec<M>,
    /// Per tree: where its leaves start in `leaf_values`.
    leaf_start: Vec<u32>,
    /// Every tree's leaf outputs, left to right.
    leaf_values: Vec<f64>,
}

#[derive(Debug, Clone)]
struct MaskColumn {
    column: usize,
    bins: Bins,
    /// Its first bin's row of masks.
    first_row: usize,
}

/// How a column's values fall into bins; within a bin, every split on the column sends every
/// value the same way. One more bin, after these, holds missing values.
#[derive(Debug, Clone)]
enum Bins {
    /// A numeric column's distinct thresholds, ascending: a value's bin is how many lie below it.
    Thresholds(Vec<f64>),
    /// A categorical column: a code's bin is the code, and codes past the last a split can route
    /// share one bin (as [`Tree::goes_left`] reads codes).
    Codes,
}

impl Bins {
    /// Returns how many bins values fall into, not counting the missing one.
    fn values(&self) -> usize {
        match self {
            Bins::Thresholds(thresholds) => thresholds.len() + 1,
            Bins::Codes => MAX_CATEGORY_CODES + 1,
        }
    }

    /// Returns the bin of an encoded value.
    #[inline]
    fn of(&self, x: f64) -> usize {
        if x.is_nan() {
            return self.values();
        }
        match self {
            Bins::Thresholds(thresholds) => thresholds.partition_point(|&t| t < x),
            Bins::Codes => (x as u64).min(MAX_CATEGORY_CODES as u64) as usize,
        }
    }

    /// Returns a value in `bin`, to route through the stored tree.
    fn value_in(&self, bin: usize) -> f64 {
        match self {
            _ if bin == self.values() => f64::NAN,
            Bins::Thresholds(thresholds) => thresholds.get(bin).copied().unwrap_or(f64::INFINITY),
            Bins::Codes => bin as f64,
        }
    }
}

fn leaf_count(tree: &Tree) -> usize {
    (0..tree.len()).filter(|&node| tree.is_leaf(node)).count()
}

impl<M: LeafSet> Masks<M> {
    /// Tabulates the masks of a validated ensemble whose trees have at most `M`'s width of
    /// leaves; `None` when they would outgrow [`MASK_BUDGET`].
    fn new(ensemble: &TreeEnsemble, columns: usize) -> Option<Self> {
        let trees = ensemble.trees.len();
        let padded_trees = trees.next_multiple_of(CHUNK);
        // Validation leaves each column one kind of split, with finite thresholds.
        let mut thresholds: Vec<Option<Vec<f64>>> = vec![None; columns];
        let mut codes = vec![false; columns];
        for tree in &ensemble.trees {
            for node in (0..tree.len()).filter(|&node| !tree.is_leaf(node)) {
                let column = tree.feature[node] as usize;
                if tree.left_categories[node] != 0 {
                    codes[column] = true;
                } else {
                    thresholds[column]
                        .get_or_insert_with(Vec::new)
                        .push(tree.threshold[node]);
                }
            }
        }
        let mut mask_columns = Vec::new();
        let mut row_of_column = vec![usize::MAX; columns];
        let mut rows = 0;
        for (column, (thresholds, codes)) in thresholds.into_iter().zip(codes).enumerate() {
            let bins = match thresholds {
                _ if codes => Bins::Codes,
                Some(mut thresholds) => {
                    thresholds.sort_by(f64::total_cmp);
                    thresholds.dedup();
                    Bins::Thresholds(thresholds)
                }
                None => continue,
            };
            row_of_column[column] = mask_columns.len();
            let bins_and_missing = bins.values() + 1;
            mask_columns.push(MaskColumn {
                column,
                bins,
                first_row: rows,
            });
            rows += bins_and_missing;
        }
        if rows * padded_trees * std::mem::size_of::<M>() > MASK_BUDGET {
            return None;
        }
        let mut masks = vec![M::ALL; rows * padded_trees];
        let mut leaf_start = Vec::with_capacity(trees);
        let mut leaf_values = Vec::new();
        for (index, tree) in ensemble.trees.iter().enumerate() {
            leaf_start.push(u32::try_from(leaf_values.len()).ok()?);
            let below: Vec<M> = leaves_below(tree, &mut leaf_values);
            for node in (0..tree.len()).filter(|&node| !tree.is_leaf(node)) {
                let column = &mask_columns[row_of_column[tree.feature[node] as usize]];
                let ruled_out = !below[tree.left[node] as usize];
                for bin in 0..=column.bins.values() {
                    if !tree.goes_left(node, column.bins.value_in(bin)) {
                        masks[(column.first_row + bin) * padded_trees + index] &= ruled_out;
                    }
                }
            }
        }
        Some(Masks {
            base_score: ensemble.base_score,
            trees,
            padded_trees,
            columns: mask_columns,
            masks,
            leaf_start,
            leaf_values,
        })
    }

    fn margin(&self, row: &[f64]) -> f64 {
        let rows: Vec<usize> = self
            .columns
            .iter()
            .map(|column| {
                (column.first_row + column.bins.of(row[column.column])) * self.padded_trees
            })
            .collect();
        // Summed in tree order from −0.0 as `Iterator::sum` does, so the margin equals
        // `TreeEnsemble::margin` to the bit.
        let mut sum = -0.0;
        for first_tree in (0..self.padded_trees).step_by(CHUNK) {
            let mut reachable = [M::ALL; CHUNK];
            for &row in &rows {
                let masks: &[M; CHUNK] = self.masks[row + first_tree..][..CHUNK]
                    .try_into()
                    .expect("a chunk of masks");
                for (reachable, &mask) in reachable.iter_mut().zip(masks) {
                    *reachable &= mask;
                }
            }
            let trees = (self.trees - first_tree).min(CHUNK);
            for (&start, leaves) in self.leaf_start[first_tree..][..trees].iter().zip(reachable) {
                sum += self.leaf_values[start as usize + leaves.first()];
            }
        }
        self.base_score + sum
    }
}

/// Numbers `tree`'s leaves left to right, appending their values to `values`; returns each
/// node's set of leaves below it (a leaf's is itself).
fn leaves_below<M: LeafSet>(tree: &Tree, values: &mut Vec<f64>) -> Vec<M> {
    let mut below = vec![M::NONE; tree.len()];
    let mut pending = vec![0usize];
    let mut leaves = 0;
    while let Some(node) = pending.pop() {
        if tree.is_leaf(node) {
            below[node] = M::leaf(leaves);
            values.push(tree.value[node]);
            leaves += 1;
        } else {
            pending.push(tree.right[node] as usize);
            pending.push(tree.left[node] as usize);
        }
    }
    // Children come after their parents.
    for node in (0..tree.len()).rev().filter(|&node| !tree.is_leaf(node)) {
        below[node] = below[tree.left[node] as usize] | below[tree.right[node] as usize];
    }
    below
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::tree::tests::random_tree;

    /// An ensemble of random trees over 5 columns, column 0 holding category codes split on by
    /// sets of codes; `depth` 5 keeps every tree within 32 leaves, 6 within 64.
    fn ensemble(seeds: &[Vec<u32>], depth: usize, base_score: f64) -> TreeEnsemble {
        let trees = seeds
            .iter()
            .map(|seed| {
                let mut tree = random_tree(5, depth, seed);
                for node in 0..tree.len() {
                    if !tree.is_leaf(node) && tree.feature[node] == 0 {
                        tree.left_categories[node] = u64::from(seed[node % seed.len()]) | 1 << 40;
                    }
                }
                tree
            })
            .collect();
        TreeEnsemble { base_score, trees }
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => 0.0f64..1.0,
            // Thresholds themselves (inclusive on the left) and values past every threshold.
            2 => (0u32..100).prop_map(|t| f64::from(t) / 100.0),
            1 => prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0]),
        ]
    }

    fn code() -> impl Strategy<Value = f64> {
        prop_oneof![
            8 => (0u32..70).prop_map(f64::from),
            1 => prop::sample::select(vec![f64::NAN, -2.0, 2.5, 1e300, f64::INFINITY]),
        ]
    }

    proptest! {
        /// The margin by leaf masks equals the stored trees' to the bit, over more trees than
        /// one chunk, narrow and wide masks, thresholds hit exactly, odd codes and missing values.
        #[test]
        fn margins_by_leaf_masks_equal_the_trees(
            seeds in prop::collection::vec(prop::collection::vec(any::<u32>(), 48), 1..150),
            depth in 1usize..7,
            base_score in -3.0f64..3.0,
            code in code(),
            rest in prop::collection::vec(value(), 4),
        ) {
            let ensemble = ensemble(&seeds, depth, base_score);
            let categorical = [true, false, false, false, false];
            ensemble.validate(&categorical).unwrap();
            let masks = LeafMasks::new(&ensemble, 5).expect("within the budget");
            let most_leaves = ensemble.trees.iter().map(leaf_count).max().unwrap_or(0);
            prop_assert_eq!(matches!(masks, LeafMasks::Wide(_)), most_leaves > 32);
            let row: Vec<f64> = std::iter::once(code).chain(rest).collect();
            prop_assert_eq!(masks.margin(&row).to_bits(), ensemble.margin(&row).to_bits());
        }
    }

    /// A complete tree of `depth` levels of numeric splits on column 1: 2^depth leaves.
    fn complete_tree(depth: usize) -> Tree {
        fn grow(tree: &mut Tree, depth: usize, cover: f64) -> usize {
            let node = tree.push_leaf(cover);
            if depth == 0 {
                tree.value[node] = node as f64 / 100.0;
                return node;
            }
            tree.feature[node] = 1;
            tree.threshold[node] = node as f64 / 1000.0;
            let left = grow(tree, depth - 1, cover / 2.0);
            let right = grow(tree, depth - 1, cover / 2.0);
            tree.left[node] = left as u32;
            tree.right[node] = right as u32;
            node
        }
        let mut tree = Tree::empty();
        grow(&mut tree, depth, f64::from(1u32 << depth));
        tree
    }

    #[test]
    fn trees_of_more_than_64_leaves_or_too_many_masks_are_walked() {
        let with_leaves = |depth| TreeEnsemble {
            base_score: 0.0,
            trees: vec![complete_tree(depth)],
        };
        assert!(matches!(
            LeafMasks::new(&with_leaves(5), 2),
            Some(LeafMasks::Narrow(_))
        ));
        assert!(matches!(
            LeafMasks::new(&with_leaves(6), 2),
            Some(LeafMasks::Wide(_))
        ));
        assert!(LeafMasks::new(&with_leaves(7), 2).is_none());
        // Stumps on one column with thresholds 0, 1, 2, …, repeating after 2,000: 1,100 of them
        // need 1,102 rows (bins and missing) of 1,152 masks, 5.1 MB of u32; 2,100 need 2,002
        // rows of 2,112, 16.9 MB, past the 16 MiB budget.
        let stumps = |count: usize| TreeEnsemble {
            base_score: 0.0,
            trees: (0..count)
                .map(|index| Tree {
                    feature: vec![0, 0, 0],
                    threshold: vec![(index % 2000) as f64, 0.0, 0.0],
                    left_categories: vec![0; 3],
                    default_left: vec![false; 3],
                    left: vec![1, 0, 0],
                    right: vec![2, 0, 0],
                    value: vec![0.0, -1.0, 1.0],
                    cover: vec![2.0, 1.0, 1.0],
                })
                .collect(),
        };
        let fits = LeafMasks::new(&stumps(1100), 1).expect("5.1 MB fit");
        assert_eq!(fits.bytes(), 1102 * 1152 * 4);
        // Thresholds 0 to 999 lie below 999.5: those stumps give +1, the other 100 give −1.
        assert_eq!(fits.margin(&[999.5]), 900.0);
        assert!(LeafMasks::new(&stumps(2100), 1).is_none());
    }
}
