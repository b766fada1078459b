"""LightGBM's side of benches/rescore.rs: per-row SHAP values on the same rows.

Usage: lightgbm_contrib.py TELCO_CSV ROWS_CSV TREES LEAVES LEARNING_RATE

Fits LightGBM on the Telco file with the given trees and leaves (no early stopping, native
categorical columns, as ours), then times `predict(pred_contrib=True)` on one thread over every row
of ROWS_CSV, already in memory (reading the file is timed apart). Prints one JSON object.
"""
import json
import sys
import time

import lightgbm
import pandas as pd


def features(frame, categories=None):
    frame = frame.drop(columns=["customerID", "Churn"], errors="ignore")
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            dtype = "category" if categories is None else categories[column]
            frame[column] = frame[column].astype(dtype)
    return frame


telco_csv, rows_csv, trees, leaves, learning_rate = sys.argv[1:6]
telco = pd.read_csv(telco_csv)
y = (telco["Churn"] == "Yes").astype(int).to_numpy()
x = features(telco)
model = lightgbm.LGBMClassifier(
    n_estimators=int(trees), num_leaves=int(leaves), learning_rate=float(learning_rate),
    n_jobs=1, verbose=-1,
)
model.fit(x, y)
categories = {c: x[c].dtype for c in x.columns if isinstance(x[c].dtype, pd.CategoricalDtype)}

start = time.perf_counter()
rows = features(pd.read_csv(rows_csv), categories)
read_seconds = time.perf_counter() - start

start = time.perf_counter()
contributions = model.booster_.predict(rows, pred_contrib=True, num_threads=1)
contrib_seconds = time.perf_counter() - start

start = time.perf_counter()
model.booster_.predict(rows, num_threads=1)
predict_seconds = time.perf_counter() - start

print(json.dumps({
    "version": lightgbm.__version__,
    "rows": len(rows),
    "trees": model.booster_.num_trees(),
    "read_seconds": read_seconds,
    "contrib_seconds": contrib_seconds,
    "predict_seconds": predict_seconds,
    "contrib_columns": int(contributions.shape[1]),
}))
