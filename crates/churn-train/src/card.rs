//! The model card: what the model was trained on, how well it does, and what drives its scores,
//! in plain words (`card.md`) and with plots (`card.html`, self-contained, SVG inline).

use std::fmt::Write;

use churn_core::{FeatureKind, Model};
use churn_data::Dataset;

use crate::plots;
use crate::train::{ModelKind, TrainOutcome};

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
    let _ = writeln!(card, "{}\n", why_this_model(outcome));
    if let Some(calibration) = &artifact.calibration {
        let _ = writeln!(
            card,
            "Probabilities are calibrated ({} scaling on the early-stopping validation rows).\n",
            calibration.method_name()
        );
    }

    let _ = writeln!(card, "## Data\n");
    let churn_rate = metadata.positives as f64 / metadata.rows as f64;
    let _ = writeln!(
        card,
        "- Source: `{}` (sha256 `{}`)",
        metadata.data_source, metadata.data_sha256
    );
    let _ = writeln!(
        card,
        "- {} customers, {} churned ({:.1}%). {}",
        metadata.rows,
        metadata.positives,
        100.0 * churn_rate,
        how_measured_and_fitted(outcome)
    );
    if let Some(snapshots) = metadata.params["events"]["snapshots"].as_array() {
        let dates: Vec<&str> = snapshots.iter().filter_map(|date| date.as_str()).collect();
        let _ = writeln!(
            card,
            "- Profiles built from event tables as of {} snapshots ({}), churn = subscription \
             ended within {} days; trained on the earlier snapshots and tested on the latest \
             ({}), so the metrics below are what scoring at a new date sees",
            dates.len(),
            dates.join(", "),
            metadata.params["events"]["horizon_days"],
            dates.last().unwrap_or(&"")
        );
    }
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
    for (name, value, cv) in metric_rows(outcome) {
        let _ = writeln!(card, "| {name} | {value} | {cv} |");
    }
    let _ = writeln!(
        card,
        "\n{}",
        METRICS_NOTE.replace("{rate}", &format!("{churn_rate:.3}"))
    );

    let _ = writeln!(card, "\n## What drives the score\n");
    let _ = writeln!(
        card,
        "Features by weight: the mean absolute contribution to the log-odds over training customers \
         (exact per customer: {}).\n",
        reasons_method(outcome.kind)
    );
    for (rank, driver) in outcome.drivers.iter().take(FEATURES_SHOWN).enumerate() {
        let _ = writeln!(
            card,
            "{}. **{}** ({:.3}): {}",
            rank + 1,
            driver.feature,
            driver.importance,
            driver.direction
        );
    }
    card
}

const METRICS_NOTE: &str = "ROC-AUC and PR-AUC: higher is better (PR-AUC of a random model = churn \
    rate {rate}). Brier score, log loss and ECE (expected calibration error, 10 bins): lower is \
    better. Lift at 10%: how many times more churners the riskiest tenth of customers holds than \
    average.";

/// Rows of the metrics table: label, holdout value, CV summary.
fn metric_rows(outcome: &TrainOutcome) -> Vec<(&'static str, String, String)> {
    outcome
        .holdout
        .named()
        .into_iter()
        .map(|(name, value)| {
            let cv = outcome
                .cv
                .as_ref()
                .map(|cv| {
                    let (mean, std) = cv.summary(name);
                    format!("{mean:.4} ± {std:.4} ({} folds)", cv.folds.len())
                })
                .unwrap_or_else(|| "not run".into());
            let mut shown = format!("{value:.4}");
            if let (Some(uncalibrated), "ece") = (&outcome.holdout_uncalibrated, name) {
                shown.push_str(&format!(" (uncalibrated {:.4})", uncalibrated.ece));
            }
            (metric_label(name), shown, cv)
        })
        .collect()
}

fn reasons_method(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Logistic => "linear SHAP, coefficient × standardised deviation from the mean",
        ModelKind::Gbdt => "path-dependent TreeSHAP",
    }
}

/// Says which model was kept and why.
fn why_this_model(outcome: &TrainOutcome) -> String {
    match &outcome.selection {
        Some(selection) => {
            let (kept, other) = match outcome.kind {
                ModelKind::Logistic => ("logistic regression", "gradient-boosted trees"),
                ModelKind::Gbdt => ("gradient-boosted trees", "logistic regression"),
            };
            let (kept_auc, other_auc) = match outcome.kind {
                ModelKind::Logistic => (selection.logistic, selection.gbdt),
                ModelKind::Gbdt => (selection.gbdt, selection.logistic),
            };
            format!(
                "Chosen by `--model auto`: {kept} reached a {}-fold cross-validated ROC-AUC of \
                 {:.4} ± {:.4}, {other} {:.4} ± {:.4}; the better one is kept (ties go to \
                 logistic regression, the simpler model).",
                selection.folds, kept_auc.0, kept_auc.1, other_auc.0, other_auc.1
            )
        }
        None => format!("Model kind `{}` as configured.", outcome.kind.name()),
    }
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
        "ece" => "ECE (calibration error)",
        _ => "metric",
    }
}

/// Says which rows measured the model and which the model shipped learnt from.
fn how_measured_and_fitted(outcome: &TrainOutcome) -> String {
    let measured = format!(
        "The metrics below were measured on {} customers held out from a model fitted on the \
         other {}",
        outcome.test_rows, outcome.train_rows
    );
    if outcome.trained_on_rows > outcome.train_rows {
        format!(
            "{measured}; the model shipped was then fitted the same way on all {} customers, \
             held-out ones included (`refit = false` ships the measured model instead).",
            outcome.trained_on_rows
        )
    } else {
        format!("{measured}, and is the model shipped (`refit = false`).")
    }
}

/// Writes the model card as one self-contained HTML page with the ROC curve, the calibration
/// curve and the lift chart of the holdout.
pub fn model_card_html(outcome: &TrainOutcome, dataset: &Dataset) -> String {
    let artifact = &outcome.artifact;
    let metadata = &artifact.metadata;
    let escape = plots::escape;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Model card: {name}</title>\n<style>{STYLE}</style></head><body>\n\
         <h1>Model card: {name}</h1>\n<p>A <b>{model}</b> model predicting <code>{target}</code> = \
         <code>{positive}</code>, trained by churn {version} with seed {seed} on \
         <code>{source}</code> ({rows} customers, {positives} churned).</p>\n<p>{why}</p>\n",
        name = escape(&artifact.name),
        model = escape(&describe_model(&artifact.model)),
        target = escape(&artifact.schema.target),
        positive = escape(&artifact.schema.positive_class),
        version = escape(&metadata.churn_version),
        seed = metadata.seed,
        source = escape(&metadata.data_source),
        rows = metadata.rows,
        positives = metadata.positives,
        why = escape(&why_this_model(outcome)),
    );
    let _ = write!(
        html,
        "<h2>Metrics</h2>\n<p>{}</p>\n<table><tr><th>metric</th><th>holdout ({} customers)</th>\
         <th>cross-validation</th></tr>\n",
        escape(&how_measured_and_fitted(outcome)),
        outcome.test_rows
    );
    for (name, value, cv) in metric_rows(outcome) {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            escape(&value),
            escape(&cv)
        );
    }
    let churn_rate = metadata.positives as f64 / metadata.rows as f64;
    let _ = writeln!(
        html,
        "</table>\n<p class=\"note\">{}</p>",
        escape(&METRICS_NOTE.replace("{rate}", &format!("{churn_rate:.3}")))
    );
    let labels = &outcome.holdout_labels;
    let probabilities = &outcome.holdout_probabilities;
    let _ = writeln!(
        html,
        "<h2>Holdout plots</h2>\n<div class=\"plots\">{}{}{}</div>",
        plots::roc_curve(labels, probabilities),
        plots::calibration_curve(labels, probabilities),
        plots::lift_chart(labels, probabilities)
    );
    let _ = writeln!(
        html,
        "<h2>What drives the score</h2>\n<p>Mean absolute contribution to the log-odds over \
         training customers ({}).</p>\n{}",
        escape(reasons_method(outcome.kind)),
        plots::importance_bars(&outcome.drivers, FEATURES_SHOWN)
    );
    let _ = writeln!(html, "<ol>");
    for driver in outcome.drivers.iter().take(FEATURES_SHOWN) {
        let _ = writeln!(
            html,
            "<li><b>{}</b> ({:.3}): {}</li>",
            escape(&driver.feature),
            driver.importance,
            escape(&driver.direction)
        );
    }
    let _ = writeln!(html, "</ol>");
    let excluded: Vec<String> = metadata
        .excluded_columns
        .iter()
        .map(|(column, reason)| format!("<code>{}</code> ({})", escape(column), escape(reason)))
        .collect();
    if !excluded.is_empty() {
        let _ = writeln!(html, "<p>Not features: {}.</p>", excluded.join(", "));
    }
    let _ = writeln!(
        html,
        "<p class=\"note\">{} features; data sha256 <code>{}</code>.</p>\n</body></html>",
        dataset.schema.features.len(),
        escape(&metadata.data_sha256)
    );
    html
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;\
    padding:0 1rem;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;\
    padding:.3rem .6rem;text-align:left}.plots{display:flex;flex-wrap:wrap;gap:1rem}\
    .note{color:#555;font-size:.9rem}svg{background:#fff;border:1px solid #ddd}";
