//! In-process scoring speed: probability alone, probability + top-5 reasons each way, and the full
//! explanation (every feature in words), for a
//! 300-tree, 31-leaf tree model (early stopping off) and for logistic regression, both trained on
//! the shipped Telco data, and for the shipped model itself; then the parts: encoding a profile,
//! the margin and the SHAP values of an encoded row, loading the artifact; and probability + top-5
//! reasons over a batch on every core, the nightly rescoring's throughput.
//! `cargo bench --profile dev --workspace --bench scoring` (with `--workspace`, polars keeps the
//! features of the test build; `-p churn-train` alone would rebuild it).

use std::hint::black_box;

use std::path::PathBuf;

use churn_core::{Profile, RawValue, Scorer};
use churn_train::{CalibrationMethod, GbdtParams, ModelChoice, TrainConfig, train};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;

/// Returns the Telco CSV shipped in `notebooks-data/`.
fn telco_csv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../notebooks-data/telco/Telco-Customer-Churn.csv")
}

/// Returns the first `n` Telco customers as profiles of the model's features (not the id or the
/// target, which a profile naming them would be refused for), every value as text like a CRM
/// would send.
fn telco_profiles(n: usize) -> Vec<Profile> {
    let table = churn_data::read_table(&telco_csv()).expect("read Telco");
    (0..n.min(table.n_rows))
        .map(|row| {
            table
                .columns
                .iter()
                .filter(|column| !["customerID", "Churn"].contains(&column.name.as_str()))
                .map(|column| {
                    let value: RawValue = column.cells.value(row).to_raw();
                    (column.name.clone(), value)
                })
                .collect()
        })
        .collect()
}

fn scorer(model: ModelChoice) -> Scorer {
    let mut config = TrainConfig::new(telco_csv(), "Churn".into());
    config.id = Some("customerID".into());
    config.model = model;
    config.calibration = CalibrationMethod::None;
    config.gbdt = GbdtParams {
        max_trees: 300,
        max_leaves: 31,
        learning_rate: 0.1,
        early_stopping_rounds: 0,
        ..GbdtParams::default()
    };
    let outcome = train(&config, "bench").expect("train");
    Scorer::new(outcome.artifact).expect("scorer")
}

/// Returns the model shipped in `models/telco/`, the one `churn` serves by default.
fn shipped_scorer() -> Scorer {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/telco/model.json");
    let json = std::fs::read_to_string(path).expect("read the shipped model");
    Scorer::new(churn_core::ModelArtifact::from_json(&json).expect("artifact")).expect("scorer")
}

fn bench_scoring(c: &mut Criterion) {
    let profiles = telco_profiles(1024);
    for (name, scorer) in [
        ("gbdt_300x31", scorer(ModelChoice::Gbdt)),
        ("logistic", scorer(ModelChoice::Logistic)),
        ("shipped_telco", shipped_scorer()),
    ] {
        if let churn_core::Model::Gbdt(ensemble) = &scorer.artifact().model {
            let leaves: usize = ensemble
                .trees
                .iter()
                .map(|tree| tree.left.iter().filter(|&&left| left == 0).count())
                .sum();
            eprintln!(
                "{name}: {} trees, {:.1} leaves per tree, deepest {}",
                ensemble.trees.len(),
                leaves as f64 / ensemble.trees.len() as f64,
                ensemble.max_depth()
            );
        }
        let mut next = 0;
        c.bench_function(&format!("{name}/probability"), |b| {
            b.iter(|| {
                next = (next + 1) % profiles.len();
                black_box(scorer.score(black_box(&profiles[next])).expect("score"))
            })
        });
        // What Score and rescore do: only the top reasons are put into words.
        c.bench_function(&format!("{name}/probability_and_top5_reasons"), |b| {
            b.iter(|| {
                next = (next + 1) % profiles.len();
                let top = scorer
                    .explain_top(black_box(&profiles[next]), 5)
                    .expect("explain");
                black_box((top.raising.len(), top.lowering.len()))
            })
        });
        // What a nightly rescoring does: profiles explained side by side on every core (rayon,
        // as `churn rescore`), reported per profile (time per batch / batch size, or the
        // throughput line), so it can be set against the one-profile latency above.
        let batch = &profiles[..256];
        let mut group = c.benchmark_group(format!("{name}/batch_of_256_every_core"));
        group.throughput(Throughput::Elements(batch.len() as u64));
        group.bench_function("probability_and_top5_reasons", |b| {
            b.iter(|| {
                let explained: usize = batch
                    .par_iter()
                    .map(|profile| {
                        let top = scorer.explain_top(profile, 5).expect("explain");
                        top.raising.len() + top.lowering.len()
                    })
                    .sum();
                black_box(explained)
            })
        });
        group.finish();
        // What Explain does: every feature's reason in words.
        c.bench_function(&format!("{name}/full_explanation"), |b| {
            b.iter(|| {
                next = (next + 1) % profiles.len();
                let explanation = scorer.explain(black_box(&profiles[next])).expect("explain");
                black_box((explanation.raising(5).len(), explanation.lowering(5).len()))
            })
        });
        let encoded: Vec<Vec<f64>> = profiles
            .iter()
            .map(|p| scorer.encode(p).expect("encode"))
            .collect();
        c.bench_function(&format!("{name}/margin_of_encoded"), |b| {
            b.iter(|| {
                next = (next + 1) % profiles.len();
                black_box(scorer.logit_of_encoded(black_box(&encoded[next])))
            })
        });
        c.bench_function(&format!("{name}/encode"), |b| {
            b.iter(|| {
                next = (next + 1) % profiles.len();
                black_box(scorer.encode(black_box(&profiles[next])).expect("encode"))
            })
        });
        if let churn_core::Model::Gbdt(ensemble) = &scorer.artifact().model {
            let trees =
                churn_core::CompiledTrees::new(ensemble, &scorer.encoder().categorical_columns())
                    .expect("compile");
            eprintln!(
                "{name}: reasons of {} of {} trees by table, the rest by quadrature; margins by \
                 {} KiB of leaf masks (0: by walking)",
                trees.tabulated_trees(),
                ensemble.trees.len(),
                trees.leaf_mask_bytes() / 1024
            );
            let mut scratch = trees.scratch();
            let mut phi = vec![0.0; encoded[0].len()];
            c.bench_function(&format!("{name}/shap_of_encoded"), |b| {
                b.iter(|| {
                    next = (next + 1) % profiles.len();
                    trees.shap_into(black_box(&encoded[next]), &mut phi, &mut scratch);
                    black_box(&phi);
                })
            });
        }
        let json = scorer.artifact().to_json();
        c.bench_function(&format!("{name}/load_artifact"), |b| {
            b.iter(|| {
                let artifact =
                    churn_core::ModelArtifact::from_json(black_box(&json)).expect("json");
                black_box(Scorer::new(artifact).expect("scorer"))
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench_scoring
}
criterion_main!(benches);
