#!/usr/bin/env python3
"""Trains Cortex's bundled XGBoost models and writes xgboost's own predictions as fixtures.

Deterministic: fixed seeds, single thread. Re-run after changing it with
    python3 scripts/train_models.py
Outputs
    models/lead-scoring/model.json        binary:logistic lead-scoring classifier, named features
    models/lead-scoring/expected.json     1,000 rows (with missing values) and xgboost's probabilities
    Tests/CortexRuntimeTests/Fixtures/    small regression and multi-class models with expectations
"""
import json
import pathlib

import numpy as np
import xgboost as xgb

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "CortexRuntimeTests" / "Fixtures"

LEAD_FEATURES = [
    "company_size",
    "annual_revenue_musd",
    "is_tech_industry",
    "pages_viewed",
    "email_opens",
    "demo_requested",
    "days_since_last_contact",
    "webinar_attended",
    "job_level",
    "budget_confirmed",
]


def lead_data(rng, n):
    """Synthetic but structured leads: conversion depends on engagement, fit and intent."""
    company_size = np.round(rng.lognormal(4.0, 1.3, n))
    revenue = np.round(company_size * rng.lognormal(-1.5, 0.6, n), 2)
    tech = (rng.random(n) < 0.4).astype(float)
    pages = rng.poisson(6, n).astype(float)
    opens = rng.poisson(3, n).astype(float)
    demo = (rng.random(n) < 0.15).astype(float)
    days = np.round(rng.exponential(20, n))
    webinar = (rng.random(n) < 0.2).astype(float)
    level = rng.integers(1, 6, n).astype(float)
    budget = (rng.random(n) < 0.25).astype(float)
    X = np.column_stack([company_size, revenue, tech, pages, opens, demo, days, webinar, level, budget])
    logit = (
        -3.2
        + 0.35 * np.log1p(company_size)
        + 0.6 * tech
        + 0.12 * pages
        + 0.15 * opens
        + 1.6 * demo
        - 0.04 * days
        + 0.7 * webinar
        + 0.3 * level
        + 1.2 * budget
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    # Real CRM exports have holes: revenue and last contact are often unknown.
    X[rng.random(n) < 0.1, 1] = np.nan
    X[rng.random(n) < 0.08, 6] = np.nan
    return X.astype(np.float32), y


def rows_json(X):
    return [[None if np.isnan(v) else float(v) for v in row] for row in X]


def write_model(booster, path):
    booster.save_model(str(path))
    # Re-read to normalise formatting (sorted keys keep diffs readable).
    with open(path) as f:
        model = json.load(f)
    with open(path, "w") as f:
        json.dump(model, f, sort_keys=True, separators=(",", ":"))


def write_expected(path, names, X, predictions, objective):
    with open(path, "w") as f:
        json.dump(
            {
                "xgboost_version": xgb.__version__,
                "objective": objective,
                "feature_names": names,
                "rows": rows_json(X),
                "predictions": [float(p) for p in np.asarray(predictions, dtype=np.float32).reshape(-1)],
            },
            f,
            separators=(",", ":"),
        )


def train_lead_scoring():
    rng = np.random.default_rng(20261123)
    X, y = lead_data(rng, 6000)
    train = xgb.DMatrix(X[:5000], label=y[:5000], feature_names=LEAD_FEATURES, missing=np.nan)
    booster = xgb.train(
        {
            "objective": "binary:logistic",
            "max_depth": 4,
            "eta": 0.1,
            "subsample": 0.9,
            "seed": 7,
            "nthread": 1,
            "eval_metric": "auc",
        },
        train,
        num_boost_round=80,
    )
    out = ROOT / "models" / "lead-scoring"
    out.mkdir(parents=True, exist_ok=True)
    write_model(booster, out / "model.json")
    holdout = X[5000:6000]
    reloaded = xgb.Booster(model_file=str(out / "model.json"))
    predictions = reloaded.predict(xgb.DMatrix(holdout, feature_names=LEAD_FEATURES, missing=np.nan))
    write_expected(out / "expected.json", LEAD_FEATURES, holdout, predictions, "binary:logistic")


def train_small(objective, params, make_y, name, rounds=12):
    rng = np.random.default_rng(hash(name) % (2**32) if False else len(name) * 7919)
    X = rng.normal(0, 1, (600, 5)).astype(np.float32)
    y = make_y(X, rng)
    X[rng.random(600) < 0.1, 2] = np.nan
    booster = xgb.train(
        {"objective": objective, "max_depth": 3, "eta": 0.3, "seed": 1, "nthread": 1, **params},
        xgb.DMatrix(X[:400], label=y[:400], missing=np.nan),
        num_boost_round=rounds,
    )
    FIXTURES.mkdir(parents=True, exist_ok=True)
    path = FIXTURES / f"{name}.json"
    write_model(booster, path)
    reloaded = xgb.Booster(model_file=str(path))
    names = [f"f{i}" for i in range(5)]
    predictions = reloaded.predict(xgb.DMatrix(X[400:], missing=np.nan))
    write_expected(FIXTURES / f"{name}.expected.json", names, X[400:], predictions, objective)


if __name__ == "__main__":
    train_lead_scoring()
    train_small(
        "reg:squarederror",
        {},
        lambda X, rng: (X[:, 0] * 0.5 - X[:, 1] ** 2 * 0.2 + rng.normal(0, 0.1, len(X))).astype(np.float32),
        "regression",
    )
    train_small(
        "multi:softprob",
        {"num_class": 3},
        lambda X, rng: (np.digitize(X[:, 0] + 0.5 * X[:, 3], [-0.5, 0.5])).astype(np.float32),
        "multiclass",
    )
    train_small(
        "count:poisson",
        {},
        lambda X, rng: rng.poisson(np.exp(0.4 * X[:, 0] + 0.2)).astype(np.float32),
        "poisson",
    )
    train_small(
        "binary:logistic",
        {"booster": "dart", "rate_drop": 0.2, "skip_drop": 0.0},
        lambda X, rng: (X[:, 0] + X[:, 1] > 0).astype(np.float32),
        "dart",
    )
    print("wrote models/lead-scoring and", FIXTURES)
