use churn_core::CompiledTrees;

use super::grow::Grower;
use super::histogram::{Bin, BinnedColumn, FEW_SLOTS, bin_uppers, lay_out_histogram};
use super::split::Split;
use super::*;

#[test]
fn bins_split_between_distinct_values_and_balance_counts() {
    assert_eq!(
        bin_uppers(&[3.0, 1.0, 2.0, 2.0, f64::NAN], 255),
        vec![1.5, 2.5]
    );
    let many: Vec<f64> = (0..1000).map(f64::from).collect();
    let upper = bin_uppers(&many, 4);
    assert_eq!(upper.len(), 3);
    // Four bins of 250 values each: bounds between 249|250, 499|500, 749|750.
    assert_eq!(upper, vec![249.5, 499.5, 749.5]);
}

/// Columns of every kind the histogram fills differently: a two-code category, a few-bin
/// numeric column with missing values (both filled in lanes) and one of 255 bins; with
/// random gradients, and an odd subset of rows so that lanes leave a remainder.
fn binned_columns() -> (Vec<BinnedColumn>, Vec<[f64; 2]>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = 5003;
    let mut draw = |k: u32| f64::from(rand::Rng::gen_range(&mut rng, 0..k));
    let code: Vec<f64> = (0..n).map(|_| draw(2)).collect();
    let few: Vec<f64> = (0..n)
        .map(|_| {
            let value = draw(5);
            if value == 4.0 { f64::NAN } else { value }
        })
        .collect();
    let many: Vec<f64> = (0..n).map(|_| draw(1000)).collect();
    let mut columns = vec![
        BinnedColumn::new(&code, true, 255).unwrap(),
        BinnedColumn::new(&few, false, 255).unwrap(),
        BinnedColumn::new(&many, false, 255).unwrap(),
    ];
    lay_out_histogram(&mut columns);
    assert!(columns[1].slots() <= FEW_SLOTS && columns[2].slots() > FEW_SLOTS);
    let gradients = (0..n)
        .map(|_| [draw(2001) / 1000.0 - 1.0, draw(250) / 1000.0 + 1e-3])
        .collect();
    let rows = (0..n as u32).filter(|_| draw(3) > 0.0).collect();
    (columns, gradients, rows)
}

fn grower<'a>(
    params: &'a GbdtParams,
    columns: &'a [BinnedColumn],
    gradients: &'a [[f64; 2]],
) -> Grower<'a> {
    Grower {
        params,
        columns,
        histogram_len: columns.iter().map(BinnedColumn::slots).sum(),
        gradients,
        allowed: vec![true; columns.len()],
    }
}

#[test]
fn histograms_in_lanes_equal_plain_sums() {
    let (columns, gradients, rows) = binned_columns();
    let params = GbdtParams::default();
    let histogram = grower(&params, &columns, &gradients).histogram(&rows);
    for column in &columns {
        let mut plain = vec![Bin::default(); column.slots()];
        for &row in &rows {
            let [gradient, hessian] = gradients[row as usize];
            plain[column.bins[row as usize] as usize].add_row(gradient, hessian);
        }
        let filled = &histogram[column.offset..][..column.slots()];
        for (bin, (filled, plain)) in filled.iter().zip(&plain).enumerate() {
            assert_eq!(filled.count, plain.count, "bin {bin}");
            assert!((filled.gradient - plain.gradient).abs() < 1e-9, "bin {bin}");
            assert!((filled.hessian - plain.hessian).abs() < 1e-9, "bin {bin}");
        }
        assert!(plain.iter().filter(|bin| bin.count > 0.0).count() >= 2);
    }
}

#[test]
fn partitions_keep_order_and_follow_the_split() {
    let (columns, gradients, rows) = binned_columns();
    let params = GbdtParams::default();
    let grower = grower(&params, &columns, &gradients);
    // Codes: code 1 left. Few bins: up to bin 1, missing (bin 4) left or right. Many: bin 100.
    let splits = [
        (0, 0, 0b10, false),
        (1, 1, 0, true),
        (1, 1, 0, false),
        (2, 100, 0, false),
    ];
    for (feature, bin, mask, default_left) in splits {
        let column = &columns[feature];
        let goes_left = |row: &u32| {
            let value = column.bins[*row as usize] as usize;
            if value == column.n_bins {
                default_left
            } else if column.categorical {
                mask >> value & 1 == 1
            } else {
                value <= bin
            }
        };
        let expected: (Vec<u32>, Vec<u32>) = rows.iter().partition(|row| goes_left(row));
        let count = |rows: &[u32]| Bin {
            count: rows.len() as f64,
            ..Bin::default()
        };
        let split = Split {
            gain: 1.0,
            feature,
            bin,
            mask,
            default_left,
            left: count(&expected.0),
            right: count(&expected.1),
        };
        assert!(!expected.0.is_empty() && !expected.1.is_empty());
        assert_eq!(
            grower.partition(&split, &rows),
            expected,
            "{feature} {default_left}"
        );
    }
}

/// A leaf's histogram over one categorical column of eight codes, 0.25 hessian a row:
/// code 0 has 5 rows and the churniest gradient ratio of all, codes 1 and 2 have 200 rows
/// and churn, codes 3..=7 have 200 rows and churn a little less than average; no missing
/// values.
fn category_histogram() -> (Vec<BinnedColumn>, Vec<Bin>, Bin) {
    let codes: Vec<f64> = (0..8).map(f64::from).collect();
    let mut columns = vec![BinnedColumn::new(&codes, true, 255).unwrap()];
    lay_out_histogram(&mut columns);
    let sums = [(5.0, -10.0), (200.0, -50.0), (200.0, -40.0)]
        .into_iter()
        .chain([0.0, 1.0, 2.0, 3.0, 4.0].map(|gradient| (200.0, gradient)));
    let (histogram, total) = code_histogram(sums);
    (columns, histogram, total)
}

/// A categorical column's histogram from each code's (rows, gradient sum) at 0.25 hessian a
/// row, with an empty slot for missing values; and its total.
fn code_histogram(sums: impl IntoIterator<Item = (f64, f64)>) -> (Vec<Bin>, Bin) {
    let mut histogram: Vec<Bin> = sums
        .into_iter()
        .map(|(count, gradient)| Bin {
            gradient,
            hessian: 0.25 * count,
            count,
        })
        .collect();
    histogram.push(Bin::default());
    let mut total = Bin::default();
    histogram.iter().for_each(|bin| total.add(bin));
    (histogram, total)
}

/// Expected splits and gains from LightGBM's search re-derived in Python from
/// feature_histogram.hpp (FindBestThresholdCategoricalInner: categories with at least
/// `cat_smooth` rows sorted by smoothed ratio, sets grown from both ends up to
/// `max_cat_threshold` and half the categories, tried every `min_data_per_group` rows, the
/// children scored with `cat_l2` more L2 than the parent), run on this histogram.
#[test]
fn categorical_splits_follow_lightgbms_rules() {
    let (columns, histogram, total) = category_histogram();
    let best =
        |params: GbdtParams| grower(&params, &columns, &[]).best_split(&histogram, &total, 0);
    let defaults = GbdtParams::default();
    let cases = [
        // The two churny codes; code 0, too rare to pick out, goes with the rest.
        (defaults.clone(), Some((0b110, 400.0, 49.977941035428614))),
        // Without the count rule, its ratio puts it first and it joins them.
        (
            GbdtParams {
                min_data_per_category: 1,
                ..defaults.clone()
            },
            Some((0b111, 405.0, 66.47496951310374)),
        ),
        // At most `max_categories_picked` codes.
        (
            GbdtParams {
                max_categories_picked: 1,
                ..defaults.clone()
            },
            Some((0b10, 200.0, 23.112673899256233)),
        ),
        // Sets are tried once they add `min_data_per_group` rows: 500 takes three codes.
        (
            GbdtParams {
                min_data_per_group: 500,
                ..defaults.clone()
            },
            Some((0b1110, 600.0, 27.31552706866682)),
        ),
        // And never with fewer rows than that on the other side.
        (
            GbdtParams {
                min_data_per_group: 1000,
                ..defaults
            },
            None,
        ),
    ];
    for (params, expected) in cases {
        let found = best(params.clone()).map(|split| (split.mask, split.left.count, split.gain));
        match (found, expected) {
            (Some((mask, count, gain)), Some((want_mask, want_count, want_gain))) => {
                assert_eq!((mask, count), (want_mask, want_count), "{params:?}");
                assert!((gain - want_gain).abs() < 1e-9, "{gain} {want_gain}");
            }
            _ => assert_eq!(found.is_none(), expected.is_none(), "{params:?}"),
        }
    }
}

#[test]
fn a_column_of_few_categories_may_send_any_prefix_left() {
    // Code 0: 5 rows and the churniest ratio; code 1 churns; code 2 does not.
    let codes = [0.0, 1.0, 2.0];
    let mut columns = vec![BinnedColumn::new(&codes, true, 255).unwrap()];
    lay_out_histogram(&mut columns);
    let (histogram, total) = code_histogram([(5.0, -10.0), (200.0, -50.0), (200.0, 40.0)]);
    let best = |params: GbdtParams| {
        let split = grower(&params, &columns, &[])
            .best_split(&histogram, &total, 0)
            .expect("a split");
        (split.mask, split.gain)
    };
    // Three codes are few: codes 0 and 1 go left together, the gain at the leaf's own L2
    // (Python: g²/(h + 1) summed over the sides, less the parent's).
    let (mask, gain) = best(GbdtParams::default());
    assert_eq!(mask, 0b011);
    assert!((gain - 96.36009011061053).abs() < 1e-9, "{gain}");
    // Counted as many, the rules apply: code 0 is too rare, one code at most is picked, and
    // code 2 alone wins (LightGBM's search re-derived in Python).
    let (mask, gain) = best(GbdtParams {
        few_categories: 2,
        ..GbdtParams::default()
    });
    assert_eq!(mask, 0b100);
    assert!((gain - 80.14885305782833).abs() < 1e-9, "{gain}");
}

/// Churn from one numeric column, and a column of 60 codes drawn at random (noise that a
/// split can fit: each code holds about 50 rows).
fn noise_category(n: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = Vec::with_capacity(n * 2);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let x: f64 = rand::Rng::r#gen(&mut rng);
        let code = f64::from(rand::Rng::gen_range(&mut rng, 0..60u8));
        let churn = rand::Rng::r#gen::<f64>(&mut rng) < 0.2 + 0.5 * x;
        data.extend([x, code]);
        labels.push(churn);
    }
    (Array2::from_shape_vec((n, 2), data).unwrap(), labels)
}

#[test]
fn the_category_rules_keep_trees_off_noise_and_generalise_better() {
    let ((train, train_labels), (test, test_labels)) =
        (noise_category(3000, 5), noise_category(3000, 6));
    // Splits on the noise column per tree, and log loss on the 3,000 rows not trained on.
    let fit = |params: GbdtParams| {
        let fitted = params
            .check()
            .unwrap()
            .fit(&train, &[false, true], &train_labels, 1)
            .unwrap();
        let trees = &fitted.ensemble.trees;
        let on_noise = trees
            .iter()
            .flat_map(|tree| {
                (0..tree.len()).filter(|&node| tree.left[node] != 0 && tree.feature[node] == 1)
            })
            .count() as f64
            / trees.len() as f64;
        let log_loss = test
            .rows()
            .into_iter()
            .zip(&test_labels)
            .map(|(row, &churn)| {
                let p = sigmoid(fitted.ensemble.margin(row.as_slice().unwrap()));
                -(if churn { p } else { 1.0 - p }).ln()
            })
            .sum::<f64>()
            / 3000.0;
        (on_noise, log_loss)
    };
    let fixed = GbdtParams {
        max_trees: 50,
        early_stopping_rounds: 0,
        ..GbdtParams::default()
    };
    let regularised = fit(fixed.clone());
    let unregularised = fit(GbdtParams {
        category_l2: 0.0,
        min_data_per_category: 1,
        min_data_per_group: 1,
        max_categories_picked: 64,
        ..fixed
    });
    assert!(
        regularised.0 < 0.7 * unregularised.0 && regularised.1 < unregularised.1,
        "splits on the noise per tree and holdout log loss: {regularised:?} against \
         {unregularised:?}"
    );
}

/// Rows where churn = (x0 > 0.5) xor (code of x1 is 2), with x0 missing for some rows
/// that churn: an interaction, a categorical effect and informative missingness.
fn synthetic(n: usize) -> (Array2<f64>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut data = Vec::with_capacity(n * 3);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let x0: f64 = rand::Rng::r#gen(&mut rng);
        let code = f64::from(rand::Rng::gen_range(&mut rng, 0..4u8));
        let noise: f64 = rand::Rng::r#gen(&mut rng);
        let missing = noise < 0.1;
        let churn = if missing {
            true
        } else {
            (x0 > 0.5) != (code == 2.0)
        };
        data.extend([if missing { f64::NAN } else { x0 }, code, noise]);
        labels.push(churn);
    }
    (Array2::from_shape_vec((n, 3), data).unwrap(), labels)
}

#[test]
fn learns_interactions_categories_and_missing_values() {
    let (x, y) = synthetic(4000);
    let params = GbdtParams {
        max_leaves: 8,
        learning_rate: 0.2,
        ..GbdtParams::default()
    }
    .check()
    .unwrap();
    let fitted = params.fit(&x, &[false, true, false], &y, 7).unwrap();
    let ensemble = &fitted.ensemble;
    let correct = x
        .rows()
        .into_iter()
        .zip(&y)
        .filter(|(row, label)| (ensemble.margin(row.as_slice().unwrap()) > 0.0) == **label)
        .count();
    assert!(correct as f64 / y.len() as f64 > 0.98, "{correct}");
    // Early stopping kept fewer trees than allowed, and the trees are valid for core.
    assert!(ensemble.trees.len() < 1000);
    let compiled = CompiledTrees::new(ensemble, &[false, true, false]).unwrap();
    // The noise column is nearly useless: most of |SHAP| goes to x0 and the category.
    let mut phi_total = [0.0; 3];
    let mut scratch = compiled.scratch();
    for row in x.rows().into_iter().take(500) {
        let mut phi = [0.0; 3];
        compiled.shap_into(row.as_slice().unwrap(), &mut phi, &mut scratch);
        for (total, value) in phi_total.iter_mut().zip(phi) {
            *total += value.abs();
        }
    }
    assert!(
        phi_total[2] < 0.1 * (phi_total[0] + phi_total[1]),
        "{phi_total:?}"
    );
}

#[test]
fn the_same_seed_gives_the_same_trees_and_another_seed_differs() {
    let (x, y) = synthetic(1500);
    let params = GbdtParams {
        row_subsample: 0.7,
        column_subsample: 0.67,
        max_trees: 30,
        ..GbdtParams::default()
    }
    .check()
    .unwrap();
    let first = params.fit(&x, &[false, true, false], &y, 11).unwrap();
    let again = params.fit(&x, &[false, true, false], &y, 11).unwrap();
    let other = params.fit(&x, &[false, true, false], &y, 12).unwrap();
    assert_eq!(first.ensemble, again.ensemble);
    assert_ne!(first.ensemble, other.ensemble);
}

#[test]
fn bad_parameters_and_inputs_are_refused() {
    for bad in [
        GbdtParams {
            max_leaves: 1,
            ..GbdtParams::default()
        },
        GbdtParams {
            max_leaves: 513,
            ..GbdtParams::default()
        },
        GbdtParams {
            max_bins: 256,
            ..GbdtParams::default()
        },
        GbdtParams {
            row_subsample: 0.0,
            ..GbdtParams::default()
        },
    ] {
        assert!(bad.clone().check().is_err(), "{bad:?}");
    }
    let params = GbdtParams::default().check().unwrap();
    let x = Array2::from_shape_vec((2, 1), vec![1.0, f64::INFINITY]).unwrap();
    assert!(params.fit(&x, &[false], &[true, false], 0).is_err());
    let error = params.fit(&x, &[false], &[true, false], 0).unwrap_err();
    assert_eq!(
        error.to_string(),
        "fitting the gbdt model failed: encoded row 1, column 0: inf is not finite"
    );
    let codes = Array2::from_shape_vec((2, 1), vec![1.0, 70.0]).unwrap();
    assert!(params.fit(&codes, &[true], &[true, false], 0).is_err());
    // Without early stopping, as two rows cannot be split for it.
    let all_rows = GbdtParams {
        early_stopping_rounds: 0,
        ..GbdtParams::default()
    };
    let error = all_rows
        .check()
        .unwrap()
        .fit(&codes, &[true], &[true, false], 0)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "fitting the gbdt model failed: category code 70 out of range 0 to 63"
    );
}
