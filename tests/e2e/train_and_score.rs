//! Train on a fixture → artifact on disk → reload → score: the numbers survive every step.

use churn_core::{ModelArtifact, Profile, RawValue, Scorer};
use churn_train::train;

use crate::{run_score, sample_config, write_file};

#[test]
fn train_save_load_score_gives_identical_probabilities() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let outcome = train(&sample_config(), "sample")?;
    outcome.write(dir.path())?;
    for file in ["model.json", "metrics.json", "card.md"] {
        assert!(dir.path().join(file).is_file(), "{file} written");
    }
    let in_memory = Scorer::new(outcome.artifact.clone())?;
    let table = churn_data::read_table(&churn_e2e::fixture("telco-sample.csv"))?;
    let expected: Vec<f64> = churn_data::score_table(&in_memory, &table)?
        .map(|row| row.outcome.map(|explanation| explanation.probability))
        .collect::<Result<_, _>>()?;

    let (ok, lines) = run_score(dir.path(), &churn_e2e::fixture("telco-sample.csv"))?;
    assert!(ok);
    assert_eq!(lines.len(), 400);
    for (line, want) in lines.iter().zip(&expected) {
        let got = line["probability"].as_f64().expect("probability");
        assert_eq!(got.to_bits(), want.to_bits(), "{line}");
        assert!((0.0..=1.0).contains(&got));
    }
    assert_eq!(lines[0]["id"], "7590-VHVEG");
    let raising = lines[0]["raising"].as_array().expect("raising");
    assert!(!raising.is_empty() && raising.len() <= 5);
    assert!(raising[0]["contribution"].as_f64().expect("contribution") > 0.0);
    assert!(
        raising[0]["text"]
            .as_str()
            .expect("text")
            .contains("churn more")
    );

    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("metrics.json"))?)?;
    for key in ["roc_auc", "pr_auc", "brier", "log_loss", "lift_at_10"] {
        assert!(metrics[key].is_f64(), "metrics.json has {key}");
    }
    assert!(metrics["roc_auc"].as_f64().unwrap_or(0.0) > 0.7);
    Ok(())
}

#[test]
fn the_same_seed_gives_the_same_bytes() -> anyhow::Result<()> {
    let mut config = sample_config();
    config.cv = Some(3);
    let first = train(&config, "sample")?;
    let second = train(&config, "sample")?;
    assert_eq!(first.artifact.to_json(), second.artifact.to_json());
    assert_eq!(first.metrics_json(), second.metrics_json());
    assert_eq!(first.card, second.card);
    config.seed = 8;
    let other = train(&config, "sample")?;
    assert_ne!(first.artifact.to_json(), other.artifact.to_json());
    // The reloaded artifact is the same value, so it scores the same.
    let reloaded = ModelArtifact::from_json(&first.artifact.to_json())?;
    assert_eq!(reloaded, first.artifact);
    Ok(())
}

/// The holdout measures a model fitted without it; the model shipped then learns from every
/// row, or, with `refit = false`, is the one measured.
#[test]
fn the_model_shipped_learns_from_every_row_once_the_holdout_has_measured_it() -> anyhow::Result<()>
{
    let mut config = sample_config();
    config.model = churn_train::ModelChoice::Gbdt;
    let refitted = train(&config, "sample")?;
    config.refit = false;
    let measured = train(&config, "sample")?;
    // One holdout, one measured model: the same numbers either way.
    assert_eq!(refitted.holdout, measured.holdout);
    assert_eq!(
        refitted.holdout_probabilities,
        measured.holdout_probabilities
    );
    let rows = refitted.artifact.metadata.rows;
    assert_eq!(
        (refitted.train_rows, refitted.test_rows),
        (measured.train_rows, measured.test_rows)
    );
    assert_eq!(refitted.train_rows + refitted.test_rows, rows);
    assert_eq!(refitted.trained_on_rows, rows);
    assert_eq!(measured.trained_on_rows, measured.train_rows);
    assert_ne!(refitted.artifact.model, measured.artifact.model);
    for (outcome, refit) in [(&refitted, true), (&measured, false)] {
        let params = &outcome.artifact.metadata.params;
        assert_eq!(params["refit"], refit);
        assert_eq!(params["trained_on_rows"], outcome.trained_on_rows);
        assert_eq!(
            outcome.metrics_json()["trained_on_rows"],
            outcome.trained_on_rows
        );
    }
    let refit_says = format!("fitted the same way on all {rows} customers");
    assert!(refitted.card.contains(&refit_says) && refitted.card_html.contains(&refit_says));
    let measured_says = "and is the model shipped";
    assert!(measured.card.contains(measured_says) && measured.card_html.contains(measured_says));
    Ok(())
}

/// Parity: a table scored in batch gives exactly the scores of the same rows sent one by one as
/// profiles (the online path).
#[test]
fn batch_and_online_scores_are_identical() -> anyhow::Result<()> {
    let outcome = train(&sample_config(), "sample")?;
    let scorer = Scorer::new(outcome.artifact)?;
    let table = churn_data::read_table(&churn_e2e::fixture("telco-sample.csv"))?;
    let features = scorer.artifact().schema.feature_names();
    let profiles = churn_data::table_profiles(&table, &features, Some("customerID"))?;
    for (scored, (id, profile)) in churn_data::score_table(&scorer, &table)?.zip(&profiles) {
        assert_eq!(&scored.id, id);
        let batch = scored.outcome?;
        let online = scorer.explain(profile)?;
        assert_eq!(batch, online, "row {}", scored.row);
        let sum = online.base_value
            + online
                .reasons
                .iter()
                .map(|reason| reason.contribution)
                .sum::<f64>();
        assert!((sum - online.logit).abs() < 1e-9);
    }
    Ok(())
}

/// A churn file shaped like a bank's (row numbers, customer ids, surnames, a 0/1 `Exited`), never
/// seen before: it trains from `--data` and `--target` alone, leaving the id-like columns out.
#[test]
fn an_unseen_churn_file_trains_from_data_and_target_alone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut csv = String::from(
        "RowNumber,CustomerId,Surname,Geography,Age,Balance,IsActiveMember,NumOfProducts,Exited\n",
    );
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        // xorshift64: a seeded, dependency-free generator for the fixture.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let surnames = [
        "Smith", "Chen", "Okafor", "Novak", "Garcia", "Kim", "Ivanova",
    ];
    let countries = ["France", "Spain", "Germany"];
    for row in 0..600 {
        let age = 18.0 + (next() * 60.0).floor();
        let active = next() < 0.5;
        let country = countries[(next() * 3.0) as usize % 3];
        let balance = if next() < 0.3 {
            0.0
        } else {
            (next() * 200_000.0).round() / 100.0
        };
        let products = 1 + (next() * 3.0) as u32;
        let logit = -3.0
            + 0.06 * (age - 40.0)
            + if active { -1.0 } else { 0.8 }
            + if country == "Germany" { 0.9 } else { 0.0 };
        let exited = next() < 1.0 / (1.0 + (-logit).exp());
        csv.push_str(&format!(
            "{},{},{},{country},{age},{balance},{},{products},{}\n",
            row + 1,
            15_600_000 + row * 7,
            surnames[row % surnames.len()],
            u8::from(active),
            u8::from(exited)
        ));
    }
    let data = write_file(dir.path(), "bank.csv", &csv);
    let outcome = train(
        &churn_train::TrainConfig::new(data, "Exited".to_string()),
        "bank",
    )?;
    let artifact = &outcome.artifact;
    assert_eq!(artifact.schema.positive_class, "1");
    for id_like in ["RowNumber", "CustomerId"] {
        assert!(
            artifact.metadata.excluded_columns[id_like].starts_with("id-like"),
            "{id_like} excluded"
        );
        assert!(artifact.schema.feature(id_like).is_none());
    }
    assert!(artifact.schema.feature("Surname").is_some());
    assert_eq!(outcome.artifact.metadata.rows, 600);
    assert!(
        outcome.holdout.roc_auc > 0.7,
        "holdout ROC-AUC {}",
        outcome.holdout.roc_auc
    );
    // Germany raises risk in the generator; the model's reasons must say so.
    let scorer = Scorer::new(outcome.artifact.clone())?;
    let mut profile: Profile = [
        ("Surname", RawValue::from("Kim")),
        ("Geography", RawValue::from("Germany")),
        ("Age", RawValue::Number(40.0)),
        ("Balance", RawValue::Number(0.0)),
        ("IsActiveMember", RawValue::Number(1.0)),
        ("NumOfProducts", RawValue::Number(2.0)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect();
    let germany = scorer.explain(&profile)?;
    profile.insert("Geography".into(), RawValue::from("France"));
    let france = scorer.explain(&profile)?;
    let geography = |explanation: &churn_core::Explanation| {
        explanation
            .reasons
            .iter()
            .find(|reason| reason.feature == "Geography")
            .map(|reason| reason.contribution)
            .unwrap_or(f64::NAN)
    };
    assert!(geography(&germany) > geography(&france));
    Ok(())
}

/// Parses `churn train <arguments>` and returns the resulting configuration.
fn train_config_from(arguments: &[&str]) -> anyhow::Result<churn_train::TrainConfig> {
    use clap::Parser;
    let argv = ["churn", "train"].iter().chain(arguments);
    let churn_cli::Cli {
        command: churn_cli::Command::Train(args),
    } = churn_cli::Cli::try_parse_from(argv)?
    else {
        anyhow::bail!("expected the train command");
    };
    churn_cli::train_config(args)
}

#[test]
fn a_toml_config_gives_the_same_settings_as_flags() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_file(
        dir.path(),
        "train.toml",
        "data = \"data/churn.csv\"\ntarget = \"Churn\"\nid = \"customerID\"\nignore = [\"gender\"]\ncv = 5\nseed = 3\nout = \"model\"\n\n[kinds]\nSeniorCitizen = \"categorical\"\n\n[logistic]\nl2 = 0.5\n",
    );
    let config = train_config_from(&[
        "--config",
        config.to_str().unwrap_or_default(),
        "--seed",
        "9",
        "--ignore",
        "Partner,Dependents",
    ])?;
    assert_eq!(config.data, dir.path().join("data/churn.csv"));
    assert_eq!(config.out, Some(dir.path().join("model")));
    assert_eq!(config.seed, 9, "flags take precedence");
    assert_eq!(config.cv, Some(5));
    assert_eq!(config.ignore, ["gender", "Partner", "Dependents"]);
    assert_eq!(
        config.kinds["SeniorCitizen"],
        churn_core::FeatureKind::Categorical
    );
    assert_eq!(config.logistic.l2, 0.5);

    let bad = write_file(
        dir.path(),
        "bad.toml",
        "data = \"x.csv\"\ntarget = \"Churn\"\ncvv = 5\n",
    );
    let error = format!(
        "{:#}",
        train_config_from(&["--config", bad.to_str().unwrap_or_default()]).expect_err("bad key")
    );
    assert!(error.contains("cvv"), "{error}");
    Ok(())
}

#[test]
fn an_explicit_feature_list_is_the_schema() -> anyhow::Result<()> {
    let mut config = sample_config();
    config.features = Some(vec![
        "tenure".into(),
        "Contract".into(),
        "SeniorCitizen".into(),
    ]);
    config
        .kinds
        .insert("SeniorCitizen".into(), churn_core::FeatureKind::Categorical);
    let artifact = train(&config, "explicit")?.artifact;
    let features: Vec<(&str, churn_core::FeatureKind)> = artifact
        .schema
        .features
        .iter()
        .map(|feature| (feature.name.as_str(), feature.kind))
        .collect();
    use churn_core::FeatureKind::{Categorical, Numeric};
    assert_eq!(
        features,
        [
            ("SeniorCitizen", Categorical),
            ("tenure", Numeric),
            ("Contract", Categorical)
        ]
    );
    assert_eq!(
        artifact.metadata.excluded_columns["gender"],
        "not in the given feature list"
    );
    config.features = Some(vec!["tenur".into()]);
    let error = train(&config, "explicit")
        .expect_err("unknown column")
        .to_string();
    assert!(error.contains("no column `tenur`"), "{error}");
    Ok(())
}

/// A spreadsheet export: byte order mark, `;` separators, a Latin-1 byte, a `1.0`/`0.0` target.
#[test]
fn a_spreadsheet_export_trains() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut bytes = b"\xef\xbb\xbfcustomer;plan;monthly_fee;churned\n".to_vec();
    for row in 0..80 {
        let plan: &[u8] = match row % 3 {
            0 => b"basic",
            1 => b"pr\xe9mium", // Latin-1 e-acute, not UTF-8
            _ => b"pro",
        };
        bytes.extend_from_slice(format!("c{row};").as_bytes());
        bytes.extend_from_slice(plan);
        let churned = if row % 3 == 0 || row % 7 == 0 {
            "1.0"
        } else {
            "0.0"
        };
        bytes.extend_from_slice(format!(";{};{churned}\n", 10 + row % 13).as_bytes());
    }
    let path = dir.path().join("export.csv");
    std::fs::write(&path, bytes)?;
    let mut config = churn_train::TrainConfig::new(path, "churned".into());
    config.id = Some("customer".into());
    let artifact = train(&config, "export")?.artifact;
    assert_eq!(artifact.schema.positive_class, "1.0");
    let names: Vec<&str> = artifact
        .schema
        .features
        .iter()
        .map(|feature| feature.name.as_str())
        .collect();
    assert_eq!(names, ["plan", "monthly_fee"]);
    Ok(())
}
