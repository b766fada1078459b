//! Algorithm 2 of Lundberg et al. 2018 ("Consistent individualized feature attribution for tree
//! ensembles"), path by path with extend and unwind, kept as an independent reference for the
//! quadrature TreeSHAP in [`crate::compiled`] on trees too deep to enumerate subsets.

use crate::tree::Tree;

/// Adds each column's exact path-dependent SHAP value for `row` under `tree` to `phi`.
pub(crate) fn reference_shap(tree: &Tree, row: &[f64], phi: &mut [f64]) {
    let depth = tree.max_depth();
    // The segment of level d starts at 1 + 2 + … + d and holds d + 1 elements.
    let mut path = vec![PathElement::default(); (depth + 1) * (depth + 2) / 2 + 1];
    tree_shap(tree, row, phi, 0, 0, &mut path, 0, 1.0, 1.0, None);
}

#[derive(Debug, Default, Clone, Copy)]
struct PathElement {
    feature: Option<u32>,
    zero_fraction: f64,
    one_fraction: f64,
    weight: f64,
}

/// Recursion of Algorithm 2. `path[start..]` is this level's working area: the parent's path is
/// at `path[parent_start..parent_start + depth]` and is copied to `start` before extending it.
#[allow(clippy::too_many_arguments)]
fn tree_shap(
    tree: &Tree,
    row: &[f64],
    phi: &mut [f64],
    node: usize,
    depth: usize,
    path: &mut [PathElement],
    parent_start: usize,
    zero_fraction: f64,
    one_fraction: f64,
    feature: Option<u32>,
) {
    let start = if depth == 0 { 0 } else { parent_start + depth };
    if depth > 0 {
        path.copy_within(parent_start..parent_start + depth, start);
    }
    let mut unique_depth = depth;
    extend_path(
        &mut path[start..],
        unique_depth,
        zero_fraction,
        one_fraction,
        feature,
    );

    if tree.is_leaf(node) {
        let segment = &path[start..];
        for i in 1..=unique_depth {
            let weight = unwound_path_sum(segment, unique_depth, i);
            let element = segment[i];
            if let Some(feature) = element.feature {
                phi[feature as usize] +=
                    weight * (element.one_fraction - element.zero_fraction) * tree.value[node];
            }
        }
        return;
    }

    let split_feature = tree.feature[node];
    let (hot, cold) = if tree.goes_left(node, row[split_feature as usize]) {
        (tree.left[node] as usize, tree.right[node] as usize)
    } else {
        (tree.right[node] as usize, tree.left[node] as usize)
    };
    let hot_zero_fraction = tree.cover[hot] / tree.cover[node];
    let cold_zero_fraction = tree.cover[cold] / tree.cover[node];
    let mut incoming_zero_fraction = 1.0;
    let mut incoming_one_fraction = 1.0;

    // A feature split on earlier along the path is undone here and redone with both splits.
    if let Some(index) =
        (1..=unique_depth).find(|&i| path[start + i].feature == Some(split_feature))
    {
        incoming_zero_fraction = path[start + index].zero_fraction;
        incoming_one_fraction = path[start + index].one_fraction;
        unwind_path(&mut path[start..], unique_depth, index);
        unique_depth -= 1;
    }

    tree_shap(
        tree,
        row,
        phi,
        hot,
        unique_depth + 1,
        path,
        start,
        hot_zero_fraction * incoming_zero_fraction,
        incoming_one_fraction,
        Some(split_feature),
    );
    tree_shap(
        tree,
        row,
        phi,
        cold,
        unique_depth + 1,
        path,
        start,
        cold_zero_fraction * incoming_zero_fraction,
        0.0,
        Some(split_feature),
    );
}

fn extend_path(
    path: &mut [PathElement],
    depth: usize,
    zero_fraction: f64,
    one_fraction: f64,
    feature: Option<u32>,
) {
    path[depth] = PathElement {
        feature,
        zero_fraction,
        one_fraction,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    };
    let size = (depth + 1) as f64;
    for i in (0..depth).rev() {
        path[i + 1].weight += one_fraction * path[i].weight * (i + 1) as f64 / size;
        path[i].weight = zero_fraction * path[i].weight * (depth - i) as f64 / size;
    }
}

fn unwind_path(path: &mut [PathElement], depth: usize, index: usize) {
    let one_fraction = path[index].one_fraction;
    let zero_fraction = path[index].zero_fraction;
    let size = (depth + 1) as f64;
    let mut next_one_portion = path[depth].weight;
    for i in (0..depth).rev() {
        if one_fraction != 0.0 {
            let kept = path[i].weight;
            path[i].weight = next_one_portion * size / ((i + 1) as f64 * one_fraction);
            next_one_portion = kept - path[i].weight * zero_fraction * (depth - i) as f64 / size;
        } else {
            path[i].weight = path[i].weight * size / (zero_fraction * (depth - i) as f64);
        }
    }
    for i in index..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero_fraction = path[i + 1].zero_fraction;
        path[i].one_fraction = path[i + 1].one_fraction;
    }
}

fn unwound_path_sum(path: &[PathElement], depth: usize, index: usize) -> f64 {
    let one_fraction = path[index].one_fraction;
    let zero_fraction = path[index].zero_fraction;
    let size = (depth + 1) as f64;
    let mut next_one_portion = path[depth].weight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one_fraction != 0.0 {
            let part = next_one_portion * size / ((i + 1) as f64 * one_fraction);
            total += part;
            next_one_portion = path[i].weight - part * zero_fraction * (depth - i) as f64 / size;
        } else if zero_fraction != 0.0 {
            total += path[i].weight / zero_fraction / ((depth - i) as f64 / size);
        }
    }
    total
}
