"""Fairness-aware federated training: none / qffl / group_reweight; prints JSON on stdout.

Two settings, each trained once per option through the same harness as ``fl run``
(:func:`secured_bio.privacy.federated.run_experiment`, in-process Flower engine):

- ``shifted_demo``: the telemonitoring demo cohort with a planted group shift
  (``simulate_vitals(group_shift=...)``: children aged 1-4 present deterioration
  atypically), 3 hospitals, the pilot's MLP and training settings;
- ``diabetes``: a real clinical table shipped offline (scikit-learn's diabetes data, 442
  patients, progression above the median) dealt to 3 sites (:class:`DiabetesTableTask`).

For each option: pooled ("mean") AUROC, worst-site and worst-group AUROC, equalized-odds and
demographic-parity gaps, each with a bootstrap 95 % CI over the held-out rows
(``fairness_summary``), plus the change against ``none`` with a *paired* bootstrap CI (the
same resampled rows score both models: ``paired_difference``).

Usage::

    python benchmarks/fl_fairness.py                  # both settings (~minutes on 2 cores)
    python benchmarks/fl_fairness.py --only diabetes --boot 300
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OPTIONS = ("none", "qffl", "group_reweight")
#: Rows per setting: (label, option, q-FedAvg Lipschitz estimate L; None = 1/lr as Flower).
ROWS = (("none", "none", None), ("qffl", "qffl", None), ("qffl_L0.01", "qffl", 0.01),
        ("group_reweight", "group_reweight", None))
KEYS = ("mean_auroc", "worst_site_auroc", "worst_group_auroc", "worst_group_gap",
        "equalized_odds_gap", "demographic_parity_gap")


def _run(task: str, params: dict[str, Any], option: str, *, rounds: int, local_epochs: int,
         lr: float, seed: int, boot: int, work: Path, q: float,
         lipschitz: float | None, label: str | None = None) -> dict[str, Any]:
    from secured_bio.privacy.federated.experiment import run_experiment

    out = work / (label or option)
    out.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    if option == "qffl":
        extra = {"fairness_q": q, "fairness_lipschitz": lipschitz}
    t0 = time.perf_counter()
    m = run_experiment(task, params, out_dir=out, num_sites=3, rounds=rounds,
                       local_epochs=local_epochs, lr=lr, seed=seed, plots=False,
                       fairness_bootstrap=boot, engine="inprocess", fairness=option, **extra)
    fs = m["fairness_summary"]
    row = {k: fs[k] for k in KEYS}
    row["_scores"] = _scores(task, params, out / "federated_model.npz")
    row.update(option=label or option, wall_s=round(time.perf_counter() - t0, 1),
               centralized_auroc=m["centralized"]["auroc"], n_test=fs["n"],
               worst_group=_worst_group(m["fairness"]))
    if option == "qffl":
        row.update(q=q, lipschitz=lipschitz if lipschitz else 1.0 / lr)
    return row


def _scores(task: str, params: dict[str, Any], model_path: Path) -> Any:
    """Pooled held-out rows, their groups and the saved federated model's scores."""
    import numpy as np

    from secured_bio.privacy.federated.apps import set_state
    from secured_bio.privacy.federated.experiment import pooled
    from secured_bio.privacy.federated.task import SiteRef, load_task

    t = load_task(task, params)
    pool = pooled([t.load_site(SiteRef(i, 3)) for i in range(3)])
    model = t.build_model()
    with np.load(model_path) as z:
        set_state(model, [z[f"arr_{i}"] for i in range(len(z.files))])
    return pool, t.predict(model, pool.x_test)


def _worst_group(audit: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, a in audit["attributes"].items():
        if name != "site":
            out[name] = (a.get("worst_group") or {}).get("auroc")
    return out


def _deltas(rows: list[dict[str, Any]], boot: int, seed: int) -> None:
    """Each option minus ``none`` on the same held-out rows, with a paired bootstrap CI."""
    from secured_bio.privacy.federated.fairness import paired_difference

    pool, base = rows[0]["_scores"]
    for r in rows[1:]:
        r["delta_vs_none"] = paired_difference(
            pool.y_test, base, r["_scores"][1], site=pool.groups_test["site"],
            groups=pool.groups_test, n_boot=boot, seed=seed)
    for r in rows:
        del r["_scores"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("shifted_demo", "diabetes"), default=None)
    ap.add_argument("--boot", type=int, default=300, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--q", type=float, default=1.0, help="q of q-FedAvg")
    ap.add_argument("--lipschitz", type=float, default=None,
                    help="q-FedAvg's L (default 1/lr, as Flower)")
    ap.add_argument("--group-shift", type=float, default=0.8)
    ap.add_argument("--patients", type=int, default=40, help="demo patients per hospital")
    ap.add_argument("--hours", type=int, default=48)
    args = ap.parse_args(argv)
    doc: dict[str, Any] = {"options": [r[0] for r in ROWS], "boot": args.boot, "seed": args.seed,
                           "engine": "inprocess", "sites": 3}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "diabetes"):
            rows = [_run("secured_bio.testing:DiabetesTableTask", {"seed": args.seed}, o,
                         rounds=20, local_epochs=1, lr=0.05, seed=args.seed, boot=args.boot,
                         work=work / "diabetes", q=args.q, lipschitz=lip or args.lipschitz,
                         label=label)
                    for label, o, lip in ROWS]
            _deltas(rows, args.boot, args.seed)
            doc["diabetes"] = {"table": "sklearn.datasets.load_diabetes (442 x 10), label = "
                               "progression > median; dealt to 3 sites at random, 30 % "
                               "held out per site; logistic regression; 20 rounds x 1 epoch, "
                               "Adam lr 0.05, batch 32", "rows": rows}
        if args.only in (None, "shifted_demo"):
            from secured_bio.testing import simulate_vitals

            c = simulate_vitals(work / "vitals", n_sites=3, patients_per_site=args.patients,
                                hours=args.hours, group_shift=args.group_shift,
                                seed=args.seed)
            params = {"cohort_dir": str(c.out_dir), "sites": list(c.sites),
                      "event_delay_hours": 6.0, "weight_decay": 0.01, "batch_size": 64}
            rows = [_run("secured_bio.telemetry.federated:TelemetryTask", params, o,
                         rounds=5, local_epochs=3, lr=0.003, seed=args.seed, boot=args.boot,
                         work=work / "demo", q=args.q, lipschitz=lip or args.lipschitz,
                         label=label)
                    for label, o, lip in ROWS]
            _deltas(rows, args.boot, args.seed)
            doc["shifted_demo"] = {
                "cohort": f"simulate_vitals: 3 hospitals x {args.patients} children x "
                          f"{args.hours} h, group_shift={args.group_shift} (ages 1-4 "
                          "atypical); the telemonitoring pilot's MLP, 5 rounds x 3 epochs, "
                          "Adam lr 0.003, batch 64, weight decay 0.01", "rows": rows}
    json.dump(doc, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
