//! Gradient-boosted trees as stored in the artifact: flat arrays per tree, splits on raw values,
//! prediction and validation. Scoring and reasons run on the [`crate::compiled`] form.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// Most categorical codes a split can route: a split's left set is a 64-bit mask.
pub const MAX_CATEGORY_CODES: usize = 64;

/// A boosted ensemble for binary log loss: `margin = base_score + Σ trees`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeEnsemble {
    /// Log-odds of churn among training customers, the boosting's starting point.
    pub base_score: f64,
    /// The trees, whose outputs add up.
    pub trees: Vec<Tree>,
}

/// One regression tree as parallel arrays indexed by node; node 0 is the root and children come
/// after their parent.
///
/// Node `i` is a leaf when `left[i] == 0`. Otherwise it sends an encoded value `x` of column
/// `feature[i]` to `left[i]` when the split holds and to `right[i]` when not, where the split is
/// `x <= threshold[i]` for a numeric split (`left_categories[i] == 0`) and "bit `x` of
/// `left_categories[i]` is set" for a split on categorical codes. A missing value (NaN) follows
/// `default_left[i]`, learned in training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Per split: the encoded column it tests.
    pub feature: Vec<u32>,
    /// Raw-value thresholds, inclusive on the left.
    pub threshold: Vec<f64>,
    /// Categorical codes sent left, as a bit mask; 0 for numeric splits and leaves.
    pub left_categories: Vec<u64>,
    /// Per node: whether a missing value goes left.
    pub default_left: Vec<bool>,
    /// Per node: its left child, 0 for a leaf.
    pub left: Vec<u32>,
    /// Per node: its right child, 0 for a leaf.
    pub right: Vec<u32>,
    /// Leaf outputs in log-odds (0 on internal nodes).
    pub value: Vec<f64>,
    /// Training rows that reached each node; TreeSHAP weighs unknown branches by it.
    pub cover: Vec<f64>,
}

impl Tree {
    /// Returns a tree with no nodes, to be grown with [`Tree::push_leaf`].
    pub fn empty() -> Tree {
        Tree {
            feature: Vec::new(),
            threshold: Vec::new(),
            left_categories: Vec::new(),
            default_left: Vec::new(),
            left: Vec::new(),
            right: Vec::new(),
            value: Vec::new(),
            cover: Vec::new(),
        }
    }

    /// Appends a leaf with value 0 and the given cover; returns its index. Splitting it later means
    /// setting its split fields and children.
    pub fn push_leaf(&mut self, cover: f64) -> usize {
        self.feature.push(0);
        self.threshold.push(0.0);
        self.left_categories.push(0);
        self.default_left.push(false);
        self.left.push(0);
        self.right.push(0);
        self.value.push(0.0);
        self.cover.push(cover);
        self.value.len() - 1
    }

    /// Returns the number of nodes.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Tells whether the tree has no nodes (never true for a valid tree).
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    #[inline]
    pub(crate) fn is_leaf(&self, node: usize) -> bool {
        self.left[node] == 0
    }

    /// Tells whether an encoded value goes left at internal node `node`.
    #[inline]
    pub(crate) fn goes_left(&self, node: usize, x: f64) -> bool {
        if x.is_nan() {
            return self.default_left[node];
        }
        let mask = self.left_categories[node];
        if mask != 0 {
            // Codes are validated small non-negative integers by the encoder.
            let code = x as u64;
            code < 64 && (mask >> code) & 1 == 1
        } else {
            x <= self.threshold[node]
        }
    }

    /// Returns the child an encoded row takes at internal node `node`.
    #[inline]
    pub(crate) fn next(&self, node: usize, row: &[f64]) -> usize {
        let x = row[self.feature[node] as usize];
        if self.goes_left(node, x) {
            self.left[node] as usize
        } else {
            self.right[node] as usize
        }
    }

    /// Returns the tree's output for an encoded row.
    #[inline]
    pub fn predict(&self, row: &[f64]) -> f64 {
        let mut node = 0;
        while !self.is_leaf(node) {
            node = self.next(node, row);
        }
        self.value[node]
    }

    /// Returns the mean output over training rows: Σ leaf value × leaf cover / root cover.
    pub fn expected_value(&self) -> f64 {
        let total = self.cover[0];
        (0..self.len())
            .filter(|&node| self.is_leaf(node))
            .map(|node| self.value[node] * self.cover[node] / total)
            .sum()
    }

    /// Returns the depth of the deepest leaf (0 for a lone leaf).
    pub fn max_depth(&self) -> usize {
        let mut depth = vec![0usize; self.len()];
        let mut deepest = 0;
        for node in 0..self.len() {
            if !self.is_leaf(node) {
                for child in [self.left[node], self.right[node]] {
                    depth[child as usize] = depth[node] + 1;
                    deepest = deepest.max(depth[node] + 1);
                }
            }
        }
        deepest
    }

    /// Checks the arrays against each other and against `categorical`, which says per encoded
    /// column whether it holds categorical codes.
    fn validate(&self, categorical: &[bool]) -> std::result::Result<(), String> {
        let n = self.len();
        let lengths = [
            self.feature.len(),
            self.threshold.len(),
            self.left_categories.len(),
            self.default_left.len(),
            self.left.len(),
            self.right.len(),
            self.cover.len(),
        ];
        if n == 0 || lengths.iter().any(|&length| length != n) {
            return Err(format!(
                "node arrays have lengths {lengths:?} and {n} values"
            ));
        }
        // Every node but the root is some split's child exactly once: a node shared by two
        // parents would be a graph, not a tree, and its reasons would be counted twice.
        let mut parents = vec![0u32; n];
        for node in 0..n {
            if !(self.value[node].is_finite() && self.cover[node] > 0.0) {
                return Err(format!("node {node} has a non-finite value or no cover"));
            }
            if self.is_leaf(node) {
                continue;
            }
            let (left, right) = (self.left[node] as usize, self.right[node] as usize);
            if !(node < left && left < n && node < right && right < n && left != right) {
                return Err(format!(
                    "node {node} has children {left} and {right} out of order"
                ));
            }
            for child in [left, right] {
                parents[child] += 1;
                if parents[child] > 1 {
                    return Err(format!("node {child} is the child of more than one node"));
                }
            }
            if self.cover[left] + self.cover[right] != self.cover[node] {
                return Err(format!("node {node}: children covers do not add up"));
            }
            let column = self.feature[node] as usize;
            let Some(&is_categorical) = categorical.get(column) else {
                return Err(format!(
                    "node {node} splits on column {column}, out of range"
                ));
            };
            let categorical_split = self.left_categories[node] != 0;
            if categorical_split != is_categorical || !self.threshold[node].is_finite() {
                return Err(format!(
                    "node {node}: split kind does not match column {column} or threshold is not finite"
                ));
            }
        }
        Ok(())
    }
}

impl TreeEnsemble {
    /// Returns the raw margin (log-odds) for an encoded row.
    pub fn margin(&self, row: &[f64]) -> f64 {
        self.base_score + self.trees.iter().map(|tree| tree.predict(row)).sum::<f64>()
    }

    /// Returns the expected margin over training rows: the base value of TreeSHAP.
    pub fn expected_margin(&self) -> f64 {
        self.base_score + self.trees.iter().map(Tree::expected_value).sum::<f64>()
    }

    /// Returns the depth of the deepest tree.
    pub fn max_depth(&self) -> usize {
        self.trees.iter().map(Tree::max_depth).max().unwrap_or(0)
    }

    /// Checks every tree; `categorical` says per encoded column whether it holds codes.
    pub fn validate(&self, categorical: &[bool]) -> Result<()> {
        if !self.base_score.is_finite() {
            return Err(CoreError::InvalidArtifact {
                reason: "tree ensemble base score is not finite".into(),
            });
        }
        for (index, tree) in self.trees.iter().enumerate() {
            tree.validate(categorical)
                .map_err(|reason| CoreError::InvalidArtifact {
                    reason: format!("tree {index}: {reason}"),
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a random tree over `n_features` numeric columns with values in [0, 1), children
    /// after parents, covers adding up; `seed_bits` drives every choice.
    pub(crate) fn random_tree(n_features: usize, max_depth: usize, seed_bits: &[u32]) -> Tree {
        let mut tree = Tree::empty();
        let mut bits = seed_bits.iter().cycle().copied();
        let mut next = move || bits.next().unwrap_or(7);
        push_node(&mut tree, 1000.0, 0, max_depth, n_features, &mut next);
        tree
    }

    fn push_node(
        tree: &mut Tree,
        cover: f64,
        depth: usize,
        max_depth: usize,
        n_features: usize,
        next: &mut impl FnMut() -> u32,
    ) -> usize {
        let node = tree.push_leaf(cover);
        let split = depth < max_depth && cover >= 2.0 && (depth < 2 || !next().is_multiple_of(4));
        if !split {
            tree.value[node] = f64::from(next() % 200) / 100.0 - 1.0;
            return node;
        }
        tree.feature[node] = next() % n_features as u32;
        tree.threshold[node] = f64::from(next() % 100) / 100.0;
        tree.default_left[node] = next().is_multiple_of(2);
        let left_cover = (1 + next() as u64 % (cover as u64 - 1)) as f64;
        let left = push_node(tree, left_cover, depth + 1, max_depth, n_features, next);
        let right = push_node(
            tree,
            cover - left_cover,
            depth + 1,
            max_depth,
            n_features,
            next,
        );
        tree.left[node] = left as u32;
        tree.right[node] = right as u32;
        node
    }

    #[test]
    fn a_stump_splits_on_raw_values_and_routes_missing_by_default() {
        // x0 <= 0.5 → -1 (cover 30), else +1 (cover 70); missing goes right.
        let tree = Tree {
            feature: vec![0, 0, 0],
            threshold: vec![0.5, 0.0, 0.0],
            left_categories: vec![0; 3],
            default_left: vec![false; 3],
            left: vec![1, 0, 0],
            right: vec![2, 0, 0],
            value: vec![0.0, -1.0, 1.0],
            cover: vec![100.0, 30.0, 70.0],
        };
        assert_eq!(tree.predict(&[0.5]), -1.0);
        assert_eq!(tree.predict(&[0.51]), 1.0);
        assert_eq!(tree.predict(&[f64::NAN]), 1.0);
        // E = 0.3 × -1 + 0.7 × 1 = 0.4; a stump's SHAP value is f(x) − E.
        assert!((tree.expected_value() - 0.4).abs() < 1e-15);
        let ensemble = TreeEnsemble {
            base_score: 0.0,
            trees: vec![tree],
        };
        let compiled = crate::CompiledTrees::new(&ensemble, &[false]).unwrap();
        let mut phi = vec![0.0];
        compiled.shap_into(&[0.1], &mut phi, &mut compiled.scratch());
        assert!((phi[0] - (-1.4)).abs() < 1e-12);
    }

    #[test]
    fn categorical_splits_route_codes_by_mask() {
        // Codes 0 and 2 go left.
        let tree = Tree {
            feature: vec![0, 0, 0],
            threshold: vec![0.0; 3],
            left_categories: vec![0b101, 0, 0],
            default_left: vec![true, false, false],
            left: vec![1, 0, 0],
            right: vec![2, 0, 0],
            value: vec![0.0, -1.0, 1.0],
            cover: vec![10.0, 4.0, 6.0],
        };
        assert!(tree.validate(&[true]).is_ok());
        assert!(tree.validate(&[false]).is_err());
        assert_eq!(tree.predict(&[0.0]), -1.0);
        assert_eq!(tree.predict(&[1.0]), 1.0);
        assert_eq!(tree.predict(&[2.0]), -1.0);
        assert_eq!(tree.predict(&[f64::NAN]), -1.0);
    }

    #[test]
    fn inconsistent_trees_are_refused() {
        let mut tree = random_tree(3, 3, &[5, 9, 13, 2, 8]);
        assert!(tree.validate(&[false; 3]).is_ok());
        tree.cover[0] += 1.0;
        assert!(tree.validate(&[false; 3]).is_err());
        let mut backwards = random_tree(3, 3, &[5, 9, 13, 2, 8]);
        if let Some(node) = (1..backwards.len()).find(|&node| !backwards.is_leaf(node)) {
            backwards.left[node] = node as u32;
            assert!(backwards.validate(&[false; 3]).is_err());
        }
        // Splits on column 2 are refused when the model is given two columns.
        let wide = random_tree(3, 4, &[2, 2, 2, 2, 2, 2]);
        assert!(wide.validate(&[false; 2]).is_err());
        // Node 2 is the right child of both node 0 and node 1; covers and order are fine.
        let shared = Tree {
            feature: vec![0, 1, 0, 0],
            threshold: vec![0.5; 4],
            left_categories: vec![0; 4],
            default_left: vec![false; 4],
            left: vec![1, 3, 0, 0],
            right: vec![2, 2, 0, 0],
            value: vec![0.0, 0.0, 1.0, -1.0],
            cover: vec![10.0, 6.0, 4.0, 2.0],
        };
        let error = shared.validate(&[false; 2]).unwrap_err();
        assert!(
            error.contains("node 2 is the child of more than one node"),
            "{error}"
        );
    }
}
