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
            let weight = factorial(size) * factorial(n_features - size - 1) / factorial(n_features);
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
