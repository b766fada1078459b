//! Which kind of model to fit: the one configured, or under `auto` the one with the better
//! cross-validated ROC-AUC. Cross-validation sees the training rows only.

use churn_data::{grouped_k_fold, stratified_k_fold};

use super::fit::fit_model;
use super::{CvReport, ModelChoice, ModelKind, Selection, TrainingRows, ValidTrainConfig};
use crate::error::Result;

/// The kind of model to fit, with its cross-validation report when one was run and how `auto`
/// chose it.
pub(super) struct Chosen {
    pub(super) kind: ModelKind,
    pub(super) cv: Option<CvReport>,
    pub(super) selection: Option<Selection>,
}

impl ValidTrainConfig {
    /// Returns the configured kind of model, cross-validated when `cv` is set; under `auto`,
    /// both kinds are cross-validated (5 folds unless `cv` says otherwise) and the better kept.
    pub(super) fn select_model(&self, rows: &TrainingRows) -> Result<Chosen> {
        let config = self.config();
        let kind = match config.model {
            ModelChoice::Logistic => ModelKind::Logistic,
            ModelChoice::Gbdt => ModelKind::Gbdt,
            ModelChoice::Auto => return self.select_by_cross_validation(rows),
        };
        let cv = config
            .cv
            .map(|k| self.cross_validate(rows, kind, k))
            .transpose()?;
        Ok(Chosen {
            kind,
            cv,
            selection: None,
        })
    }

    /// Cross-validates both kinds and keeps the one of higher mean ROC-AUC.
    fn select_by_cross_validation(&self, rows: &TrainingRows) -> Result<Chosen> {
        let k = self.config().cv.unwrap_or(5);
        let logistic = self.cross_validate(rows, ModelKind::Logistic, k)?;
        let gbdt = self.cross_validate(rows, ModelKind::Gbdt, k)?;
        let selection = Selection {
            logistic: logistic.summary("roc_auc"),
            gbdt: gbdt.summary("roc_auc"),
            folds: k,
        };
        // Ties go to the simpler model.
        let (kind, cv) = if selection.gbdt.0 > selection.logistic.0 {
            (ModelKind::Gbdt, gbdt)
        } else {
            (ModelKind::Logistic, logistic)
        };
        tracing::info!(
            chosen = kind.name(),
            logistic = selection.logistic.0,
            gbdt = selection.gbdt.0,
            "model selected by cross-validated ROC-AUC"
        );
        Ok(Chosen {
            kind,
            cv: Some(cv),
            selection: Some(selection),
        })
    }

    /// Fits and measures `kind` on each of `k` folds of the training rows.
    fn cross_validate(&self, rows: &TrainingRows, kind: ModelKind, k: usize) -> Result<CvReport> {
        let config = self.config();
        let dataset = &rows.dataset;
        let cv_rows = rows.cv_rows();
        let cv_labels: Vec<bool> = cv_rows
            .iter()
            .map(|&row| dataset.labels.churned[row])
            .collect();
        let rows_of = |indices: &[usize]| -> Vec<usize> {
            indices.iter().map(|&index| cv_rows[index]).collect()
        };
        // Snapshots repeat customers: folds keep each customer whole, or CV would be tested
        // on customers it trained on.
        let folds = match (&rows.time_split, &dataset.ids) {
            (Some(_), Some(ids)) => {
                let groups: Vec<String> = cv_rows.iter().map(|&row| ids[row].clone()).collect();
                grouped_k_fold(&groups, &cv_labels, k, config.seed)?
            }
            _ => stratified_k_fold(&cv_labels, k, config.seed)?,
        };
        let folds = folds
            .iter()
            .enumerate()
            .map(|(fold, split)| {
                let fitted = fit_model(kind, dataset, &rows_of(&split.train), self.params())?;
                let metrics = fitted.evaluate(dataset, &rows_of(&split.test))?;
                tracing::info!(
                    model = kind.name(),
                    fold,
                    roc_auc = metrics.roc_auc,
                    "cross-validation fold"
                );
                Ok(metrics)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CvReport { folds })
    }
}
