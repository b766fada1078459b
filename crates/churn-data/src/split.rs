//! Seeded stratified splits: a holdout split and k folds, each keeping the churn rate.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};

/// Row indices of one split, each list sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The rows to learn from.
    pub train: Vec<usize>,
    /// The rows held out to measure on.
    pub test: Vec<usize>,
}

/// Returns each class's row indices, shuffled with `seed`.
fn shuffled_classes(labels: &[bool], seed: u64) -> [Vec<usize>; 2] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut classes = [Vec::new(), Vec::new()];
    for (row, &label) in labels.iter().enumerate() {
        classes[usize::from(label)].push(row);
    }
    for class in &mut classes {
        class.shuffle(&mut rng);
    }
    classes
}

/// Splits rows into train and test, `test_fraction` of each class going to test.
pub fn stratified_split(labels: &[bool], test_fraction: f64, seed: u64) -> Result<Split> {
    if !(0.0 < test_fraction && test_fraction < 1.0) {
        return Err(DataError::Split {
            rows: labels.len(),
            reason: format!("test fraction {test_fraction} is not between 0 and 1"),
        });
    }
    let mut split = Split {
        train: Vec::new(),
        test: Vec::new(),
    };
    for class in shuffled_classes(labels, seed) {
        let n_test = (class.len() as f64 * test_fraction).round() as usize;
        if n_test == 0 || n_test == class.len() {
            return Err(DataError::Split {
                rows: labels.len(),
                reason: format!(
                    "a class of {} rows cannot give both train and test rows",
                    class.len()
                ),
            });
        }
        split.test.extend_from_slice(&class[..n_test]);
        split.train.extend_from_slice(&class[n_test..]);
    }
    split.train.sort_unstable();
    split.test.sort_unstable();
    Ok(split)
}

/// Splits rows into `k` folds of (nearly) equal size and churn rate.
pub fn stratified_k_fold(labels: &[bool], k: usize, seed: u64) -> Result<Vec<Split>> {
    let classes = shuffled_classes(labels, seed);
    let smallest = classes.iter().map(Vec::len).min().unwrap_or(0);
    if k < 2 || smallest < k {
        return Err(DataError::Split {
            rows: labels.len(),
            reason: format!(
                "{k} folds need k ≥ 2 and at least k rows of each class (the smaller class has {smallest})"
            ),
        });
    }
    let mut fold_of = vec![0; labels.len()];
    // Deal each class round-robin, continuing where the previous class stopped, so fold sizes
    // differ by at most one.
    let mut next = 0;
    for class in &classes {
        for &row in class {
            fold_of[row] = next % k;
            next += 1;
        }
    }
    Ok((0..k)
        .map(|fold| {
            let (test, train): (Vec<usize>, Vec<usize>) =
                (0..labels.len()).partition(|&row| fold_of[row] == fold);
            Split { train, test }
        })
        .collect())
}

/// Holds out about `test_fraction` of the groups (customers seen at several snapshots) with all
/// their rows, stratified by whether the group ever churned.
pub fn grouped_split(
    groups: &[String],
    labels: &[bool],
    test_fraction: f64,
    seed: u64,
) -> Result<Split> {
    let (group_of_row, group_churned) = index_groups(groups, labels);
    let by_group = stratified_split(&group_churned, test_fraction, seed)?;
    let mut in_test = vec![false; group_churned.len()];
    for &group in &by_group.test {
        in_test[group] = true;
    }
    let (test, train): (Vec<usize>, Vec<usize>) =
        (0..groups.len()).partition(|&row| in_test[group_of_row[row]]);
    Ok(Split { train, test })
}

/// Numbers groups in order of first appearance; returns each row's group and whether each
/// group has a churned row.
fn index_groups(groups: &[String], labels: &[bool]) -> (Vec<usize>, Vec<bool>) {
    let mut index_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut group_of_row = Vec::with_capacity(groups.len());
    let mut group_churned: Vec<bool> = Vec::new();
    for (row, group) in groups.iter().enumerate() {
        let index = *index_of.entry(group.as_str()).or_insert_with(|| {
            group_churned.push(false);
            group_churned.len() - 1
        });
        group_churned[index] |= labels[row];
        group_of_row.push(index);
    }
    (group_of_row, group_churned)
}

/// Splits rows into `k` folds that keep each group (a customer seen at several snapshots)
/// whole, so no fold is tested on a customer it trained on; folds are stratified by whether the
/// group ever churned.
pub fn grouped_k_fold(
    groups: &[String],
    labels: &[bool],
    k: usize,
    seed: u64,
) -> Result<Vec<Split>> {
    let (group_of_row, group_churned) = index_groups(groups, labels);
    Ok(stratified_k_fold(&group_churned, k, seed)?
        .into_iter()
        .map(|fold| {
            let mut in_test = vec![false; group_churned.len()];
            for &group in &fold.test {
                in_test[group] = true;
            }
            let (test, train): (Vec<usize>, Vec<usize>) =
                (0..groups.len()).partition(|&row| in_test[group_of_row[row]]);
            Split { train, test }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<bool> {
        (0..103).map(|i| i % 4 == 0).collect()
    }

    #[test]
    fn holdout_keeps_the_churn_rate_and_covers_every_row_once() {
        let labels = labels();
        let split = stratified_split(&labels, 0.2, 7).unwrap();
        assert_eq!(split.train.len() + split.test.len(), labels.len());
        let test_positives = split.test.iter().filter(|&&row| labels[row]).count();
        assert_eq!(test_positives, 5); // round(26 × 0.2)
        let mut all: Vec<usize> = split.train.iter().chain(&split.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
        assert_eq!(split, stratified_split(&labels, 0.2, 7).unwrap());
        assert_ne!(split, stratified_split(&labels, 0.2, 8).unwrap());
    }

    #[test]
    fn folds_partition_rows_with_balanced_classes() {
        let labels = labels();
        let folds = stratified_k_fold(&labels, 5, 1).unwrap();
        let mut seen = vec![0; labels.len()];
        for fold in &folds {
            for &row in &fold.test {
                seen[row] += 1;
            }
            let positives = fold.test.iter().filter(|&&row| labels[row]).count();
            assert!((5..=6).contains(&positives), "{positives}");
            assert!((20..=21).contains(&fold.test.len()));
            assert_eq!(fold.train.len() + fold.test.len(), labels.len());
        }
        assert!(seen.iter().all(|&count| count == 1));
    }

    #[test]
    fn grouped_folds_keep_each_customer_on_one_side() {
        let groups: Vec<String> = (0..300).map(|row| format!("C{}", row % 100)).collect();
        let labels: Vec<bool> = (0..300).map(|row| row % 100 < 20 && row >= 200).collect();
        let folds = grouped_k_fold(&groups, &labels, 5, 3).unwrap();
        let mut tested = vec![0; 300];
        for fold in &folds {
            let test_groups: std::collections::HashSet<&str> =
                fold.test.iter().map(|&row| groups[row].as_str()).collect();
            assert!(
                fold.train
                    .iter()
                    .all(|&row| !test_groups.contains(groups[row].as_str()))
            );
            assert_eq!(test_groups.len(), 20);
            // 20 of the 100 customers churn at some snapshot: 4 per fold.
            let churners = test_groups
                .iter()
                .filter(|group| group[1..].parse::<usize>().unwrap() < 20)
                .count();
            assert_eq!(churners, 4);
            for &row in &fold.test {
                tested[row] += 1;
            }
        }
        assert!(tested.iter().all(|&count| count == 1));
    }

    #[test]
    fn too_few_rows_for_the_folds_is_an_error() {
        let labels = vec![true, false, false, false];
        assert!(stratified_k_fold(&labels, 2, 0).is_err());
        assert!(stratified_k_fold(&labels, 1, 0).is_err());
    }
}
