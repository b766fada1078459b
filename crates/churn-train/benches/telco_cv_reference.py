"""Reference 5-fold CV ROC-AUC on the shipped Telco file with default settings: scikit-learn's
LogisticRegression (scaled, one-hot), HistGradientBoostingClassifier (native categoricals) and
LightGBM (native categoricals). Compare with `churn train --config models/telco/train.toml`.

/tmp/refenv/bin/python crates/churn-train/benches/telco_cv_reference.py notebooks-data/telco/Telco-Customer-Churn.csv
"""
import sys

import lightgbm
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

frame = pd.read_csv(sys.argv[1])
y = (frame.pop("Churn") == "Yes").astype(int).to_numpy()
frame = frame.drop(columns=["customerID"])
frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")
numeric = ["tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"]
categorical = [c for c in frame.columns if c not in numeric]
for column in categorical:
    frame[column] = frame[column].astype("category")
folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
logistic = make_pipeline(
    make_column_transformer(
        (make_pipeline(
            __import__("sklearn.impute", fromlist=["SimpleImputer"]).SimpleImputer(strategy="median"),
            StandardScaler()), numeric),
        (OneHotEncoder(handle_unknown="ignore"), categorical),
    ),
    LogisticRegression(max_iter=5000),
)
models = {
    f"scikit-learn {sklearn.__version__} LogisticRegression": logistic,
    f"scikit-learn {sklearn.__version__} HistGradientBoostingClassifier": HistGradientBoostingClassifier(
        categorical_features="from_dtype", random_state=0),
    f"LightGBM {lightgbm.__version__} LGBMClassifier": lightgbm.LGBMClassifier(verbose=-1, random_state=0),
}
for name, model in models.items():
    scores = cross_val_score(model, frame, y, cv=folds, scoring="roc_auc")
    print(f"{name}: {scores.mean():.4f} ± {scores.std():.4f}")
