//! Gradient-boosted trees end to end (issue #4): train → artifact → score with exact reasons,
//! missing values, calibration choices, reproducibility and refused settings.

use churn_core::{Model, ModelArtifact, RawValue, Scorer};
use churn_train::{CalibrationMethod, ModelChoice, train};

use crate::{run_score, sample_config, write_file};

fn gbdt_config() -> churn_train::TrainConfig {
    let mut config = sample_config();
    config.model = ModelChoice::Gbdt;
    config
}

#[test]
fn a_tree_model_scores_every_row_with_reasons_that_add_up() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let outcome = train(&gbdt_config(), "trees")?;
    outcome.write(dir.path())?;
    let artifact =
        ModelArtifact::from_json(&std::fs::read_to_string(dir.path().join("model.json"))?)?;
    let Model::Gbdt(ensemble) = &artifact.model else {
        panic!("expected a tree model, got {}", artifact.model.kind_name());
    };
    assert!(!ensemble.trees.is_empty());
    assert!(artifact.calibration.is_some(), "Platt scaling by default");
    let html = std::fs::read_to_string(dir.path().join("card.html"))?;
    assert_eq!(
        html.matches("<svg").count(),
        4,
        "ROC, calibration, lift, importance"
    );

    let scorer = Scorer::new(artifact)?;
    let table = churn_data::read_table(&churn_e2e::fixture("telco-sample.csv"))?;
    let explanations: Vec<_> = churn_data::score_table(&scorer, &table)?
        .map(|row| row.outcome)
        .collect::<Result<_, _>>()?;
    assert_eq!(explanations.len(), 400);
    for explanation in &explanations {
        let sum = explanation.base_value
            + explanation
                .reasons
                .iter()
                .map(|reason| reason.contribution)
                .sum::<f64>();
        assert!(
            (sum - explanation.logit).abs() < 1e-9,
            "{sum} vs {}",
            explanation.logit
        );
        assert!((0.0..=1.0).contains(&explanation.probability));
    }
    // The CLI prints the very same probabilities.
    let (ok, lines) = run_score(dir.path(), &churn_e2e::fixture("telco-sample.csv"))?;
    assert!(ok);
    for (line, explanation) in lines.iter().zip(&explanations) {
        let printed = line["probability"].as_f64().unwrap_or(f64::NAN);
        assert_eq!(printed.to_bits(), explanation.probability.to_bits());
    }
    Ok(())
}

#[test]
fn blanks_follow_the_learned_direction_instead_of_failing() -> anyhow::Result<()> {
    // Training data with a few blank TotalCharges (as the full Telco file has): trees learn
    // where blanks go, so a blank there scores; a blank where training never had one does not.
    let dir = tempfile::tempdir()?;
    let fixture = std::fs::read_to_string(churn_e2e::fixture("telco-sample.csv"))?;
    let blanked = fixture
        .replacen("56.95,1889.5,No", "56.95, ,No", 1)
        .replacen("53.85,108.15,Yes", "53.85,,Yes", 1);
    let mut config = gbdt_config();
    config.data = write_file(dir.path(), "blanks.csv", &blanked);
    let outcome = train(&config, "trees")?;
    let scorer = Scorer::new(outcome.artifact)?;
    let table = churn_data::read_table(&config.data)?;
    let features = scorer.artifact().schema.feature_names();
    let (_, mut profile) = churn_data::table_profiles(&table, &features, None)?.swap_remove(0);
    profile.insert("TotalCharges".into(), RawValue::Missing);
    let explanation = scorer.explain(&profile)?;
    assert!(
        explanation.probability > 0.0 && explanation.probability < 1.0,
        "{explanation:?}"
    );
    // Absent is the same as missing.
    profile.remove("TotalCharges");
    assert_eq!(scorer.explain(&profile)?, explanation);

    let mut no_contract = profile.clone();
    no_contract.insert("Contract".into(), RawValue::from(" "));
    let error = scorer.explain(&no_contract).unwrap_err();
    assert_eq!(
        error.to_string(),
        "feature `Contract`: a value is required (training data always had one)"
    );
    // A bad value is still refused by name, blank or not elsewhere.
    profile.insert("tenure".into(), RawValue::from("soon"));
    let error = scorer.explain(&profile).unwrap_err();
    assert!(error.to_string().contains("tenure"), "{error}");
    Ok(())
}

#[test]
fn tree_models_are_reproducible_for_a_seed_even_with_subsampling() -> anyhow::Result<()> {
    let mut config = gbdt_config();
    config.gbdt.row_subsample = 0.8;
    config.gbdt.column_subsample = 0.7;
    let first = train(&config, "trees")?;
    let second = train(&config, "trees")?;
    assert_eq!(first.artifact.to_json(), second.artifact.to_json());
    config.seed += 1;
    let other = train(&config, "trees")?;
    assert_ne!(first.artifact.to_json(), other.artifact.to_json());
    Ok(())
}

#[test]
fn calibration_can_be_isotonic_or_off_and_is_reported() -> anyhow::Result<()> {
    let mut config = gbdt_config();
    config.calibration = CalibrationMethod::Isotonic;
    let isotonic = train(&config, "trees")?;
    assert_eq!(
        isotonic
            .artifact
            .calibration
            .as_ref()
            .map(|c| c.method_name()),
        Some("isotonic")
    );
    let metrics = isotonic.metrics_json();
    assert!(metrics["ece"].is_f64() && metrics["ece_uncalibrated"].is_f64());
    config.calibration = CalibrationMethod::None;
    assert!(train(&config, "trees")?.artifact.calibration.is_none());

    // Logistic regression is not calibrated twice; early stopping off leaves no rows to fit on.
    config.model = ModelChoice::Logistic;
    config.calibration = CalibrationMethod::Platt;
    let error = train(&config, "lr").unwrap_err().to_string();
    assert!(error.contains("calibration"), "{error}");
    config.model = ModelChoice::Gbdt;
    config.gbdt.early_stopping_rounds = 0;
    config.gbdt.max_trees = 20;
    let error = train(&config, "trees").unwrap_err().to_string();
    assert!(error.contains("early stopping"), "{error}");
    Ok(())
}

#[test]
fn auto_keeps_the_better_cross_validated_model_and_says_why() -> anyhow::Result<()> {
    let mut config = sample_config();
    config.model = ModelChoice::Auto;
    config.cv = Some(3);
    let outcome = train(&config, "auto")?;
    let selection = outcome.selection.as_ref().expect("auto records its choice");
    let kept = outcome.artifact.model.kind_name();
    let (gbdt, logistic) = (selection.gbdt.0, selection.logistic.0);
    assert_eq!(kept, if gbdt > logistic { "gbdt" } else { "logistic" });
    assert!(outcome.card.contains("Chosen by `--model auto`"));
    assert_eq!(outcome.cv.as_ref().map(|cv| cv.folds.len()), Some(3));
    Ok(())
}

#[test]
fn bad_tree_settings_are_refused_by_name() -> anyhow::Result<()> {
    let mut config = gbdt_config();
    config.gbdt.max_leaves = 1;
    let error = train(&config, "trees").unwrap_err().to_string();
    assert!(error.contains("max_leaves"), "{error}");

    let dir = tempfile::tempdir()?;
    let toml = write_file(
        dir.path(),
        "train.toml",
        "data = \"x.csv\"\ntarget = \"Churn\"\nmodel = \"gbdt\"\n[gbdt]\nmax_leafs = 8\n",
    );
    let cli = <churn_cli::Cli as clap::Parser>::try_parse_from([
        "churn",
        "train",
        "--config",
        toml.to_str().unwrap_or_default(),
    ])?;
    let churn_cli::Command::Train(args) = cli.command else {
        panic!("parsed as train");
    };
    let error = format!("{:#}", churn_cli::train_config(args).unwrap_err());
    assert!(error.contains("max_leafs"), "{error}");
    Ok(())
}
