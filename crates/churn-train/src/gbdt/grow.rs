//! One tree grown leaf-wise: the leaf with the largest gain is split next.

use churn_core::Tree;

use super::GbdtParams;
use super::histogram::{Bin, BinnedColumn};
use super::split::Split;

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
pub(super) struct Grower<'a> {
    pub(super) params: &'a GbdtParams,
    pub(super) columns: &'a [BinnedColumn],
    pub(super) histogram_len: usize,
    /// Gradient and hessian per training row.
    pub(super) gradients: &'a [[f64; 2]],
    /// Columns this tree may split on.
    pub(super) allowed: Vec<bool>,
}

impl Grower<'_> {
    fn leaf_value(&self, total: &Bin) -> f64 {
        -total.gradient / (total.hessian + self.params.l2) * self.params.learning_rate
    }

    /// Grows one tree on `rows`, leaf-wise. Returns it with each leaf's value and rows.
    pub(super) fn grow(&self, rows: Vec<u32>) -> (Tree, Vec<(f64, Vec<u32>)>) {
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
