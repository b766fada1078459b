//! The model card: what the model was trained on, how well it does, and what drives its scores,
//! in plain words.

use std::fmt::Write;

use churn_core::{FeatureKind, Model};
use churn_data::Dataset;

use crate::train::TrainOutcome;

/// How many features the card describes.
const FEATURES_SHOWN: usize = 10;

/// Writes the model card as Markdown.
pub fn model_card(outcome: &TrainOutcome, dataset: &Dataset) -> String {
    let artifact = &outcome.artifact;
    let metadata = &artifact.metadata;
    let mut card = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(card, "# Model card: {}\n", artifact.name);
    let _ = writeln!(
        card,
        "A **{}** model predicting `{}` = `{}` (churn), trained by churn {} with seed {}.\n",
        describe_model(&artifact.model),
        artifact.schema.target,
        artifact.schema.positive_class,
        metadata.churn_version,
        metadata.seed
    );

    let _ = writeln!(card, "## Data\n");
    let churn_rate = metadata.positives as f64 / metadata.rows as f64;
    let _ = writeln!(
        card,
        "- Source: `{}` (sha256 `{}`)",
        metadata.data_source, metadata.data_sha256
    );
    let _ = writeln!(
        card,
        "- {} customers, {} churned ({:.1}%); {} used for training, {} held out for the metrics below",
        metadata.rows,
        metadata.positives,
        100.0 * churn_rate,
        outcome.train_rows,
        outcome.test_rows
    );
    for kind in [
        FeatureKind::Numeric,
        FeatureKind::Boolean,
        FeatureKind::Categorical,
    ] {
        let names: Vec<String> = dataset
            .schema
            .features
            .iter()
            .filter(|feature| feature.kind == kind)
            .map(|feature| format!("`{}`", feature.name))
            .collect();
        if !names.is_empty() {
            let _ = writeln!(
                card,
                "- {} {} features: {}",
                names.len(),
                kind.as_str(),
                names.join(", ")
            );
        }
    }
    if let Some(id) = &artifact.schema.id {
        let _ = writeln!(card, "- Customer id column: `{id}`");
    }
    for (column, reason) in &metadata.excluded_columns {
        let _ = writeln!(card, "- Not a feature: `{column}` ({reason})");
    }

    let _ = writeln!(card, "\n## Metrics\n");
    let _ = writeln!(card, "| metric | holdout | cross-validation (mean ± std) |");
    let _ = writeln!(card, "|---|---|---|");
    for (name, value) in outcome.holdout.named() {
        let cv = outcome
            .cv
            .as_ref()
            .map(|cv| {
                let (mean, std) = cv.summary(name);
                format!("{mean:.4} ± {std:.4} ({} folds)", cv.folds.len())
            })
            .unwrap_or_else(|| "not run".into());
        let _ = writeln!(card, "| {} | {value:.4} | {cv} |", metric_label(name));
    }
    let _ = writeln!(
        card,
        "\nROC-AUC and PR-AUC: higher is better (PR-AUC of a random model = churn rate {churn_rate:.3}). \
         Brier score and log loss: lower is better. Lift at 10%: how many times more churners the \
         riskiest tenth of customers holds than average."
    );

    let _ = writeln!(card, "\n## What drives the score\n");
    let _ = writeln!(
        card,
        "Features by weight: the mean absolute contribution to the log-odds over training customers.\n"
    );
    let directions = directions(artifact);
    for (rank, (name, weight)) in outcome.importance.iter().take(FEATURES_SHOWN).enumerate() {
        let words = directions
            .iter()
            .find(|(feature, _)| feature == name)
            .map(|(_, words)| words.as_str())
            .unwrap_or("");
        let _ = writeln!(card, "{}. **{name}** ({weight:.3}): {words}", rank + 1);
    }
    card
}

fn describe_model(model: &Model) -> String {
    match model {
        Model::Logistic(linear) => format!(
            "logistic regression ({} standardised columns, L2-regularised)",
            linear.coefficients.len()
        ),
        Model::Gbdt(ensemble) => format!(
            "gradient-boosted trees ({} trees, up to {} deep)",
            ensemble.trees.len(),
            ensemble.max_depth()
        ),
    }
}

fn metric_label(name: &str) -> &'static str {
    match name {
        "roc_auc" => "ROC-AUC",
        "pr_auc" => "PR-AUC (average precision)",
        "brier" => "Brier score",
        "log_loss" => "log loss",
        "lift_at_10" => "lift at top 10%",
        _ => "metric",
    }
}

/// Says, per raw feature, which way it moves risk.
fn directions(artifact: &churn_core::ModelArtifact) -> Vec<(String, String)> {
    let Model::Logistic(linear) = &artifact.model else {
        return Vec::new();
    };
    let Ok(encoder) = artifact.preprocessor.encoder(&artifact.schema) else {
        return Vec::new();
    };
    let columns = encoder.columns();
    artifact
        .schema
        .features
        .iter()
        .enumerate()
        .map(|(index, feature)| {
            let mut terms: Vec<(&str, f64)> = columns
                .iter()
                .enumerate()
                .filter(|(_, column)| column.source == index)
                .map(|(k, column)| (column.name.as_str(), linear.coefficients[k]))
                .collect();
            let words = match feature.kind {
                FeatureKind::Numeric | FeatureKind::Boolean => {
                    let (_, coefficient) = terms[0];
                    let said = if feature.kind == FeatureKind::Numeric {
                        format!("higher `{}`", feature.name)
                    } else {
                        format!("`{}` = yes", feature.name)
                    };
                    format!("{said} {}", raises_or_lowers(coefficient))
                }
                FeatureKind::Categorical => {
                    terms.sort_by(|a, b| b.1.total_cmp(&a.1));
                    let most = terms.first().map(|(name, _)| *name).unwrap_or("");
                    let least = terms.last().map(|(name, _)| *name).unwrap_or("");
                    format!("`{most}` raises risk most, `{least}` lowers it most")
                }
            };
            (feature.name.clone(), words)
        })
        .collect()
}

fn raises_or_lowers(coefficient: f64) -> &'static str {
    if coefficient > 0.0 {
        "raises risk"
    } else {
        "lowers risk"
    }
}
