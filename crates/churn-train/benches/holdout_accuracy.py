"""Holdout ROC-AUC of `churn train` with its default settings against LightGBM and scikit-learn's
HistGradientBoosting with theirs, on the same splits of any churn table: issue #4's "match or beat
them on churn data it has never seen".

For each dataset and seed: a stratified 75/25 split is written to CSV; `churn train` fits on the
75% (`--model auto`, early stopping, calibration: everything as a user gets it) and `churn score`
scores the 25%; LightGBM's `LGBMClassifier()` and `HistGradientBoostingClassifier()` fit the same
75% with text columns as pandas categoricals (their native categorical handling).

A dataset is `path:target[:positive[:id]]`; without an id column, rows are numbered. With a
Python that has lightgbm, pandas and scikit-learn (e.g. /tmp/refenv, see README), and two synthetic
companies from `churn generate --customers 20000 --seed 7|11 --out /tmp/company-7|11` then
`churn profiles --events /tmp/company-7 --as-of 2025-10-03 --horizon 90d --out /tmp/synthetic-7.csv`:

/tmp/refenv/bin/python crates/churn-train/benches/holdout_accuracy.py target/release/churn --seeds 5 \\
    notebooks-data/telco/Telco-Customer-Churn.csv:Churn:Yes:customerID \\
    notebooks-data/churn-benchmarks/mlc_churn.csv:churn:yes \\
    notebooks-data/churn-benchmarks/employee_attrition.csv:left \\
    notebooks-data/churn-benchmarks/ibm_hr_attrition.csv:Attrition:Yes \\
    notebooks-data/churn-benchmarks/saas_churn.csv:churned \\
    /tmp/synthetic-7.csv:churned:true:customer_id /tmp/synthetic-11.csv:churned:true:customer_id

`--churn-toml FILE` adds settings to churn's config, to compare others than the defaults.
"""
import argparse
import json
import pathlib
import subprocess
import tempfile

import lightgbm
import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

ROW_ID = "holdout_row"


def churn_auc(churn, train_csv, test_csv, target, positive, id_column, seed, workdir, extra_toml):
    out = workdir / "model"
    config = workdir / "train.toml"
    lines = [f"data = {json.dumps(str(train_csv))}", f"target = {json.dumps(target)}",
             f"id = {json.dumps(id_column)}", f"seed = {seed}", f"out = {json.dumps(str(out))}"]
    if positive is not None:
        lines.append(f"positive = {json.dumps(positive)}")
    config.write_text("\n".join(lines) + "\n" + extra_toml)
    subprocess.run([churn, "train", "--config", str(config)], check=True, capture_output=True)
    scored = subprocess.run([churn, "score", "--model", str(out), "--data", str(test_csv), "--top", "0"],
                            check=True, capture_output=True, text=True).stdout
    probability = {}
    for line in scored.splitlines():
        answer = json.loads(line)
        probability[str(answer["id"])] = answer["probability"]
    kind = json.loads((out / "metrics.json").read_text())["model"]
    return probability, kind


def reference_frame(frame, target, id_column):
    features = frame.drop(columns=[target, id_column])
    for column in features.columns:
        if pd.api.types.is_bool_dtype(features[column]):
            features[column] = features[column].astype(int)
        elif not pd.api.types.is_numeric_dtype(features[column]):
            # Numbers with a few blanks (Telco's TotalCharges) are numbers, as a user would load them.
            text = features[column].astype(str).str.strip()
            numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
            filled = text[(text != "") & (text != "nan")]
            if len(filled) and numbers.notna().sum() >= 0.95 * len(filled):
                features[column] = numbers
            else:
                features[column] = text.astype("category")
    return features


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("churn")
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--churn-toml", help="TOML lines added to churn's training config "
                        "(settings other than the defaults, to compare)")
    args = parser.parse_args()
    extra_toml = pathlib.Path(args.churn_toml).read_text() if args.churn_toml else ""
    print(f"LightGBM {lightgbm.__version__}, scikit-learn {sklearn.__version__}; "
          f"{args.seeds} stratified 75/25 splits per dataset\n")
    print("| dataset | rows | churn rate | churn (kept model) | LightGBM | HistGradientBoosting | churn ≥ both |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.datasets:
        parts = spec.split(":")
        path, target = parts[0], parts[1]
        positive = parts[2] if len(parts) > 2 and parts[2] else None
        id_column = parts[3] if len(parts) > 3 and parts[3] else None
        frame = pd.read_csv(path, keep_default_na=True)
        if id_column is None:
            id_column = ROW_ID
            frame.insert(0, ROW_ID, [f"r{i}" for i in range(len(frame))])
        frame[id_column] = frame[id_column].astype(str)
        if pd.api.types.is_numeric_dtype(frame[target]):
            # 0/1 labels, read as numbers (1 and 1.0 alike).
            frame[target] = frame[target].map(lambda value: "yes" if value == 1 else "no")
            positive = "yes"
        labels = frame[target].astype(str)
        if positive is None:
            positive = "true"
        y = (labels.str.lower() == positive.lower()).astype(int).to_numpy()
        scores = {"churn": [], "lightgbm": [], "hgb": []}
        kinds = []
        for seed in range(args.seeds):
            train, test, y_train, y_test = train_test_split(frame, y, test_size=0.25, stratify=y,
                                                            random_state=seed)
            with tempfile.TemporaryDirectory() as scratch:
                workdir = pathlib.Path(scratch)
                train_csv, test_csv = workdir / "train.csv", workdir / "test.csv"
                train.to_csv(train_csv, index=False)
                test.drop(columns=[target]).to_csv(test_csv, index=False)
                probability, kind = churn_auc(args.churn, train_csv, test_csv, target, positive,
                                              id_column, seed, workdir, extra_toml)
            kinds.append(kind)
            scores["churn"].append(roc_auc_score(y_test, [probability[i] for i in test[id_column]]))
            x_train = reference_frame(train, target, id_column)
            x_test = reference_frame(test, target, id_column)
            for column in x_train.columns:
                if isinstance(x_train[column].dtype, pd.CategoricalDtype):
                    categories = x_train[column].cat.categories
                    x_test[column] = pd.Categorical(x_test[column].astype(str), categories=categories)
            lgbm = lightgbm.LGBMClassifier(verbose=-1, random_state=seed).fit(x_train, y_train)
            scores["lightgbm"].append(roc_auc_score(y_test, lgbm.predict_proba(x_test)[:, 1]))
            hgb = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
            hgb.fit(x_train, y_train)
            scores["hgb"].append(roc_auc_score(y_test, hgb.predict_proba(x_test)[:, 1]))
        wins = sum(c >= max(l, h) for c, l, h in zip(scores["churn"], scores["lightgbm"], scores["hgb"]))
        cell = {name: f"{np.mean(v):.4f} ± {np.std(v):.4f}" for name, v in scores.items()}
        kept = ", ".join(f"{kinds.count(k)}× {k}" for k in sorted(set(kinds)))
        print(f"| {pathlib.Path(path).name} | {len(frame)} | {y.mean():.3f} | {cell['churn']} ({kept}) "
              f"| {cell['lightgbm']} | {cell['hgb']} | {wins}/{args.seeds} |", flush=True)


if __name__ == "__main__":
    main()
