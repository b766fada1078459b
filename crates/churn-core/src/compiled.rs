//! A tree ensemble compiled for scoring: every node packed in 24 bytes with siblings side by side,
//! and exact path-dependent TreeSHAP.
//!
//! # Margins
//! Margins come from QuickScorer's leaf masks (`leaf_masks.rs`): per column and value bin, the
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
//! pattern's bit picks. Deeper trees, or a model whose tables would outgrow [`TABLE_BUDGET`],
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

use crate::error::{CoreError, Result};
use crate::leaf_masks::LeafMasks;
use crate::tree::{Tree, TreeEnsemble};

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

/// A split of a tabulated tree: the node, its index, and its column's bit in the patterns of
/// satisfied path features, in `first` too when the split is the first on its column along
/// the path.
#[derive(Debug, Clone, Copy)]
struct TableSplit {
    node: Node,
    index: u32,
    bit: u16,
    first: u16,
}

/// A leaf of a tabulated tree: its node.
#[derive(Debug, Clone, Copy)]
struct TableLeaf {
    node: u32,
}

/// A split of a tabulated tree whose children are both leaves, on a column `f` with the
/// leaves' outputs `v_L`, `v_R` and shares `z_L`, `z_R` on it. Its path features are those
/// of the split without `f`.
#[derive(Debug, Clone, Copy)]
struct TablePair {
    /// The split, which the first pass leaves out: a pair reads its pattern and takes it
    /// itself.
    split: TableSplit,
    /// The entry of `f` in [`TableSums`].
    sum: u8,
    /// `v_L z_L + v_R z_R`, the factor of `P`.
    cold: f64,
    /// The factor of `R` by `case`: 0 twice while the customer misses a branch on `f` above
    /// (whichever way they go at the split), then `v_L` or `v_R` for the leaf they go to.
    hot: [f64; 4],
    /// `f`'s own SHAP value over `P(O)` in the same four cases.
    split_terms: [f64; 4],
}

/// Items with path features, grouped by how many they have so that a loop over one group
/// has a fixed length.
#[derive(Debug, Clone)]
struct ByLength<T> {
    items: Vec<T>,
    /// The items' path features, item after item, as `(1 − z) / z` and their columns' entries
    /// in [`TableSums`] (apart, as they are read in turn: 9 bytes a term).
    ratios: Vec<f64>,
    sums: Vec<u8>,
    /// The items' tables, item after item: in the order they are read, and of one size for
    /// one number of path features, so that none needs an offset.
    tables: Vec<f64>,
    /// While building, per item: how many path features it has and its table's length.
    lengths: Vec<(usize, usize)>,
    /// Where the items with `k` path features start, in `items`, in the features and in
    /// `tables`.
    starts: [(usize, usize, usize); MAX_TABLE_FEATURES + 2],
}

impl<T: Copy> ByLength<T> {
    fn new() -> Self {
        ByLength {
            items: Vec::new(),
            ratios: Vec::new(),
            sums: Vec::new(),
            tables: Vec::new(),
            lengths: Vec::new(),
            starts: [(0, 0, 0); MAX_TABLE_FEATURES + 2],
        }
    }

    fn push(&mut self, item: T, features: Vec<PathFeature>, table: Vec<f64>) {
        self.lengths.push((features.len(), table.len()));
        for feature in features {
            self.ratios.push(feature.ratio);
            self.sums.push(feature.sum);
        }
        self.tables.extend(table);
        self.items.push(item);
    }

    /// Sorts the items, stably, by how many path features they have.
    fn group(&mut self) {
        let (mut feature_starts, mut table_starts) = (Vec::new(), Vec::new());
        let (mut feature, mut table) = (0, 0);
        for &(features, entries) in &self.lengths {
            feature_starts.push(feature..feature + features);
            table_starts.push(table..table + entries);
            feature += features;
            table += entries;
        }
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        order.sort_by_key(|&item| self.lengths[item].0);
        self.items = order.iter().map(|&item| self.items[item]).collect();
        self.ratios = in_order(&self.ratios, &feature_starts, &order);
        self.sums = in_order(&self.sums, &feature_starts, &order);
        self.tables = in_order(&self.tables, &table_starts, &order);
        let (mut items, mut features, mut entries) = (0, 0, 0);
        for k in 0..self.starts.len() {
            self.starts[k] = (items, features, entries);
            for &item in order[items..]
                .iter()
                .take_while(|&&item| self.lengths[item].0 == k)
            {
                items += 1;
                features += k;
                entries += self.lengths[item].1;
            }
        }
        self.lengths = Vec::new();
    }

    /// Returns the items with `k` path features and their features' ratios and sums, `k` per
    /// item.
    fn run(&self, k: usize) -> Run<'_, T> {
        let ((item, feature, table), (end, feature_end, table_end)) =
            (self.starts[k], self.starts[k + 1]);
        Run {
            items: &self.items[item..end],
            ratios: &self.ratios[feature..feature_end],
            sums: &self.sums[feature..feature_end],
            tables: &self.tables[table..table_end],
        }
    }
}

/// Returns the runs of `values` (item `i`'s at `ranges[i]`) one after another in `order`.
fn in_order<V: Copy>(values: &[V], ranges: &[std::ops::Range<usize>], order: &[usize]) -> Vec<V> {
    order
        .iter()
        .flat_map(|&item| &values[ranges[item].clone()])
        .copied()
        .collect()
}

/// The items of a [`ByLength`] with one number of path features.
struct Run<'a, T> {
    items: &'a [T],
    ratios: &'a [f64],
    sums: &'a [u8],
    tables: &'a [f64],
}

/// Returns a path feature's factor of a table entry: `(1 − z) / z` once the customer takes
/// every branch on it (`taken` is 1), −1 while they miss one; picked by index, not a branch.
#[inline(always)]
fn factor(taken: usize, ratio: f64) -> f64 {
    [-1.0, ratio][taken & 1]
}

/// One of a leaf's path features: `(1 − z) / z` and its column's entry in [`TableSums`].
#[derive(Debug, Clone, Copy)]
struct PathFeature {
    ratio: f64,
    sum: u8,
}

/// Most distinct columns that tabulated trees split on together: one byte indexes their sums.
const MAX_TABLE_COLUMNS: usize = 256;

/// Tabulated trees' SHAP values per entry of `table_columns`; a fixed size, so that a byte
/// indexes it without a bounds check.
type TableSums = [f64; MAX_TABLE_COLUMNS];

/// Trees walked side by side, so that one tree's memory loads overlap the others'.
const LANES: usize = 8;

/// One node in 24 bytes. A split sends a value to `left` or `left + 1`: right when it is above
/// `threshold` or its code is not in `codes`. A numeric split sends every code left, a
/// categorical one has an infinite threshold, so one test without a branch serves both. A leaf
/// points back at itself (a numeric split at +∞ on a column past the row's end that never
/// misses), so a walk can take more steps than a tree is deep without a branch per step.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Node {
    /// Inclusive on the left.
    threshold: f64,
    /// Codes sent left; every bit for numeric splits.
    codes: u64,
    left: u32,
    /// Column split on, with the flag bits below.
    feature: u32,
}

const DEFAULT_LEFT: u32 = 1 << 31;
const CATEGORICAL: u32 = 1 << 30;
const LEAF: u32 = 1 << 29;
/// The split's column is split on again somewhere below it.
const RECURS: u32 = 1 << 28;
const COLUMN: u32 = RECURS - 1;

impl Node {
    /// A leaf; `columns` is the row's length, where [`CompleteRow`] and [`AnyRow`] keep a value
    /// for leaves to read.
    fn leaf(index: usize, columns: usize) -> Node {
        Node {
            threshold: f64::INFINITY,
            codes: u64::MAX,
            left: index as u32,
            feature: LEAF | DEFAULT_LEFT | columns as u32,
        }
    }

    #[inline]
    fn is_leaf(&self) -> bool {
        self.feature & LEAF != 0
    }

    #[inline]
    fn column(&self) -> usize {
        (self.feature & COLUMN) as usize
    }

    /// Tells whether an encoded value goes left, computed without branches.
    #[inline]
    fn goes_left(&self, x: f64) -> bool {
        let numeric_left = x <= self.threshold;
        let categorical_left = self.codes & code_bit(x) != 0;
        let present_left = if self.feature & CATEGORICAL != 0 {
            categorical_left
        } else {
            numeric_left
        };
        if x.is_nan() {
            self.feature & DEFAULT_LEFT != 0
        } else {
            present_left
        }
    }

    /// Returns the child an encoded value goes to.
    #[inline]
    fn child(&self, x: f64) -> usize {
        self.left as usize + usize::from(!self.goes_left(x))
    }
}

/// Gauss–Legendre nodes and weights on [0, 1].
#[derive(Debug, Clone)]
struct Rule {
    points: Vec<f64>,
    weights: Vec<f64>,
    /// `weights / (1 − points)`: a branch the customer does not take has the factor
    /// `z (1 − t)`, and dividing by it needs no division at run time.
    cold_weights: Vec<f64>,
}

impl Rule {
    /// Returns the `n`-point rule, exact for polynomials of degree up to `2n − 1`.
    fn gauss_legendre(n: usize) -> Rule {
        let mut points = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(n);
        for i in 0..n {
            // Newton's method on the Legendre polynomial P_n from the usual cosine guess.
            let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
            let mut derivative = 1.0;
            for _ in 0..100 {
                let (mut previous, mut current) = (1.0, x);
                for k in 2..=n {
                    let k = k as f64;
                    let next = ((2.0 * k - 1.0) * x * current - (k - 1.0) * previous) / k;
                    previous = current;
                    current = next;
                }
                derivative = n as f64 * (x * current - previous) / (x * x - 1.0);
                let step = current / derivative;
                x -= step;
                if step.abs() < 1e-16 {
                    break;
                }
            }
            points.push((1.0 - x) / 2.0);
            weights.push(1.0 / ((1.0 - x * x) * derivative * derivative));
        }
        let cold_weights = weights
            .iter()
            .zip(&points)
            .map(|(weight, point)| weight / (1.0 - point))
            .collect();
        Rule {
            points,
            weights,
            cold_weights,
        }
    }
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

    /// Appends a tree; returns each of its nodes' index in `nodes`.
    fn push_tree(&mut self, tree: &Tree) -> Vec<usize> {
        let root = self.nodes.len();
        self.push_node(1.0);
        let mut slots = vec![0; tree.len()];
        // Per node: whether its column is split on again below it.
        let mut parent = vec![usize::MAX; tree.len()];
        let mut splits_below = vec![false; tree.len()];
        for node in (0..tree.len()).filter(|&node| tree.left[node] != 0) {
            parent[tree.left[node] as usize] = node;
            parent[tree.right[node] as usize] = node;
            let mut ancestor = parent[node];
            while ancestor != usize::MAX {
                if tree.feature[ancestor] == tree.feature[node] {
                    splits_below[ancestor] = true;
                }
                ancestor = parent[ancestor];
            }
        }
        // Depth first, left before right, each split's children side by side: a TreeSHAP pass
        // then reads the nodes nearly in memory order. Pairs are (node in `tree`, its slot).
        let mut pending = vec![(0usize, root)];
        while let Some((node, slot)) = pending.pop() {
            slots[node] = slot;
            if tree.left[node] == 0 {
                self.leaf_value[slot] = tree.value[node];
                continue;
            }
            let left = self.nodes.len();
            let (left_node, right_node) = (tree.left[node] as usize, tree.right[node] as usize);
            self.push_node(tree.cover[left_node] / tree.cover[node]);
            self.push_node(tree.cover[right_node] / tree.cover[node]);
            pending.push((right_node, left + 1));
            pending.push((left_node, left));
            let categories = tree.left_categories[node];
            let mut feature = tree.feature[node];
            if tree.default_left[node] {
                feature |= DEFAULT_LEFT;
            }
            if categories != 0 {
                feature |= CATEGORICAL;
            }
            if splits_below[node] {
                feature |= RECURS;
            }
            self.nodes[slot] = if categories != 0 {
                Node {
                    threshold: f64::INFINITY,
                    codes: categories,
                    left: left as u32,
                    feature,
                }
            } else {
                Node {
                    threshold: tree.threshold[node],
                    codes: u64::MAX,
                    left: left as u32,
                    feature,
                }
            };
        }
        slots
    }

    /// Tabulates a tree's reasons; `slots` maps its nodes to their index in `nodes`.
    fn push_tables(&mut self, tree: &Tree, slots: &[usize]) {
        self.tabulate(tree, slots, 0, &mut Vec::new());
    }

    /// Tabulates the subtree at `node`, reached through `path`: the distinct columns split on
    /// above it, in order of first split, each with its share `z` so far.
    fn tabulate(&mut self, tree: &Tree, slots: &[usize], node: usize, path: &mut Vec<(u32, f64)>) {
        let slot = slots[node];
        if tree.is_leaf(node) {
            if path.is_empty() {
                return; // a lone leaf contributes nothing
            }
            let zeros: Vec<f64> = path.iter().map(|&(_, zero)| zero).collect();
            let table = leaf_table(tree.value[node], &zeros, &self.rules);
            let features = self.path_feature_terms(path);
            self.table_leaves
                .push(TableLeaf { node: slot as u32 }, features, table);
            return;
        }
        let column = tree.feature[node];
        let (position, first) = match path.iter().position(|&(on_path, _)| on_path == column) {
            Some(position) => (position, false),
            None => {
                path.push((column, 1.0));
                (path.len() - 1, true)
            }
        };
        let bit = 1 << position;
        let split = TableSplit {
            node: self.nodes[slot],
            index: slot as u32,
            bit,
            first: if first { bit } else { 0 },
        };
        if is_leaf_pair(tree, node) {
            self.push_pair(tree, node, split, position, path);
        } else {
            self.table_splits.push(split);
            let zero = path[position].1;
            for child in [tree.left[node] as usize, tree.right[node] as usize] {
                path[position].1 = zero * tree.cover[child] / tree.cover[node];
                self.tabulate(tree, slots, child, path);
            }
            path[position].1 = zero;
        }
        if first {
            path.pop();
        }
    }

    /// Tabulates a split whose children are both leaves, reached through `path`, where its
    /// column is at `position`.
    fn push_pair(
        &mut self,
        tree: &Tree,
        node: usize,
        split: TableSplit,
        position: usize,
        path: &[(u32, f64)],
    ) {
        let (left, right) = (tree.left[node] as usize, tree.right[node] as usize);
        let (column, zero) = path[position];
        let [z_left, z_right] =
            [left, right].map(|leaf| zero * tree.cover[leaf] / tree.cover[node]);
        let [v_left, v_right] = [left, right].map(|leaf| tree.value[leaf]);
        let cold = v_left * z_left + v_right * z_right;
        let mut prefix = path.to_vec();
        prefix.remove(position);
        let zeros: Vec<f64> = prefix.iter().map(|&(_, zero)| zero).collect();
        let pair = TablePair {
            split,
            sum: self.table_sum(column),
            cold,
            hot: [0.0, 0.0, v_left, v_right],
            split_terms: [
                -cold,
                -cold,
                v_left * (1.0 - z_left) - v_right * z_right,
                v_right * (1.0 - z_right) - v_left * z_left,
            ],
        };
        let table = pair_table(&zeros, &self.rules);
        let features = self.path_feature_terms(&prefix);
        self.table_pairs.push(pair, features, table);
    }

    /// Returns the terms of features on a path: their factors and entries in [`TableSums`].
    fn path_feature_terms(&self, path: &[(u32, f64)]) -> Vec<PathFeature> {
        path.iter()
            .map(|&(column, zero)| PathFeature {
                ratio: (1.0 - zero) / zero,
                sum: self.table_sum(column),
            })
            .collect()
    }

    /// Returns a column's entry in [`TableSums`].
    fn table_sum(&self, column: u32) -> u8 {
        self.table_columns
            .iter()
            .position(|&known| known == column)
            .expect("the tree's columns are in table_columns") as u8
    }

    /// Appends a leaf with no output yet; returns its index.
    fn push_node(&mut self, branch_share: f64) -> usize {
        let index = self.nodes.len();
        self.nodes.push(Node::leaf(index, self.columns));
        self.leaf_value.push(0.0);
        self.branch_share.push(branch_share);
        index
    }

    /// Returns the raw margin (log-odds) for an encoded row; equal to [`TreeEnsemble::margin`].
    pub fn margin(&self, row: &[f64]) -> f64 {
        if let Some(masks) = &self.leaf_masks {
            return masks.margin(row);
        }
        self.walked_margin(row)
    }

    /// Returns the margin by walking every tree, for models too large for leaf masks.
    fn walked_margin(&self, row: &[f64]) -> f64 {
        match CompleteRow::new(row, &self.categorical) {
            Some(complete) => self.walk(&complete),
            None => self.walk(&AnyRow::new(row)),
        }
    }

    /// Walks every tree [`LANES`] at a time with `step` (a node to the child the row takes);
    /// returns the margin.
    #[inline(always)]
    fn walk(&self, step: &impl Step) -> f64 {
        let mut outputs = vec![0.0; self.roots.len()];
        for (group, &depth) in self.walk_order.chunks(LANES).zip(&self.group_depth) {
            let mut at = [self.idle_lane; LANES];
            for (lane, &tree) in at.iter_mut().zip(group) {
                *lane = self.roots[tree as usize].0 as usize;
            }
            // Leaves point at themselves, so a lane that reached one stays; lanes past the
            // group's end wait at a leaf and are not read. The walk ends when every lane is at
            // a leaf, at the latest after the group's depth.
            for _ in 0..depth {
                let mut all_leaves = LEAF;
                for lane in &mut at {
                    let node = &self.nodes[*lane];
                    all_leaves &= node.feature;
                    *lane = step.child(node);
                }
                if all_leaves != 0 {
                    break;
                }
            }
            for (&leaf, &tree) in at.iter().zip(group) {
                outputs[tree as usize] = self.leaf_value[leaf];
            }
        }
        // Summed in tree order, so the margin equals `TreeEnsemble::margin` to the bit.
        self.base_score + outputs.iter().sum::<f64>()
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

    /// Returns how many table entries the tabulated trees use.
    fn table_entries(&self) -> usize {
        self.table_leaves.tables.len() + self.table_pairs.tables.len()
    }

    /// Tells whether some tree's reasons are tabulated, with a split at least.
    fn has_tables(&self) -> bool {
        !(self.table_leaves.items.is_empty() && self.table_pairs.items.is_empty())
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

    /// Adds the tabulated trees' SHAP values in two flat passes. The first carries each node's
    /// pattern of satisfied path features from its parent, splits in order (but those of leaf
    /// pairs); the second adds the terms of every leaf and leaf pair, those of one path length
    /// together so that the inner loop has a fixed length.
    fn tabulated_shap(&self, step: &impl Step, phi: &mut [f64], scratch: &mut ShapScratch) {
        let patterns = &mut scratch.patterns;
        for split in &self.table_splits {
            // A split's feature counts as satisfied on the branch the row takes, unless a
            // branch on it was missed above; never on the other.
            let pattern = patterns[split.index as usize] | split.first;
            // Hidden from the optimiser, which would otherwise turn it into a branch on the
            // row's value, one that mispredicts as often as not.
            let left_cold = split.bit * std::hint::black_box(step.goes_right(&split.node)) as u16;
            let children: &mut [u16; 2] = (&mut patterns[split.node.left as usize..][..2])
                .try_into()
                .expect("siblings side by side");
            children[0] = pattern & !left_cold;
            children[1] = pattern & !(split.bit ^ left_cold);
        }
        let mut sums: TableSums = [0.0; MAX_TABLE_COLUMNS];
        for k in 0..=MAX_TABLE_FEATURES {
            let run = (self.table_leaves.run(k), &patterns[..]);
            match k {
                0 => {} // a path splits on something
                1 => self.leaf_terms::<1>(run, &mut sums),
                2 => self.leaf_terms::<2>(run, &mut sums),
                3 => self.leaf_terms::<3>(run, &mut sums),
                4 => self.leaf_terms::<4>(run, &mut sums),
                5 => self.leaf_terms::<5>(run, &mut sums),
                6 => self.leaf_terms::<6>(run, &mut sums),
                7 => self.leaf_terms::<7>(run, &mut sums),
                8 => self.leaf_terms::<8>(run, &mut sums),
                9 => self.leaf_terms::<9>(run, &mut sums),
                10 => self.leaf_terms::<10>(run, &mut sums),
                11 => self.leaf_terms::<11>(run, &mut sums),
                _ => self.leaf_terms::<12>(run, &mut sums),
            }
            let run = (self.table_pairs.run(k), &patterns[..]);
            match k {
                0 => self.pair_terms::<0>(run, step, &mut sums),
                1 => self.pair_terms::<1>(run, step, &mut sums),
                2 => self.pair_terms::<2>(run, step, &mut sums),
                3 => self.pair_terms::<3>(run, step, &mut sums),
                4 => self.pair_terms::<4>(run, step, &mut sums),
                5 => self.pair_terms::<5>(run, step, &mut sums),
                6 => self.pair_terms::<6>(run, step, &mut sums),
                7 => self.pair_terms::<7>(run, step, &mut sums),
                8 => self.pair_terms::<8>(run, step, &mut sums),
                9 => self.pair_terms::<9>(run, step, &mut sums),
                10 => self.pair_terms::<10>(run, step, &mut sums),
                11 => self.pair_terms::<11>(run, step, &mut sums),
                _ => {} // the split's feature is on the leaves' paths
            }
        }
        for (&column, sum) in self.table_columns.iter().zip(sums) {
            phi[column as usize] += sum;
        }
    }

    /// Adds the terms of leaves whose paths split on `K` distinct features: for each of them,
    /// `−v A(O)` when the customer misses a branch on it, `v (1 − z) / z · A(O ∖ i)` when not.
    #[inline(always)]
    fn leaf_terms<const K: usize>(
        &self,
        (leaves, patterns): (Run<'_, TableLeaf>, &[u16]),
        sums: &mut TableSums,
    ) {
        let all = (1 << K) - 1;
        let paths = leaves
            .ratios
            .chunks_exact(K)
            .zip(leaves.sums.chunks_exact(K));
        for (index, (leaf, (ratios, columns))) in leaves.items.iter().zip(paths).enumerate() {
            let pattern = patterns[leaf.node as usize] as usize & all;
            let table = &leaves.tables[index << K..][..1 << K];
            for position in 0..K {
                // Missed: −v A(O), and O is the pattern without this feature. Taken:
                // (1 − z) / z · v A(O ∖ i), the pattern without it too. Only the factor depends
                // on whether it is in the pattern.
                let without = table[pattern & !(1 << position) & all];
                sums[columns[position] as usize] +=
                    factor(pattern >> position, ratios[position]) * without;
            }
        }
    }

    /// Adds the terms of leaf pairs whose split has `K` other path features: for each of them,
    /// the leaves' terms together, `−(cold P(O) + hot R(O))` when the customer misses a branch
    /// on it and `(1 − z) / z · (cold P(O ∖ i) + hot R(O ∖ i))` when not; then the split
    /// feature's own term.
    #[inline(always)]
    fn pair_terms<const K: usize>(
        &self,
        (pairs, patterns): (Run<'_, TablePair>, &[u16]),
        step: &impl Step,
        sums: &mut TableSums,
    ) {
        let all = (1 << K) - 1;
        for (index, pair) in pairs.items.iter().enumerate() {
            let ratios = &pairs.ratios[index * K..][..K];
            let columns = &pairs.sums[index * K..][..K];
            let split = &pair.split;
            let above = usize::from(patterns[split.index as usize]);
            let bit = usize::from(split.bit);
            // The leaf the customer goes to has the split's feature in its pattern, unless
            // they missed a branch on it above. Bits only, so that no branch on the row's
            // values can be made of them (the split's test is hidden from the optimiser, as in
            // the first pass).
            let taken = usize::from((above | usize::from(split.first)) & bit != 0);
            let case = taken << 1 | std::hint::black_box(step.goes_right(&split.node));
            // The other features' pattern, the split's bit taken out.
            let below = bit - 1;
            let pattern = ((above & below) | (above >> 1 & !below)) & all;
            let table = &pairs.tables[index << (K + 1)..][..2 << K];
            let (cold, hot) = (pair.cold, pair.hot[case]);
            for position in 0..K {
                let without = 2 * (pattern & !(1 << position) & all);
                let value = cold * table[without] + hot * table[without + 1];
                sums[columns[position] as usize] +=
                    factor(pattern >> position, ratios[position]) * value;
            }
            sums[pair.sum as usize] += pair.split_terms[case] * table[2 * pattern];
        }
    }

    fn tree_shap<const Q: usize>(
        &self,
        root: u32,
        rule: &Rule,
        row: &[f64],
        phi: &mut [f64],
        scratch: &mut ShapScratch,
    ) {
        let mut pass = ShapPass::<Q> {
            nodes: &self.nodes,
            leaf_value: &self.leaf_value,
            branch_share: &self.branch_share,
            row,
            phi,
            points: rule.points[..].try_into().expect("rule of size Q"),
            weights: rule.weights[..].try_into().expect("rule of size Q"),
            cold_weights: rule.cold_weights[..].try_into().expect("rule of size Q"),
            scratch,
        };
        pass.visit(root as usize, [1.0; Q]);
    }
}

/// One tree's TreeSHAP for one row, with `Q` quadrature points.
struct ShapPass<'a, const Q: usize> {
    nodes: &'a [Node],
    leaf_value: &'a [f64],
    branch_share: &'a [f64],
    row: &'a [f64],
    phi: &'a mut [f64],
    points: [f64; Q],
    weights: [f64; Q],
    cold_weights: [f64; Q],
    scratch: &'a mut ShapScratch,
}

impl<const Q: usize> ShapPass<'_, Q> {
    /// Returns `z + (o − z) t` at each point: one feature's factor of the path's product.
    #[inline]
    fn factor(&self, zero: f64, one: f64) -> [f64; Q] {
        std::array::from_fn(|p| zero + (one - zero) * self.points[p])
    }

    #[inline]
    fn below(&self, column: usize) -> [f64; Q] {
        self.scratch.below[column * Q..(column + 1) * Q]
            .try_into()
            .expect("Q values per column")
    }

    #[inline]
    fn set_below(&mut self, column: usize, values: [f64; Q]) {
        self.scratch.below[column * Q..(column + 1) * Q].copy_from_slice(&values);
    }

    /// Visits the subtree at `index`, reached with the path's product of factors at each point;
    /// returns the sum over its leaves of output × product, and adds each split's contributions.
    fn visit(&mut self, index: usize, product: [f64; Q]) -> [f64; Q] {
        let node = self.nodes[index];
        if node.is_leaf() {
            let value = self.leaf_value[index];
            return product.map(|p| p * value);
        }
        let column = node.column();
        let recurs = node.feature & RECURS != 0;
        let hot = node.child(self.row[column]);
        let (zero, one, was_on_path) = (
            self.scratch.zero[column],
            self.scratch.one[column],
            self.scratch.on_path[column],
        );
        // A feature already split on above: its earlier factor is replaced by the merged one.
        let product = if was_on_path {
            let earlier = self.factor(zero, one);
            std::array::from_fn(|p| product[p] / earlier[p])
        } else {
            product
        };
        // The path state and `below` of this column are only read by later splits on it.
        let outer_below = if recurs {
            self.scratch.on_path[column] = true;
            self.below(column)
        } else {
            [0.0; Q]
        };
        let mut total = [0.0; Q];
        for child in [node.left as usize, node.left as usize + 1] {
            let child_zero = zero * self.branch_share[child];
            let child_one = if child == hot { one } else { 0.0 };
            let factor = self.factor(child_zero, child_one);
            let child_product = std::array::from_fn(|p| product[p] * factor[p]);
            let (sum, own) = if recurs {
                self.scratch.zero[column] = child_zero;
                self.scratch.one[column] = child_one;
                self.set_below(column, [0.0; Q]);
                let sum = self.visit(child, child_product);
                // Leaves below a deeper split on this column are that split's to report.
                let below = self.below(column);
                (sum, std::array::from_fn(|p| sum[p] - below[p]))
            } else {
                let sum = self.visit(child, child_product);
                (sum, sum)
            };
            self.phi[column] += if child_one == 0.0 {
                // (0 − z) / (z (1 − t)) = −1 / (1 − t)
                -(0..Q).map(|p| self.cold_weights[p] * own[p]).sum::<f64>()
            } else {
                (1.0 - child_zero)
                    * (0..Q)
                        .map(|p| self.weights[p] * own[p] / factor[p])
                        .sum::<f64>()
            };
            total = std::array::from_fn(|p| total[p] + sum[p]);
        }
        if recurs {
            self.scratch.zero[column] = zero;
            self.scratch.one[column] = one;
            self.scratch.on_path[column] = was_on_path;
            self.set_below(column, outer_below);
        }
        if was_on_path {
            let outer = self.below(column);
            self.set_below(column, std::array::from_fn(|p| outer[p] + total[p]));
        }
        total
    }
}

/// Returns `v A(O)` for every pattern `O` of a leaf's path features (bit `p` set when the
/// customer takes every branch on the `p`-th), given the leaf's output and each path feature's
/// share `z`.
fn leaf_table(value: f64, zeros: &[f64], rules: &[Rule]) -> Vec<f64> {
    // The integrand Π_{O} (z + (1 − z) t) Π_{U∖O} z (1 − t) / (1 − t) has degree |U| − 1.
    let rule = rule_for_degree(zeros.len().saturating_sub(1), rules);
    let mut table = vec![0.0; 1 << zeros.len()];
    let mut products: Vec<f64> = Vec::with_capacity(table.len());
    for (&t, &cold_weight) in rule.points.iter().zip(&rule.cold_weights) {
        pattern_products(zeros, t, &mut products);
        for (entry, product) in table.iter_mut().zip(&products) {
            *entry += cold_weight * product;
        }
    }
    table.iter_mut().for_each(|entry| *entry *= value);
    table
}

/// Returns `P(O)` and `R(O)` side by side for every pattern `O` of a leaf pair's path features
/// without the split's, given each one's share `z`: with `g = z + (1 − z) t` on features in
/// `O` and `z (1 − t)` on the others, `P(O) = ∫₀¹ Π g dt` and `R(O) = ∫₀¹ t Π g / (1 − t) dt`.
/// `R` of the full pattern, which no term reads, is 0.
fn pair_table(zeros: &[f64], rules: &[Rule]) -> Vec<f64> {
    // Both integrands have degree |U|: R's misses a branch, so (1 − t) divides its product.
    let rule = rule_for_degree(zeros.len(), rules);
    let mut table = vec![0.0; 2 << zeros.len()];
    let mut products: Vec<f64> = Vec::with_capacity(1 << zeros.len());
    for (&t, &weight) in rule.points.iter().zip(&rule.weights) {
        pattern_products(zeros, t, &mut products);
        let hot_weight = weight * t / (1.0 - t);
        for (entry, product) in table.chunks_exact_mut(2).zip(&products) {
            entry[0] += weight * product;
            entry[1] += hot_weight * product;
        }
    }
    let last = table.len() - 1;
    table[last] = 0.0;
    table
}

/// Returns the smallest rule that integrates polynomials of `degree` exactly.
fn rule_for_degree(degree: usize, rules: &[Rule]) -> &Rule {
    let points = (degree + 1).div_ceil(2);
    &rules[RULE_SIZES
        .iter()
        .position(|&size| size >= points)
        .expect("a rule covers MAX_TABLE_FEATURES")]
}

/// Sets `products` to, for every pattern `O` of features with shares `zeros`, the product at
/// `t` of `z + (1 − z) t` over the features in `O` and `z (1 − t)` over the others.
fn pattern_products(zeros: &[f64], t: f64, products: &mut Vec<f64>) {
    products.clear();
    products.push(1.0);
    for &zero in zeros {
        // Patterns with this feature's bit set are the upper half.
        let half = products.len();
        let (hot, cold) = (zero + (1.0 - zero) * t, zero * (1.0 - t));
        products.extend_from_within(..half);
        products[..half]
            .iter_mut()
            .for_each(|product| *product *= cold);
        products[half..]
            .iter_mut()
            .for_each(|product| *product *= hot);
    }
}

/// How a row goes down a tree: [`Step::child`] takes a split node to the child the row goes to
/// (and a leaf to itself).
trait Step {
    /// Returns 1 when the row goes right at a split, 0 when it goes left.
    fn goes_right(&self, node: &Node) -> usize;

    #[inline(always)]
    fn child(&self, node: &Node) -> usize {
        node.left as usize + self.goes_right(node)
    }
}

/// Steps for any row, missing values included.
struct AnyRow(Vec<f64>);

impl AnyRow {
    /// Returns the steps for `row`, with a value past its end for leaves to read.
    fn new(row: &[f64]) -> AnyRow {
        AnyRow(row.iter().copied().chain([0.0]).collect())
    }
}

impl Step for AnyRow {
    #[inline(always)]
    fn goes_right(&self, node: &Node) -> usize {
        usize::from(!node.goes_left(self.0[node.column()]))
    }
}

/// Steps for a row without missing values: no default direction to look up, and one test for
/// numeric and categorical splits alike.
struct CompleteRow {
    /// Per column: the value and its code's bit (every bit for numeric columns, so that a
    /// numeric split's codes always match); then one for leaves.
    cells: Vec<(f64, u64)>,
}

impl CompleteRow {
    /// Returns the steps for `row`, whose columns `categorical` flags hold codes, or `None`
    /// when a value is missing.
    fn new(row: &[f64], categorical: &[bool]) -> Option<Self> {
        if row.iter().any(|x| x.is_nan()) {
            return None;
        }
        let cells = row
            .iter()
            .zip(categorical)
            .map(|(&x, &codes)| (x, if codes { code_bit(x) } else { u64::MAX }))
            .chain([(0.0, u64::MAX)])
            .collect();
        Some(CompleteRow { cells })
    }
}

impl Step for CompleteRow {
    #[inline(always)]
    fn goes_right(&self, node: &Node) -> usize {
        let (value, code_bit) = self.cells[node.column()];
        usize::from(value > node.threshold) | usize::from(node.codes & code_bit == 0)
    }
}

/// Returns the bit of a value's category code. Codes are small non-negative integers from the
/// encoder; like `x as u64`, negative values read as code 0, and codes past 63 have no bit.
#[inline]
fn code_bit(x: f64) -> u64 {
    let code = x.max(0.0);
    if code < 64.0 {
        1 << ((code as u32) & 63)
    } else {
        0
    }
}

/// Tells whether `node` is a split whose children are both leaves: a leaf pair, tabulated as
/// one (see "Leaf pairs").
fn is_leaf_pair(tree: &Tree, node: usize) -> bool {
    !tree.is_leaf(node)
        && tree.is_leaf(tree.left[node] as usize)
        && tree.is_leaf(tree.right[node] as usize)
}

/// Distinct columns split on along a tree's root-to-leaf paths.
struct PathFeatures {
    /// The most on one path.
    deepest: usize,
    /// Table entries the leaves would need, `2^distinct` each, a leaf pair's two counting as
    /// one (saturating). (Validation guarantees every branch a share `z > 0`, so the ratios
    /// `(1 − z) / z` are finite.)
    table_entries: usize,
}

fn path_features(tree: &Tree, columns: usize) -> PathFeatures {
    fn walk(
        tree: &Tree,
        node: usize,
        counts: &mut [u32],
        distinct: usize,
        found: &mut PathFeatures,
    ) {
        let pair = is_leaf_pair(tree, node);
        let column = tree.feature[node] as usize;
        let distinct = if tree.is_leaf(node) {
            distinct
        } else {
            distinct + usize::from(counts[column] == 0)
        };
        if tree.is_leaf(node) || pair {
            found.deepest = found.deepest.max(distinct);
            let entries = 1usize.checked_shl(distinct as u32).unwrap_or(usize::MAX);
            found.table_entries = found.table_entries.saturating_add(entries);
            return;
        }
        counts[column] += 1;
        for child in [tree.left[node] as usize, tree.right[node] as usize] {
            walk(tree, child, counts, distinct, found);
        }
        counts[column] -= 1;
    }
    let mut found = PathFeatures {
        deepest: 0,
        table_entries: 0,
    };
    walk(tree, 0, &mut vec![0; columns], 0, &mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tests::random_tree;
    use crate::tree_shap_reference::reference_shap;
    use proptest::prelude::*;

    /// The path-dependent conditional expectation E[f(x) | x_S]: follow `row` at splits on
    /// features in `known`, average the children by cover elsewhere.
    fn conditional_expectation(tree: &Tree, row: &[f64], known: u32, node: usize) -> f64 {
        if tree.is_leaf(node) {
            return tree.value[node];
        }
        let feature = tree.feature[node];
        if known & (1 << feature) != 0 {
            return conditional_expectation(tree, row, known, tree.next(node, row));
        }
        let (left, right) = (tree.left[node] as usize, tree.right[node] as usize);
        (tree.cover[left] * conditional_expectation(tree, row, known, left)
            + tree.cover[right] * conditional_expectation(tree, row, known, right))
            / tree.cover[node]
    }

    /// Shapley values by enumerating every subset of features: the definition itself.
    fn brute_force_shapley(tree: &Tree, row: &[f64], n_features: usize) -> Vec<f64> {
        let factorial = |k: usize| (1..=k).map(|i| i as f64).product::<f64>();
        let mut phi = vec![0.0; n_features];
        for (feature, value) in phi.iter_mut().enumerate() {
            for subset in 0u32..(1 << n_features) {
                if subset & (1 << feature) != 0 {
                    continue;
                }
                let size = subset.count_ones() as usize;
                let weight =
                    factorial(size) * factorial(n_features - size - 1) / factorial(n_features);
                let with = conditional_expectation(tree, row, subset | (1 << feature), 0);
                let without = conditional_expectation(tree, row, subset, 0);
                *value += weight * (with - without);
            }
        }
        phi
    }

    fn row_strategy(n_features: usize) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(
            prop_oneof![9 => 0.0f64..1.0, 1 => Just(f64::NAN)],
            n_features,
        )
    }

    /// Builds a caterpillar: every split has a leaf on one side and the rest of the tree on the
    /// other, over `n_features` columns, so paths run through many distinct features.
    fn chain_tree(n_features: usize, depth: usize, seed: &[u32]) -> Tree {
        let mut bits = seed.iter().cycle().copied();
        let mut next = move || bits.next().unwrap_or(3);
        let mut tree = Tree::empty();
        let mut node = tree.push_leaf(f64::from(1u32 << 30));
        for _ in 0..depth {
            let cover = tree.cover[node];
            let leaf_cover = f64::from(1 + next() % 1000);
            tree.feature[node] = next() % n_features as u32;
            tree.threshold[node] = f64::from(next() % 100) / 100.0;
            tree.default_left[node] = next().is_multiple_of(2);
            let leaf = tree.push_leaf(leaf_cover);
            tree.value[leaf] = f64::from(next() % 200) / 100.0 - 1.0;
            let rest = tree.push_leaf(cover - leaf_cover);
            let (left, right) = if next().is_multiple_of(2) {
                (leaf, rest)
            } else {
                (rest, leaf)
            };
            tree.left[node] = left as u32;
            tree.right[node] = right as u32;
            node = rest;
        }
        tree.value[node] = 0.5;
        tree
    }

    /// Returns a tree's SHAP values for `row` from tables (where the tree allows them) and from
    /// quadrature.
    fn shap(tree: &Tree, row: &[f64]) -> [Vec<f64>; 2] {
        shap_with_codes(tree, row, &vec![false; row.len()])
    }

    /// As [`shap`], with the columns flagged in `categorical` holding codes.
    fn shap_with_codes(tree: &Tree, row: &[f64], categorical: &[bool]) -> [Vec<f64>; 2] {
        let ensemble = TreeEnsemble {
            base_score: 0.0,
            trees: vec![tree.clone()],
        };
        [TABLE_BUDGET, 0].map(|budget| {
            let compiled = CompiledTrees::compile(&ensemble, categorical, budget).unwrap();
            let mut phi = vec![0.0; row.len()];
            compiled.shap_into(row, &mut phi, &mut compiled.scratch());
            phi
        })
    }

    proptest! {
        /// Quadrature TreeSHAP equals the Shapley values computed from their definition, on small
        /// random trees where features repeat along paths.
        #[test]
        fn tree_shap_equals_brute_force_shapley(
            seed in prop::collection::vec(any::<u32>(), 64),
            row in row_strategy(5),
            max_depth in 1usize..7,
        ) {
            let tree = random_tree(5, max_depth, &seed);
            let expected = brute_force_shapley(&tree, &row, 5);
            for phi in shap(&tree, &row) {
                for (fast, exact) in phi.iter().zip(&expected) {
                    prop_assert!((fast - exact).abs() < 1e-9, "{phi:?} vs {expected:?}");
                }
            }
        }

        /// Both equal the Shapley values where column 0 holds category codes, split on by sets
        /// of codes, among numeric splits on the other columns: both kinds go through the one
        /// branch-free test of `CompleteRow` (and `Node::goes_left` when a value is missing).
        #[test]
        fn categorical_splits_give_the_shapley_values(
            seed in prop::collection::vec(any::<u32>(), 64),
            code in prop_oneof![9 => (0u32..8).prop_map(f64::from), 1 => Just(f64::NAN)],
            rest in row_strategy(4),
            max_depth in 1usize..7,
        ) {
            let mut tree = random_tree(5, max_depth, &seed);
            for node in 0..tree.len() {
                if !tree.is_leaf(node) && tree.feature[node] == 0 {
                    tree.left_categories[node] = u64::from(seed[node % seed.len()] % 255 + 1);
                }
            }
            let row: Vec<f64> = std::iter::once(code).chain(rest).collect();
            let expected = brute_force_shapley(&tree, &row, 5);
            let categorical = [true, false, false, false, false];
            for phi in shap_with_codes(&tree, &row, &categorical) {
                for (fast, exact) in phi.iter().zip(&expected) {
                    prop_assert!((fast - exact).abs() < 1e-9, "{phi:?} vs {expected:?}");
                }
            }
        }

        /// It equals Algorithm 2 of Lundberg et al. on bushy random trees and on paths through up
        /// to 40 distinct features. Deeper than that Algorithm 2 itself drifts (its residual
        /// `base + Σ φ − margin` reaches 1e-3 at 80 distinct features, where ours stays below
        /// 1e-14), so deeper trees are checked by additivity below.
        #[test]
        fn tree_shap_equals_algorithm_2_on_deep_trees(
            seed in prop::collection::vec(any::<u32>(), 97),
            row in row_strategy(150),
            depth in 1usize..40,
            bushy in any::<bool>(),
        ) {
            let tree = if bushy {
                random_tree(12, depth.min(16), &seed)
            } else {
                chain_tree(150, depth, &seed)
            };
            let mut expected = vec![0.0; row.len()];
            reference_shap(&tree, &row, &mut expected);
            for phi in shap(&tree, &row) {
                for (fast, exact) in phi.iter().zip(&expected) {
                    prop_assert!((fast - exact).abs() < 1e-9, "{fast} vs {exact}");
                }
            }
        }

        /// base value + Σ SHAP = margin, and the packed margin equals the arrays', for ensembles
        /// of random trees, some tabulated and some not when the budget runs out.
        #[test]
        fn shap_values_add_up_to_the_margin(
            seeds in prop::collection::vec(prop::collection::vec(any::<u32>(), 32), 1..20),
            row in row_strategy(6),
            base_score in -3.0f64..3.0,
            table_budget in 0usize..2000,
        ) {
            let trees = seeds.iter().map(|seed| random_tree(6, 8, seed)).collect();
            let ensemble = TreeEnsemble { base_score, trees };
            let compiled = CompiledTrees::compile(&ensemble, &[false; 6], table_budget).unwrap();
            prop_assert_eq!(compiled.margin(&row), ensemble.margin(&row));
            prop_assert_eq!(compiled.walked_margin(&row), ensemble.margin(&row));
            let mut phi = vec![0.0; 6];
            compiled.shap_into(&row, &mut phi, &mut compiled.scratch());
            let sum = compiled.expected_margin() + phi.iter().sum::<f64>();
            prop_assert!((sum - ensemble.margin(&row)).abs() < 1e-9);
        }
    }

    proptest! {
        /// Paths through up to ~110 distinct features, which need the largest quadrature rules,
        /// still add up to the margin.
        #[test]
        fn deep_paths_add_up_to_the_margin(
            seed in prop::collection::vec(any::<u32>(), 97),
            row in row_strategy(150),
            depth in 40usize..150,
        ) {
            let tree = chain_tree(150, depth, &seed);
            let [phi, _] = shap(&tree, &row);
            let sum = tree.expected_value() + phi.iter().sum::<f64>();
            prop_assert!((sum - tree.predict(&row)).abs() < 1e-12, "{sum} vs {}", tree.predict(&row));
        }
    }

    #[test]
    fn categorical_and_odd_values_route_as_in_the_stored_tree() {
        // Codes 0 and 2 go left at the root; then x1 <= 0.5, missing right.
        let tree = Tree {
            feature: vec![0, 1, 0, 0, 0],
            threshold: vec![0.0, 0.5, 0.0, 0.0, 0.0],
            left_categories: vec![0b101, 0, 0, 0, 0],
            default_left: vec![true, false, false, false, false],
            left: vec![1, 3, 0, 0, 0],
            right: vec![2, 4, 0, 0, 0],
            value: vec![0.0, 0.0, 0.25, -1.0, 1.0],
            cover: vec![10.0, 6.0, 4.0, 2.0, 4.0],
        };
        let ensemble = TreeEnsemble {
            base_score: 0.5,
            trees: vec![tree],
        };
        let compiled = CompiledTrees::new(&ensemble, &[true, false]).unwrap();
        let odd = [
            0.0,
            1.0,
            2.0,
            2.9,
            -3.0,
            63.0,
            64.0,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for code in odd {
            for x1 in [0.5, 0.6, -0.0, f64::NAN, f64::INFINITY] {
                let row = [code, x1];
                assert_eq!(compiled.margin(&row), ensemble.margin(&row), "{row:?}");
                assert_eq!(
                    compiled.walked_margin(&row),
                    ensemble.margin(&row),
                    "{row:?}"
                );
            }
        }
    }

    #[test]
    fn shallow_trees_are_tabulated_and_the_rest_use_quadrature() {
        let bushy = random_tree(5, 6, &[7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9]);
        let deep = chain_tree(40, 30, &(1..200).collect::<Vec<u32>>());
        let ensemble = TreeEnsemble {
            base_score: 0.0,
            trees: vec![bushy, deep],
        };
        let compiled = CompiledTrees::new(&ensemble, &[false; 40]).unwrap();
        let tabulated: Vec<bool> = compiled
            .roots
            .iter()
            .map(|&(_, rule)| rule == TABULATED)
            .collect();
        assert_eq!(tabulated, [true, false]);
        let none = CompiledTrees::compile(&ensemble, &[false; 40], 0).unwrap();
        assert!(none.roots.iter().all(|&(_, rule)| rule != TABULATED));
    }

    #[test]
    fn leaf_pairs_give_the_shapley_values_in_each_case() {
        // Root x0 <= 0.5. Left: x0 <= 0.2 again, a pair whose split feature is on the path
        // above. Right: x2 <= 0.5, then x1 <= 0.5, a pair on a new feature below a path
        // through x0 and x2.
        let tree = Tree {
            feature: vec![0, 0, 2, 0, 0, 0, 1, 0, 0],
            threshold: vec![0.5, 0.2, 0.5, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0],
            left_categories: vec![0; 9],
            default_left: vec![true, false, true, false, false, false, false, false, false],
            left: vec![1, 3, 5, 0, 0, 0, 7, 0, 0],
            right: vec![2, 4, 6, 0, 0, 0, 8, 0, 0],
            value: vec![0.0, 0.0, 0.0, -0.7, 0.3, 0.9, 0.0, -0.2, 1.4],
            cover: vec![100.0, 40.0, 60.0, 15.0, 25.0, 35.0, 25.0, 10.0, 15.0],
        };
        let ensemble = TreeEnsemble {
            base_score: 0.0,
            trees: vec![tree.clone()],
        };
        let compiled = CompiledTrees::new(&ensemble, &[false; 3]).unwrap();
        assert_eq!(compiled.table_pairs.items.len(), 2);
        assert_eq!(compiled.table_leaves.items.len(), 1);
        // x0 below both thresholds, between them, above both, or missing; each side of x1 and
        // x2: every case of both pairs.
        for x0 in [0.1, 0.3, 0.8, f64::NAN] {
            for x1 in [0.2, 0.9] {
                for x2 in [0.4, 0.6, f64::NAN] {
                    let row = [x0, x1, x2];
                    let expected = brute_force_shapley(&tree, &row, 3);
                    let mut phi = vec![0.0; 3];
                    compiled.shap_into(&row, &mut phi, &mut compiled.scratch());
                    for (fast, exact) in phi.iter().zip(&expected) {
                        assert!(
                            (fast - exact).abs() < 1e-12,
                            "{row:?}: {phi:?} vs {expected:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn tabulated_trees_split_on_at_most_256_columns_together() {
        // Each tree splits on three columns of its own, 300 in all: 85 trees use 255.
        let trees: Vec<Tree> = (0..100u32)
            .map(|index| {
                let mut tree = Tree::empty();
                let mut node = tree.push_leaf(1024.0);
                for column in 3 * index..3 * index + 3 {
                    let cover = tree.cover[node];
                    tree.feature[node] = column;
                    tree.threshold[node] = 0.5;
                    let leaf = tree.push_leaf(cover / 4.0);
                    tree.value[leaf] = f64::from(column % 7) / 10.0 - 0.3;
                    let rest = tree.push_leaf(cover - cover / 4.0);
                    tree.left[node] = leaf as u32;
                    tree.right[node] = rest as u32;
                    node = rest;
                }
                tree.value[node] = 0.2;
                tree
            })
            .collect();
        let ensemble = TreeEnsemble {
            base_score: 0.1,
            trees,
        };
        let compiled = CompiledTrees::new(&ensemble, &[false; 300]).unwrap();
        assert_eq!(compiled.tabulated_trees(), 85);
        let quadrature = CompiledTrees::compile(&ensemble, &[false; 300], 0).unwrap();
        assert_eq!(quadrature.tabulated_trees(), 0);
        let row: Vec<f64> = (0..300).map(|column| f64::from(column % 5) / 4.0).collect();
        let [mut phi, mut expected] = [vec![0.0; 300], vec![0.0; 300]];
        compiled.shap_into(&row, &mut phi, &mut compiled.scratch());
        quadrature.shap_into(&row, &mut expected, &mut quadrature.scratch());
        for (fast, exact) in phi.iter().zip(&expected) {
            assert!((fast - exact).abs() < 1e-12, "{fast} vs {exact}");
        }
        let sum = compiled.expected_margin() + phi.iter().sum::<f64>();
        assert!((sum - ensemble.margin(&row)).abs() < 1e-12);
    }

    #[test]
    fn an_ensemble_of_no_trees_or_single_leaves_scores_its_base() {
        let mut leaf = Tree::empty();
        leaf.push_leaf(5.0);
        leaf.value[0] = 0.25;
        for trees in [vec![], vec![leaf.clone()], vec![leaf.clone(), leaf]] {
            let ensemble = TreeEnsemble {
                base_score: -1.0,
                trees,
            };
            for budget in [TABLE_BUDGET, 0] {
                let compiled = CompiledTrees::compile(&ensemble, &[false], budget).unwrap();
                for row in [[0.5], [f64::NAN]] {
                    assert_eq!(compiled.margin(&row), ensemble.margin(&row));
                    assert_eq!(compiled.walked_margin(&row), ensemble.margin(&row));
                    let mut phi = [0.0];
                    compiled.shap_into(&row, &mut phi, &mut compiled.scratch());
                    assert_eq!(phi, [0.0]);
                }
            }
        }
    }

    #[test]
    fn trees_deeper_than_the_limit_are_refused() {
        let tree = chain_tree(3, MAX_TREE_DEPTH + 1, &[1, 2, 3, 4, 5]);
        let ensemble = TreeEnsemble {
            base_score: 0.0,
            trees: vec![tree],
        };
        let error = CompiledTrees::new(&ensemble, &[false; 3]).unwrap_err();
        assert!(error.to_string().contains("513 levels deep"), "{error}");
    }

    #[test]
    fn paths_through_too_many_distinct_features_are_refused() {
        let tree = chain_tree(1000, 400, &(0..500).collect::<Vec<u32>>());
        let ensemble = TreeEnsemble {
            base_score: 0.0,
            trees: vec![tree],
        };
        let error = CompiledTrees::new(&ensemble, &[false; 1000]).unwrap_err();
        assert!(error.to_string().contains("distinct features"), "{error}");
    }

    #[test]
    fn gauss_legendre_rules_integrate_polynomials_exactly() {
        for &n in &RULE_SIZES {
            let rule = Rule::gauss_legendre(n);
            for degree in 0..2 * n {
                let integral: f64 = rule
                    .points
                    .iter()
                    .zip(&rule.weights)
                    .map(|(t, w)| w * t.powi(degree as i32))
                    .sum();
                let exact = 1.0 / (degree as f64 + 1.0);
                assert!(
                    (integral - exact).abs() < 1e-13,
                    "{n} points, degree {degree}: {integral} vs {exact}"
                );
            }
        }
    }
}
