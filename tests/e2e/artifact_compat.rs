//! A frozen format-version-1 artifact keeps loading and scoring the same.

use churn_core::{ModelArtifact, Scorer};

#[test]
fn a_frozen_v1_artifact_still_loads_and_scores_the_same() -> anyhow::Result<()> {
    let json = std::fs::read_to_string(churn_e2e::fixture("telco-sample-v1.model.json"))?;
    assert!(json.contains("\"format_version\": \"1\""));
    let scorer = Scorer::new(ModelArtifact::from_json(&json)?)?;
    let table = churn_data::read_table(&churn_e2e::fixture("telco-sample.csv"))?;
    let probabilities: Vec<f64> = churn_data::score_table(&scorer, &table)?
        .take(3)
        .map(|row| row.outcome.map(|explanation| explanation.probability))
        .collect::<Result<_, _>>()?;
    // Scores recorded when the fixture was frozen (churn 0.1.0).
    let recorded = [0.6439360349230009, 0.09792836236546854, 0.5417147989931473];
    for (got, want) in probabilities.iter().zip(recorded) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
    Ok(())
}
