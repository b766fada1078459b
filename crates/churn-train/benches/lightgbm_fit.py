"""LightGBM's side of benches/fit_vs_lightgbm.rs: same file, split, trees, leaves, bins, threads.

Prints one JSON object: version, train_rows, fit_seconds (median of 3), holdout_roc_auc.
"""
import json
import sys
import time

import lightgbm
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

frame = pd.read_csv(sys.argv[1])
y = (frame.pop("Churn") == "Yes").astype(int).to_numpy()
frame = frame.drop(columns=["customerID"])
frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")
for column in frame.columns:
    if not pd.api.types.is_numeric_dtype(frame[column]):
        frame[column] = frame[column].astype("category")
x_train, x_test, y_train, y_test = train_test_split(
    frame, y, test_size=0.2, stratify=y, random_state=0
)
params = dict(
    n_estimators=300, num_leaves=31, learning_rate=0.1, max_bin=255, min_child_samples=20,
    reg_lambda=1.0, n_jobs=2, verbose=-1,
)
seconds = []
for _ in range(3):
    model = lightgbm.LGBMClassifier(**params)
    start = time.perf_counter()
    model.fit(x_train, y_train)
    seconds.append(time.perf_counter() - start)
auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
print(json.dumps({
    "version": lightgbm.__version__,
    "train_rows": len(y_train),
    "fit_seconds": float(np.median(seconds)),
    "holdout_roc_auc": float(auc),
}))
