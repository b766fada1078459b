//! Reasons by table: per leaf and leaf pair, the sums `v A(O)`, `P(O)` and `R(O)` for every
//! pattern `O` of satisfied path features, and the two flat passes that read them.

use super::nodes::{Node, Step};
use super::quadrature::{Rule, rule_for_degree};
use super::{CompiledTrees, MAX_TABLE_FEATURES, ShapScratch};
use crate::tree::Tree;

/// A split of a tabulated tree: the node, its index, and its column's bit in the patterns of
/// satisfied path features, in `first` too when the split is the first on its column along
/// the path.
#[derive(Debug, Clone, Copy)]
pub(super) struct TableSplit {
    node: Node,
    index: u32,
    bit: u16,
    first: u16,
}

/// A leaf of a tabulated tree: its node.
#[derive(Debug, Clone, Copy)]
pub(super) struct TableLeaf {
    node: u32,
}

/// A split of a tabulated tree whose children are both leaves, on a column `f` with the
/// leaves' outputs `v_L`, `v_R` and shares `z_L`, `z_R` on it. Its path features are those
/// of the split without `f`.
#[derive(Debug, Clone, Copy)]
pub(super) struct TablePair {
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
pub(super) struct ByLength<T> {
    pub(super) items: Vec<T>,
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
    pub(super) fn new() -> Self {
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
    pub(super) fn group(&mut self) {
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
pub(super) const MAX_TABLE_COLUMNS: usize = 256;

/// Tabulated trees' SHAP values per entry of `table_columns`; a fixed size, so that a byte
/// indexes it without a bounds check.
type TableSums = [f64; MAX_TABLE_COLUMNS];

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

/// Tells whether `node` is a split whose children are both leaves: a leaf pair, tabulated as
/// one (see "Leaf pairs").
fn is_leaf_pair(tree: &Tree, node: usize) -> bool {
    !tree.is_leaf(node)
        && tree.is_leaf(tree.left[node] as usize)
        && tree.is_leaf(tree.right[node] as usize)
}

/// Distinct columns split on along a tree's root-to-leaf paths.
pub(super) struct PathFeatures {
    /// The most on one path.
    pub(super) deepest: usize,
    /// Table entries the leaves would need, `2^distinct` each, a leaf pair's two counting as
    /// one (saturating). (Validation guarantees every branch a share `z > 0`, so the ratios
    /// `(1 − z) / z` are finite.)
    pub(super) table_entries: usize,
}

pub(super) fn path_features(tree: &Tree, columns: usize) -> PathFeatures {
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

impl CompiledTrees {
    /// Tabulates a tree's reasons; `slots` maps its nodes to their index in `nodes`.
    pub(super) fn push_tables(&mut self, tree: &Tree, slots: &[usize]) {
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

    /// Returns how many table entries the tabulated trees use.
    pub(super) fn table_entries(&self) -> usize {
        self.table_leaves.tables.len() + self.table_pairs.tables.len()
    }

    /// Tells whether some tree's reasons are tabulated, with a split at least.
    pub(super) fn has_tables(&self) -> bool {
        !(self.table_leaves.items.is_empty() && self.table_pairs.items.is_empty())
    }

    /// Adds the tabulated trees' SHAP values in two flat passes. The first carries each node's
    /// pattern of satisfied path features from its parent, splits in order (but those of leaf
    /// pairs); the second adds the terms of every leaf and leaf pair, those of one path length
    /// together so that the inner loop has a fixed length.
    pub(super) fn tabulated_shap(
        &self,
        step: &impl Step,
        phi: &mut [f64],
        scratch: &mut ShapScratch,
    ) {
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
}
