//! The Score RPC in process, without the network: protobuf profile in → validated, encoded,
//! scored, explained → protobuf response out, exactly the code a gRPC call runs.
//!
//! `cargo bench -p churn-serve --bench score`

use std::path::PathBuf;
use std::sync::Arc;

use churn_api::proto;
use churn_serve::grpc::ChurnApi;
use churn_serve::model::ModelSlot;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// Telco customer 7590-VHVEG, as a CRM would send it.
fn telco_profile() -> proto::Profile {
    use proto::value::Kind;
    let text = |value: &str| Kind::Text(value.to_string());
    let features = [
        ("gender", text("Female")),
        ("SeniorCitizen", Kind::Flag(false)),
        ("Partner", Kind::Flag(true)),
        ("Dependents", Kind::Flag(false)),
        ("tenure", Kind::Number(1.0)),
        ("PhoneService", Kind::Flag(false)),
        ("MultipleLines", text("No phone service")),
        ("InternetService", text("DSL")),
        ("OnlineSecurity", text("No")),
        ("OnlineBackup", text("Yes")),
        ("DeviceProtection", text("No")),
        ("TechSupport", text("No")),
        ("StreamingTV", text("No")),
        ("StreamingMovies", text("No")),
        ("Contract", text("Month-to-month")),
        ("PaperlessBilling", Kind::Flag(true)),
        ("PaymentMethod", text("Electronic check")),
        ("MonthlyCharges", Kind::Number(29.85)),
        ("TotalCharges", Kind::Number(29.85)),
    ];
    proto::Profile {
        customer_id: "7590-VHVEG".into(),
        features: features
            .into_iter()
            .map(|(name, kind)| (name.to_string(), proto::Value { kind: Some(kind) }))
            .collect(),
        ..Default::default()
    }
}

fn score_rpc(c: &mut Criterion) {
    let model_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/telco");
    let slot = Arc::new(ModelSlot::load(&model_dir).expect("the shipped model loads"));
    let config = churn_serve::ServeConfig::default();
    let api = ChurnApi::new(slot, churn_serve::metrics::Metrics::new(), &config, None);
    let model = api.model();
    let request = proto::ScoreRequest {
        profile: Some(telco_profile()),
        top_k: 5,
    };
    assert!(api.score_with(&model, request.clone()).is_ok());

    let mut group = c.benchmark_group("score_rpc_in_process");
    group.bench_function("shipped_telco_top5_reasons", |b| {
        b.iter_batched(
            || request.clone(),
            |request| api.score_with(&model, request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("shipped_telco_top5_reasons_with_protobuf_codec", |b| {
        use prost::Message;
        let bytes = request.encode_to_vec();
        b.iter(|| {
            let decoded = proto::ScoreRequest::decode(bytes.as_slice()).expect("decodes");
            let response = api.score_with(&model, decoded).expect("scores");
            response.response.encode_to_vec()
        })
    });
    group.finish();
}

criterion_group!(benches, score_rpc);
criterion_main!(benches);
