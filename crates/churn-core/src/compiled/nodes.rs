//! Nodes packed in 24 bytes, siblings side by side, and the walk that takes a row down
//! [`LANES`] trees at a time.

use super::CompiledTrees;
use crate::tree::Tree;

/// Trees walked side by side, so that one tree's memory loads overlap the others'.
pub(super) const LANES: usize = 8;

/// One node in 24 bytes. A split sends a value to `left` or `left + 1`: right when it is above
/// `threshold` or its code is not in `codes`. A numeric split sends every code left, a
/// categorical one has an infinite threshold, so one test without a branch serves both. A leaf
/// points back at itself (a numeric split at +∞ on a column past the row's end that never
/// misses), so a walk can take more steps than a tree is deep without a branch per step.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(super) struct Node {
    /// Inclusive on the left.
    threshold: f64,
    /// Codes sent left; every bit for numeric splits.
    codes: u64,
    pub(super) left: u32,
    /// Column split on, with the flag bits below.
    pub(super) feature: u32,
}

const DEFAULT_LEFT: u32 = 1 << 31;
const CATEGORICAL: u32 = 1 << 30;
const LEAF: u32 = 1 << 29;
/// The split's column is split on again somewhere below it.
pub(super) const RECURS: u32 = 1 << 28;
pub(super) const COLUMN: u32 = RECURS - 1;

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
    pub(super) fn is_leaf(&self) -> bool {
        self.feature & LEAF != 0
    }

    #[inline]
    pub(super) fn column(&self) -> usize {
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
    pub(super) fn child(&self, x: f64) -> usize {
        self.left as usize + usize::from(!self.goes_left(x))
    }
}

/// How a row goes down a tree: [`Step::child`] takes a split node to the child the row goes to
/// (and a leaf to itself).
pub(super) trait Step {
    /// Returns 1 when the row goes right at a split, 0 when it goes left.
    fn goes_right(&self, node: &Node) -> usize;

    #[inline(always)]
    fn child(&self, node: &Node) -> usize {
        node.left as usize + self.goes_right(node)
    }
}

/// Steps for any row, missing values included.
pub(super) struct AnyRow(Vec<f64>);

impl AnyRow {
    /// Returns the steps for `row`, with a value past its end for leaves to read.
    pub(super) fn new(row: &[f64]) -> AnyRow {
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
pub(super) struct CompleteRow {
    /// Per column: the value and its code's bit (every bit for numeric columns, so that a
    /// numeric split's codes always match); then one for leaves.
    cells: Vec<(f64, u64)>,
}

impl CompleteRow {
    /// Returns the steps for `row`, whose columns `categorical` flags hold codes, or `None`
    /// when a value is missing.
    pub(super) fn new(row: &[f64], categorical: &[bool]) -> Option<Self> {
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

impl CompiledTrees {
    /// Appends a tree; returns each of its nodes' index in `nodes`.
    pub(super) fn push_tree(&mut self, tree: &Tree) -> Vec<usize> {
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

    /// Appends a leaf with no output yet; returns its index.
    fn push_node(&mut self, branch_share: f64) -> usize {
        let index = self.nodes.len();
        self.nodes.push(Node::leaf(index, self.columns));
        self.leaf_value.push(0.0);
        self.branch_share.push(branch_share);
        index
    }

    /// Returns the margin by walking every tree, for models too large for leaf masks.
    pub(super) fn walked_margin(&self, row: &[f64]) -> f64 {
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
}
