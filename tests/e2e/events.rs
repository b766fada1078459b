//! Issue 8: `churn generate` → `churn train --events` (snapshots, time split) → `churn profiles`
//! at the latest snapshot → `churn score` speaks the language of customer experience, and the
//! experience data measurably adds to the operational data.

use clap::Parser;

use crate::run_score;

fn run(args: &[&str]) -> anyhow::Result<()> {
    let cli = churn_cli::Cli::try_parse_from(std::iter::once("churn").chain(args.iter().copied()))?;
    churn_cli::run(cli)?;
    Ok(())
}

fn metrics(dir: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        dir.join("metrics.json"),
    )?)?)
}

#[test]
fn models_learn_from_event_tables_and_explain_in_cx_terms() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let events = dir.path().join("events");
    let events_arg = events.to_str().expect("utf-8 path");
    run(&[
        "generate",
        "--customers",
        "8000",
        "--seed",
        "3",
        "--start",
        "2025-01-01",
        "--months",
        "12",
        "--out",
        events_arg,
    ])?;

    let full = dir.path().join("full");
    let operational = dir.path().join("operational");
    for (out, extra) in [(&full, None), (&operational, Some("--operational-only"))] {
        let mut args = vec![
            "train",
            "--events",
            events_arg,
            "--horizon",
            "90d",
            "--model",
            "gbdt",
            "--out",
            out.to_str().expect("utf-8 path"),
        ];
        args.extend(extra);
        run(&args)?;
    }
    let full_metrics = metrics(&full)?;
    let operational_metrics = metrics(&operational)?;
    let auc = |metrics: &serde_json::Value| metrics["roc_auc"].as_f64().unwrap_or(0.0);
    // Tested on the latest snapshot, trained on four ending a horizon before it.
    assert!(auc(&full_metrics) > 0.7, "{full_metrics}");
    assert!(
        auc(&full_metrics) > auc(&operational_metrics) + 0.02,
        "experience data should add to operational data: {} vs {}",
        auc(&full_metrics),
        auc(&operational_metrics)
    );
    let artifact = churn_cli::load_model(&full)?;
    let features = artifact.schema.feature_names();
    assert!(features.iter().any(|name| name == "nps_change"));
    assert!(!features.iter().any(|name| name == "snapshot"));
    let snapshots = artifact.metadata.params["events"]["snapshots"]
        .as_array()
        .expect("snapshots recorded")
        .clone();
    // Twelve months from 2025-01-01, 90-day horizon: the test snapshot is 2025-10-03, and the
    // training ones end a horizon before it, back to where 90 days of history exist.
    assert_eq!(
        snapshots,
        [
            "2025-04-05",
            "2025-05-05",
            "2025-06-05",
            "2025-07-05",
            "2025-10-03"
        ]
    );
    let operational_features = churn_cli::load_model(&operational)?.schema.feature_names();
    assert!(
        !operational_features
            .iter()
            .any(|name| name.starts_with("nps"))
    );
    assert!(
        operational_features
            .iter()
            .any(|name| name == "usage_change_pct")
    );

    // Profiles at the latest snapshot, scored by the model: reasons in CX words.
    let profiles = dir.path().join("profiles.parquet");
    run(&[
        "profiles",
        "--events",
        events_arg,
        "--as-of",
        "2025-10-03",
        "--out",
        profiles.to_str().expect("utf-8 path"),
    ])?;
    let (ok, lines) = run_score(&full, &profiles)?;
    assert!(ok);
    assert_eq!(
        lines.len() as u64,
        full_metrics["test_rows"].as_u64().unwrap_or(0),
        "the latest snapshot is the test set"
    );
    let texts: Vec<String> = lines
        .iter()
        .flat_map(|line| {
            line["raising"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|reason| reason["text"].as_str().unwrap_or("").to_string())
        })
        .collect();
    for phrase in ["in 90 days", "NPS", "usage "] {
        assert!(
            texts.iter().any(|text| text.contains(phrase)),
            "no reason says `{phrase}`"
        );
    }
    assert!(!texts.iter().any(|text| text.contains("nps_change is")));
    Ok(())
}

#[test]
fn bad_event_options_are_refused_by_name() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let events = dir.path().join("events");
    let events_arg = events.to_str().expect("utf-8 path");
    run(&[
        "generate",
        "--customers",
        "300",
        "--months",
        "4",
        "--out",
        events_arg,
    ])?;
    let out = dir.path().join("model");
    let out_arg = out.to_str().expect("utf-8 path");
    // Four months of data cannot hold 90 days of history and a 90-day horizon.
    let error = run(&["train", "--events", events_arg, "--out", out_arg]).unwrap_err();
    assert!(format!("{error:#}").contains("too short"), "{error:#}");
    let error = run(&[
        "train",
        "--events",
        events_arg,
        "--as-of",
        "2025-03-01,2025-04-01",
        "--out",
        out_arg,
    ])
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("2025-03-01") && format!("{error:#}").contains("horizon"),
        "{error:#}"
    );
    // A training snapshot whose labels are not known by the test snapshot is refused.
    let error = run(&[
        "train",
        "--events",
        events_arg,
        "--as-of",
        "2025-01-20,2025-02-01",
        "--horizon",
        "30d",
        "--out",
        out_arg,
    ])
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("2025-01-20")
            && format!("{error:#}").contains("at least a horizon before the latest"),
        "{error:#}"
    );
    let error = run(&[
        "train",
        "--events",
        events_arg,
        "--horizon",
        "0d",
        "--out",
        out_arg,
    ])
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("at least one day"),
        "{error:#}"
    );
    let error = run(&[
        "profiles",
        "--events",
        events_arg,
        "--as-of",
        "2025-02-30",
        "--out",
        out_arg,
    ])
    .unwrap_err();
    assert!(format!("{error:#}").contains("2025-02-30"), "{error:#}");
    let error = run(&[
        "profiles",
        "--events",
        dir.path().to_str().expect("utf-8 path"),
        "--as-of",
        "2025-03-01",
        "--out",
        out_arg,
    ])
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("no `customers` table"),
        "{error:#}"
    );
    let error = run(&[
        "train", "--events", events_arg, "--target", "Churn", "--out", out_arg,
    ])
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("cannot be used with '--target"),
        "{error:#}"
    );
    // The same settings from a TOML file, paths relative to it.
    let config = dir.path().join("train.toml");
    std::fs::write(
        &config,
        "data = \"events\"\nout = \"model\"\n[events]\nsnapshot_count = 1\n",
    )?;
    let error = run(&["train", "--config", config.to_str().expect("utf-8 path")]).unwrap_err();
    assert!(
        format!("{error:#}").contains("snapshot_count") && format!("{error:#}").contains("= 1"),
        "{error:#}"
    );
    std::fs::write(
        &config,
        "data = \"events\"\nid = \"who\"\nout = \"model\"\n[events]\n",
    )?;
    let error = run(&["train", "--config", config.to_str().expect("utf-8 path")]).unwrap_err();
    assert!(format!("{error:#}").contains("`id`"), "{error:#}");
    assert!(!out.exists(), "nothing written on failure");
    Ok(())
}

#[test]
fn the_shipped_synthetic_sample_is_what_its_command_writes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    run(&[
        "generate",
        "--customers",
        "3000",
        "--seed",
        "42",
        "--start",
        "2025-01-01",
        "--months",
        "12",
        "--out",
        dir.path().to_str().expect("utf-8 path"),
    ])?;
    let shipped = churn_e2e::repo_root().join("notebooks-data/synthetic");
    for table in churn_data::generate::TABLES {
        let name = format!("{table}.parquet");
        assert!(
            std::fs::read(dir.path().join(&name))? == std::fs::read(shipped.join(&name))?,
            "notebooks-data/synthetic/{name} differs from what its PROVENANCE command writes"
        );
    }
    Ok(())
}
