//! A tree ensemble compiled for scoring: every node packed in 24 bytes with siblings side by side,
//! and exact path-dependent TreeSHAP.
//!
//! # Margins
//! Margins come from QuickScorer's leaf masks (`masks.rs`): per column and value bin, the
//! leaves every tree can still reach, ANDed across the row's columns. Trees of more than 64
//! leaves, or a model whose masks would pass 16 MiB, are walked node by node, eight trees
//! at a time.
//!
//! # Reasons by quadrature
//! Path-dependent TreeSHAP (Lundberg et al. 2018) is a sum over leaves. For a leaf with output `v`
//! whose path splits on the distinct features `U`, let `z_j` be the share of training rows that
//! took the path's branches on feature `j` and `o_j` be 1 if the customer takes them all, else 0.
//! The leaf gives feature `i ∈ U`
//!
//! ```text
//! φ_i = v (o_i − z_i) Σ_{S ⊆ U∖i} |S|! (|U|−|S|−1)! / |U|! Π_{j∈S} o_j Π_{j∉S, j≠i} z_j
//!     = v (o_i − z_i) ∫₀¹ Π_{j≠i} (z_j + (o_j − z_j) t) dt
//! ```
//!
//! because the Shapley weight is the Beta integral `∫₀¹ t^|S| (1−t)^(|U|−|S|−1) dt`. The integrand
//! is a polynomial of degree `|U| − 1`, so Gauss–Legendre quadrature with `⌈|U|/2⌉` points is exact
//! (Linear TreeShap, Yu et al. 2022, uses the same idea with another basis). Each node then keeps
//! the path's product at those points, a child's leaves sum up as a vector, and a split's
//! contribution is read off at the split: O(nodes × depth / 2) per tree instead of Algorithm 2's
//! O(leaves × depth²), and no unwinding.
//!
//! # Reasons by table
//! Because `o_j` is 0 or 1, a leaf's contributions depend on the customer only through the set
//! `O ⊆ U` of path features whose branches they take all of. With
//! `A(O) = Σ_{S ⊆ O} |S|! (|U|−|S|−1)! / |U|! Π_{j∈U∖S} z_j`, the sum above gives
//!
//! ```text
//! φ_i = −v A(O)                          for i ∉ O
//! φ_i = v (1 − z_i) / z_i · A(O ∖ i)     for i ∈ O
//! ```
//!
//! So a tree whose paths run through few distinct features keeps `v A(O)` for every leaf and
//! every `O` (Fast TreeSHAP v2, Yang 2021, tabulates the same sums), computed once by quadrature
//! when the model loads. Scoring then makes two flat passes over all tabulated trees at once,
//! neither recursive nor branching on the customer's values: the first goes through the splits
//! parent first and hands each child its parent's pattern `O` with the split's bit set or
//! cleared; the second adds every leaf's `|U|` terms, leaves grouped by `|U|` so that the inner
//! loop has a fixed length. Both cases above read the entry of `O ∖ i` (which is `O` when
//! `i ∉ O`), so a term is one table read times a factor, `−1` or `(1 − z_i) / z_i`, that the
//! pattern's bit picks. Deeper trees, or a model whose tables would outgrow `TABLE_BUDGET`,
//! use quadrature.
//!
//! # Leaf pairs
//! Most leaves of a leaf-wise grown tree come in pairs: a split on some `f` whose children are
//! both leaves. Their paths differ only in `f`'s factor `z_f (1 − t) + o_f t`, so with
//! `P(O) = ∫ Π g dt` and `R(O) = ∫ t Π g / (1 − t) dt` over the other path features `U'`
//! (`g = z + (1 − z) t` on those in `O`, `z (1 − t)` on the rest) the two leaves together give
//!
//! ```text
//! φ_i = −(c P(O) + h R(O))                  for i ∈ U' ∖ O
//! φ_i = (1 − z_i) / z_i · (c P(O ∖ i) + h R(O ∖ i))   for i ∈ O
//! φ_f = (v_L (o_L − z_L) + v_R (o_R − z_R)) P(O)
//! ```
//!
//! with `c = v_L z_L + v_R z_R` and `h = v_L o_L + v_R o_R`. One table of `2 × 2^|U'|`
//! entries replaces two of `2^(|U'| + 1)`, and a pair costs `|U'| + 1` terms instead of
//! `2 (|U'| + 1)`. The pair takes its split itself, so the first pass skips it.
//!
//! # Layout
//! `nodes` packs the trees and walks them, `masks` tabulates leaf masks, `tables` holds the
//! tabulated trees' reasons, and `quadrature` computes the others' by Gauss–Legendre rules.

mod masks;
mod nodes;
mod quadrature;
mod tables;
#[cfg(test)]
mod tests;

use crate::error::{CoreError, Result};
use crate::tree::{Tree, TreeEnsemble};
use masks::LeafMasks;
use nodes::{AnyRow, COLUMN, CompleteRow, LANES, Node};
use quadrature::Rule;
use tables::{ByLength, MAX_TABLE_COLUMNS, TableLeaf, TablePair, TableSplit, path_features};

/// Deepest tree scored: TreeSHAP recurses once per level, and this bounds its stack use.
pub const MAX_TREE_DEPTH: usize = 512;

/// Deepest path, counted in distinct features, that the quadrature rules cover.
const MAX_DISTINCT_FEATURES: usize = 128;

/// Quadrature sizes compiled in; a tree uses the smallest that is exact for it.
const RULE_SIZES: [usize; 11] = [1, 2, 3, 4, 5, 6, 8, 11, 16, 32, 64];

/// Most distinct features on a path for a tree's reasons to be tabulated: a leaf's table holds
/// `2^distinct` sums, and patterns are 16 bits.
const MAX_TABLE_FEATURES: usize = 12;

/// Most table entries over the whole ensemble (16 MiB); trees past it use quadrature.
const TABLE_BUDGET: usize = 1 << 21;

/// In `roots`: the tree's reasons are tabulated rather than computed by a quadrature rule.
const TABULATED: u8 = u8::MAX;

/// A validated [`TreeEnsemble`] laid out for fast margins and exact SHAP values.
#[derive(Debug, Clone)]
pub struct CompiledTrees {
    nodes: Vec<Node>,
    /// Per node: the leaf's output (0 for splits), apart so that walking stays in 24-byte nodes.
    leaf_value: Vec<f64>,
    /// Per node: its cover over its parent's, the share of training rows that took this branch.
    branch_share: Vec<f64>,
    /// Per tree: the root's index in `nodes` and the quadrature rule its reasons use, or
    /// [`TABULATED`].
    roots: Vec<(u32, u8)>,
    /// The splits of tabulated trees, parents before children.
    table_splits: Vec<TableSplit>,
    /// The leaves of tabulated trees whose paths split on something, other than those in
    /// [`CompiledTrees::table_pairs`], each with `v A(O)` for every pattern `O` of satisfied
    /// path features.
    table_leaves: ByLength<TableLeaf>,
    /// The splits of tabulated trees whose children are both leaves, with the leaves, each
    /// with `P(O)` and `R(O)` side by side for every pattern `O`.
    table_pairs: ByLength<TablePair>,
    /// The columns tabulated trees split on, one per [`TableSums`] entry.
    table_columns: Vec<u32>,
    /// Tree indices from shallowest to deepest, walked [`LANES`] at a time.
    walk_order: Vec<u32>,
    /// Per group of [`LANES`] trees in `walk_order`: the depth of the deepest among them.
    group_depth: Vec<usize>,
    rules: Vec<Rule>,
    /// Points of the largest rule any tree uses, to size [`ShapScratch`]; 0 when every tree is
    /// tabulated, which needs no scratch.
    widest_rule: usize,
    /// A leaf, where lanes past the last group of trees wait.
    idle_lane: usize,
    base_score: f64,
    expected_margin: f64,
    columns: usize,
    /// Per column: whether it holds category codes.
    categorical: Vec<bool>,
    /// Margins by leaf masks, unless the model is too large for them: then by walking.
    leaf_masks: Option<LeafMasks>,
}

/// Working memory for [`CompiledTrees::shap_into`], reused between calls.
#[derive(Debug, Clone)]
pub struct ShapScratch {
    /// Per column, while a split on it is on the current path: the path's share and whether
    /// the customer follows it (1 or 0).
    zero: Vec<f64>,
    one: Vec<f64>,
    on_path: Vec<bool>,
    /// Per column and quadrature point: the summed leaf products below the nearest splits on
    /// that column under the current node, whose contributions those splits report themselves.
    below: Vec<f64>,
    /// Per node, for tabulated trees: the path features the customer satisfies on the way.
    patterns: Vec<u16>,
}

impl CompiledTrees {
    /// Validates `ensemble` against the encoded columns (`categorical[k]` tells whether column `k`
    /// holds codes) and compiles it.
    pub fn new(ensemble: &TreeEnsemble, categorical: &[bool]) -> Result<Self> {
        Self::compile(ensemble, categorical, TABLE_BUDGET)
    }

    /// Compiles with at most `table_budget` table entries; tests pass 0 to check quadrature.
    fn compile(ensemble: &TreeEnsemble, categorical: &[bool], table_budget: usize) -> Result<Self> {
        ensemble.validate(categorical)?;
        if categorical.is_empty() || categorical.len() > COLUMN as usize {
            return Err(CoreError::InvalidArtifact {
                reason: format!(
                    "a tree model needs between 1 and {COLUMN} encoded columns, not {}",
                    categorical.len()
                ),
            });
        }
        let mut compiled = CompiledTrees {
            nodes: Vec::new(),
            leaf_value: Vec::new(),
            branch_share: Vec::new(),
            roots: Vec::with_capacity(ensemble.trees.len()),
            table_splits: Vec::new(),
            table_leaves: ByLength::new(),
            table_pairs: ByLength::new(),
            table_columns: Vec::new(),
            walk_order: Vec::new(),
            group_depth: Vec::new(),
            rules: RULE_SIZES
                .iter()
                .map(|&n| Rule::gauss_legendre(n))
                .collect(),
            widest_rule: 0,
            idle_lane: 0,
            base_score: ensemble.base_score,
            expected_margin: ensemble.expected_margin(),
            columns: categorical.len(),
            categorical: categorical.to_vec(),
            leaf_masks: LeafMasks::new(ensemble, categorical.len()),
        };
        let depths: Vec<usize> = ensemble.trees.iter().map(Tree::max_depth).collect();
        for (index, (tree, &depth)) in ensemble.trees.iter().zip(&depths).enumerate() {
            if depth > MAX_TREE_DEPTH {
                return Err(CoreError::InvalidArtifact {
                    reason: format!(
                        "tree {index} is {depth} levels deep; at most {MAX_TREE_DEPTH} are supported"
                    ),
                });
            }
            let paths = path_features(tree, categorical.len());
            let distinct = paths.deepest;
            if distinct > MAX_DISTINCT_FEATURES {
                return Err(CoreError::InvalidArtifact {
                    reason: format!(
                        "tree {index} has a path through {distinct} distinct features; at most \
                         {MAX_DISTINCT_FEATURES} are supported"
                    ),
                });
            }
            let points = distinct.div_ceil(2).max(1);
            let rule = RULE_SIZES
                .iter()
                .position(|&size| size >= points)
                .expect("the largest rule covers MAX_DISTINCT_FEATURES");
            let root =
                u32::try_from(compiled.nodes.len()).map_err(|_| CoreError::InvalidArtifact {
                    reason: "the ensemble has more than 2^32 nodes".into(),
                })?;
            let slots = compiled.push_tree(tree);
            let mut new_columns: Vec<u32> = (0..tree.len())
                .filter(|&node| !tree.is_leaf(node))
                .map(|node| tree.feature[node])
                .filter(|column| !compiled.table_columns.contains(column))
                .collect();
            new_columns.sort_unstable();
            new_columns.dedup();
            if distinct <= MAX_TABLE_FEATURES
                && paths.table_entries <= table_budget - compiled.table_entries()
                && new_columns.len() <= MAX_TABLE_COLUMNS - compiled.table_columns.len()
            {
                compiled.table_columns.extend(new_columns);
                compiled.push_tables(tree, &slots);
                compiled.roots.push((root, TABULATED));
            } else {
                compiled.roots.push((root, rule as u8));
                compiled.widest_rule = compiled.widest_rule.max(RULE_SIZES[rule]);
            }
        }
        compiled.table_leaves.group();
        compiled.table_pairs.group();
        compiled.idle_lane = compiled.nodes.iter().position(Node::is_leaf).unwrap_or(0); // no trees: no group is walked
        compiled.walk_order = (0..ensemble.trees.len() as u32).collect();
        compiled
            .walk_order
            .sort_by_key(|&tree| depths[tree as usize]);
        compiled.group_depth = compiled
            .walk_order
            .chunks(LANES)
            .map(|group| {
                group
                    .iter()
                    .map(|&tree| depths[tree as usize])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        Ok(compiled)
    }

    /// Returns the raw margin (log-odds) for an encoded row; equal to [`TreeEnsemble::margin`].
    pub fn margin(&self, row: &[f64]) -> f64 {
        if let Some(masks) = &self.leaf_masks {
            return masks.margin(row);
        }
        self.walked_margin(row)
    }

    /// Returns the bytes of leaf masks margins are computed with, 0 when trees are walked.
    pub fn leaf_mask_bytes(&self) -> usize {
        self.leaf_masks.as_ref().map_or(0, LeafMasks::bytes)
    }

    /// Returns how many trees have their reasons tabulated rather than computed by quadrature.
    pub fn tabulated_trees(&self) -> usize {
        self.roots
            .iter()
            .filter(|&&(_, rule)| rule == TABULATED)
            .count()
    }

    /// Returns the expected margin over training rows: the base value of the SHAP values.
    pub fn expected_margin(&self) -> f64 {
        self.expected_margin
    }

    /// Returns working memory for [`CompiledTrees::shap_into`].
    pub fn scratch(&self) -> ShapScratch {
        // Each pass sizes only what it reads.
        let columns = if self.widest_rule == 0 {
            0
        } else {
            self.columns
        };
        let nodes = if !self.has_tables() {
            0
        } else {
            self.nodes.len()
        };
        ShapScratch {
            zero: vec![1.0; columns],
            one: vec![1.0; columns],
            on_path: vec![false; columns],
            below: vec![0.0; columns * self.widest_rule],
            patterns: vec![0; nodes],
        }
    }

    /// Adds each encoded column's exact SHAP value for `row` to `phi`, so that
    /// `expected_margin() + Σ phi = margin(row)` up to rounding. `scratch` comes from
    /// [`CompiledTrees::scratch`] on this ensemble.
    pub fn shap_into(&self, row: &[f64], phi: &mut [f64], scratch: &mut ShapScratch) {
        if self.has_tables() {
            match CompleteRow::new(row, &self.categorical) {
                Some(step) => self.tabulated_shap(&step, phi, scratch),
                None => self.tabulated_shap(&AnyRow::new(row), phi, scratch),
            }
        }
        for &(root, rule) in &self.roots {
            if rule == TABULATED {
                continue;
            }
            let rule_of = &self.rules[rule as usize];
            match RULE_SIZES[rule as usize] {
                1 => self.tree_shap::<1>(root, rule_of, row, phi, scratch),
                2 => self.tree_shap::<2>(root, rule_of, row, phi, scratch),
                3 => self.tree_shap::<3>(root, rule_of, row, phi, scratch),
                4 => self.tree_shap::<4>(root, rule_of, row, phi, scratch),
                5 => self.tree_shap::<5>(root, rule_of, row, phi, scratch),
                6 => self.tree_shap::<6>(root, rule_of, row, phi, scratch),
                8 => self.tree_shap::<8>(root, rule_of, row, phi, scratch),
                11 => self.tree_shap::<11>(root, rule_of, row, phi, scratch),
                16 => self.tree_shap::<16>(root, rule_of, row, phi, scratch),
                32 => self.tree_shap::<32>(root, rule_of, row, phi, scratch),
                _ => self.tree_shap::<64>(root, rule_of, row, phi, scratch),
            }
        }
    }
}
