//! Reasons by quadrature: one pass per tree that keeps the path's product at the points of a
//! Gauss–Legendre rule exact for it.

use super::nodes::{Node, RECURS};
use super::{CompiledTrees, RULE_SIZES, ShapScratch};

/// Gauss–Legendre nodes and weights on [0, 1].
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub(super) points: Vec<f64>,
    pub(super) weights: Vec<f64>,
    /// `weights / (1 − points)`: a branch the customer does not take has the factor
    /// `z (1 − t)`, and dividing by it needs no division at run time.
    pub(super) cold_weights: Vec<f64>,
}

impl Rule {
    /// Returns the `n`-point rule, exact for polynomials of degree up to `2n − 1`.
    pub(super) fn gauss_legendre(n: usize) -> Rule {
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

/// Returns the smallest rule that integrates polynomials of `degree` exactly.
pub(super) fn rule_for_degree(degree: usize, rules: &[Rule]) -> &Rule {
    let points = (degree + 1).div_ceil(2);
    &rules[RULE_SIZES
        .iter()
        .position(|&size| size >= points)
        .expect("a rule covers MAX_TABLE_FEATURES")]
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

impl CompiledTrees {
    pub(super) fn tree_shap<const Q: usize>(
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
