"""Make synthetic teaching cases: a case table, vital signs and an image per case.

Three generators learn from real data and none of them copies a patient:

1. the case table: :func:`secured_bio.privacy.synthetic.fit_synthesizer` (Gaussian copula by
   default, ``mst`` with an (epsilon, delta) budget), fitted on the real rows minus a
   held-out share; each group of cases is drawn with its conditions honoured exactly;
2. vital signs: :func:`secured_bio.telemetry.synthetic.fit_vitals_model` (aggregate
   statistics of age-normalised trajectories), each case getting trajectories for its age
   and sex, with a deterioration episode when its table row says so;
3. images: :func:`secured_bio.privacy.synthetic.images.synthesize_images` (MONAI diffusion
   model, class-conditional when labels exist).

The privacy evidence is measured on the generators, not on the conditioned cases: an
unconditional draw as large as the training table is attacked (membership inference with
the held-out rows as non-members, exact copies, distance to closest record, singling-out /
linkability / inference risks) by :func:`~secured_bio.privacy.synthetic.evaluate_synthetic`;
the vital-sign generator is audited the same way by
:func:`~secured_bio.telemetry.synthetic.evaluate_vitals`; the image report gives the
distance of each image to its closest training slice.  Every case carries the resulting
privacy statement.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from secured_bio.education.spec import EducationSpec, load_spec
from secured_bio.errors import ConfigError, InputFileNotFoundError

__all__ = ["make_cases", "FORMAT", "FORMAT_VERSION", "MANIFEST"]

log = logging.getLogger(__name__)

FORMAT = "secured_bio.education_cases"
FORMAT_VERSION = 1
#: Written last at the top of the output folder: its presence marks a complete output.
MANIFEST = "cases.json"
_TRUE = ("yes", "true", "1", "y", "t")
_FALSE = ("no", "false", "0", "n", "f")


def _read_tables(spec: EducationSpec) -> pd.DataFrame:
    from secured_bio._csv import read_csv_strings

    frames = [read_csv_strings(p, label="case table", option="sources.table",
                               allow_empty=False) for p in spec.table_files]
    cols = list(frames[0].columns)
    for p, f in zip(spec.table_files[1:], frames[1:], strict=True):
        if list(f.columns) != cols:
            raise ConfigError("case tables have different columns", where=str(p),
                              expected=f"the columns of {spec.table_files[0].name}, in order",
                              got=f"{f.shape[1]} columns that differ",
                              fix="point sources.table at tables of one layout")
    return pd.concat(frames, ignore_index=True)


def _token(value: Any, column: str, categories: list[str] | None) -> str:
    """Turn a YAML value into a condition token (YAML reads ``yes`` as true: map it back)."""
    if isinstance(value, bool):
        words = _TRUE if value else _FALSE
        for c in categories or []:
            if c.lower() in words:
                return c
        return "true" if value else "false"
    return str(value)


def _conditions(group: Mapping[str, Any], schema: Any) -> list[str]:
    out = []
    for column, value in group["where"].items():
        try:
            cats = list(schema.column(column).categories)
        except Exception:  # unknown column: resolve_conditions names it clearly
            cats = None
        out.append(f"{column}={_token(value, column, cats)}")
    return out


def _split(table: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng([seed, 11])
    order = rng.permutation(len(table))
    n_hold = max(1, int(round(fraction * len(table))))
    if len(table) - n_hold < 10:
        raise ConfigError("the case table is too small to fit a generator and audit it",
                          where="sources.table", expected=">= 10 rows after the holdout",
                          got=f"{len(table)} rows in all",
                          fix="give more rows or lower table.holdout_fraction")
    hold = table.iloc[np.sort(order[:n_hold])].reset_index(drop=True)
    train = table.iloc[np.sort(order[n_hold:])].reset_index(drop=True)
    return train, hold


def _table_part(spec: EducationSpec, seed: int) -> dict[str, Any]:
    """Fit the table generator, draw every group's cases and audit the generator."""
    from secured_bio.privacy.synthetic import evaluate_synthetic, fit_synthesizer

    t = spec.raw["table"]
    real = _read_tables(spec)
    missing = [c for c in t["drop"] if c not in real.columns]
    drop = [c for c in t["drop"] if c in real.columns]
    train, hold = _split(real, float(t["holdout_fraction"]), seed)
    synth = fit_synthesizer(train, method=t["method"], seed=seed, epsilon=t["epsilon"],
                            delta=t["delta"], drop=drop)
    rows = []
    for g, group in enumerate(spec.raw["cases"]):
        conds = _conditions(group, synth.schema)
        part = synth.sample(int(group["count"]), conditions=conds, seed=seed + 100 + g)
        part.insert(0, "group", g)
        rows.append((part, conds))
    cases = pd.concat([r[0] for r in rows], ignore_index=True)
    kept = [c for c in train.columns if c not in drop]
    audit = synth.sample(len(train), seed=seed + 99)
    t0 = time.perf_counter()
    evaluation = evaluate_synthetic(train[kept], audit, holdout=hold[kept], target=t["target"],
                                    seed=seed)
    log.info("case table: generator audited in %.1f s", time.perf_counter() - t0)
    return {"cases": cases, "conditions": [r[1] for r in rows], "generator": synth.describe(),
            "schema": synth.schema,
            "evaluation": evaluation, "dropped": drop, "drop_not_found": missing,
            "n_real": len(real), "n_train": len(train), "n_holdout": len(hold)}


def _truthy(token: Any) -> bool:
    return str(token).strip().lower() in _TRUE


def _case_ages(cases: pd.DataFrame, column: str | None, rng: np.random.Generator) -> np.ndarray:
    if column and column in cases.columns:
        age = pd.to_numeric(cases[column], errors="coerce").to_numpy(dtype=float)
        fill = np.nanmedian(age) if np.isfinite(age).any() else 8.0
        age = np.where(np.isfinite(age), age, fill)
        return np.clip(age + rng.uniform(0.0, 0.99, size=len(age)), 0.0, 17.99)
    return rng.uniform(0.0, 17.99, size=len(cases))


_Cohort = tuple[Any, Any, Any]  # (vitals, patients, events) DataFrames


def _split_patients(frames: _Cohort, fraction: float, seed: int) -> tuple[_Cohort, _Cohort]:
    """Split a vitals cohort by patient (stratified by deterioration) into fit / holdout."""
    from secured_bio.telemetry.synthetic import holdout_ids

    vitals, patients, events = frames
    ids = patients["patient_id"].astype(str).tolist()
    det: set[str] = set()
    if events is not None:
        det = set(events.loc[events["deterioration"].astype(str) == "1", "patient_id"]
                  .astype(str))
    is_hold = set(holdout_ids(ids, det, fraction, np.random.default_rng([seed, 12])))

    def part(held: bool) -> _Cohort:
        def sel(f: pd.DataFrame) -> pd.DataFrame:
            return f[f["patient_id"].astype(str).isin(is_hold) == held]

        return sel(vitals), sel(patients), None if events is None else sel(events)

    return part(False), part(True)


def _vitals_part(spec: EducationSpec, cases: pd.DataFrame, case_ids: list[str], seed: int,
                 work: Path) -> dict[str, Any]:
    """Fit the vital-sign generator on the real cohort and give each case its trajectories."""
    from secured_bio.telemetry import synthetic as sv

    assert spec.vitals_dir is not None
    t, v = spec.raw["table"], spec.raw["vitals"]
    try:
        cohort = sv.read_cohort(spec.vitals_dir)
    except InputFileNotFoundError as e:
        raise InputFileNotFoundError(
            e.what, where=f"sources/vitals: {e.where}", expected=e.expected, got=e.got,
            fix="point sources.vitals at a folder with vitals.csv, patients.csv and "
                "events.csv (or site*/ folders of them), or set it to null") from e
    train, hold = _split_patients(cohort, float(v["holdout_fraction"]), seed)
    if v.get("epsilon") is not None:
        from secured_bio.telemetry.synthetic_dp import fit_vitals_model_dp

        model = fit_vitals_model_dp(*train, epsilon=float(v["epsilon"]),
                                    delta=float(v.get("delta", 1e-6)))
    else:
        model = sv.fit_vitals_model(*train, seed=seed)
    rng = np.random.default_rng([seed, 21])
    ages = _case_ages(cases, t["age_column"], rng)
    sexes = None
    if t["sex_column"] and t["sex_column"] in cases.columns:
        sexes = [s if s in ("F", "M") else ("F" if rng.random() < 0.5 else "M")
                 for s in cases[t["sex_column"]]]
    det = np.zeros(len(cases), dtype=bool)
    col = t["deterioration_column"]
    if col:
        if col not in cases.columns:
            raise ConfigError("deterioration column is not a column of the case table",
                              where="table.deterioration_column", got=repr(col),
                              fix="name a yes/no column of the table, or set it to null")
        det = np.array([_truthy(x) for x in cases[col]], dtype=bool)
    for g, group in enumerate(spec.raw["cases"]):
        if group["deterioration"] is not None:
            det[cases["group"].to_numpy() == g] = bool(group["deterioration"])
    result = model.sample(len(cases), ages=ages, sexes=sexes, deterioration=det,
                          hours=int(v["hours"]), interval_minutes=v["interval_minutes"],
                          seed=seed + 7, id_prefix="case")
    ids = {str(a): b for a, b in zip(result.patients["patient_id"], case_ids, strict=True)}
    renamed = [f.assign(patient_id=f["patient_id"].astype(str).map(ids))
               for f in (result.vitals, result.patients, result.events)]
    result = sv.SyntheticVitals(renamed[0], renamed[1], renamed[2], result.parameters)
    audit = model.sample(len(train[1]), hours=int(v["hours"]),
                         interval_minutes=v["interval_minutes"], seed=seed + 8)
    evaluation = sv.evaluate_vitals(train, audit, holdout=hold, seed=seed, n_threads=1,
                                    differential_privacy=model.differential_privacy)
    sv.write_synthetic_vitals(result, work / "vitals")
    sv.save_vitals_model(model, work / "vitals" / "model.json")
    return {"result": result, "evaluation": evaluation, "deterioration": det,
            "generator": {"method": "vitals model of aggregate statistics"
                                    + (" (differentially private)"
                                       if model.differential_privacy else ""),
                          "differentially_private": model.differential_privacy is not None,
                          "epsilon": (model.differential_privacy or {}).get("epsilon"),
                          "delta": (model.differential_privacy or {}).get("delta"),
                          "fitted_on_patients": len(train[1]),
                          "held_out_patients": len(hold[1]), "description": model.describe()}}


def _images_part(spec: EducationSpec, cases: pd.DataFrame, seed: int, work: Path,
                 progress: bool) -> dict[str, Any]:
    """Train the image model and pick one generated image of the wanted class per case."""
    from secured_bio.privacy.synthetic.images import synthesize_images

    assert spec.images_dir is not None
    im = spec.raw["images"]
    want_image = [bool(spec.raw["cases"][int(g)]["image"]) for g in cases["group"]]
    n_pool = 2 * sum(want_image)  # classes in turn: every class has enough images
    report = synthesize_images(
        spec.images_dir, work / "images", n=n_pool, epochs=int(im["epochs"]),
        device=im["device"], seed=seed, conditional=bool(im["conditional"]),
        size=int(im["size"]), slices=int(im["slices"]), timesteps=int(im["timesteps"]),
        progress=progress)
    table = pd.read_csv(work / "images" / "samples.tsv", sep="\t", dtype=str)
    labels = table["label"].astype(int).to_numpy() if "label" in table.columns else None
    wanted = [spec.raw["cases"][int(g)]["image_label"] for g in cases["group"]]
    classes = report["data"]["classes"]
    chosen: list[tuple[str, int | None] | None] = []
    used: set[int] = set()
    for i, want in enumerate(wanted):
        if not want_image[i]:
            chosen.append(None)
            continue
        if want is not None and (labels is None or classes is None or want not in classes):
            raise ConfigError("image_label is not a class of the image model",
                              where=f"cases[{int(cases['group'].iloc[i])}].image_label",
                              expected=f"one of {classes}" if classes else
                              "a conditional image model (images.conditional and labels)",
                              got=str(want), fix="use a class of the labels table, or null")
        pool = [k for k in range(len(table)) if k not in used
                and (want is None or labels is None or labels[k] == want)]
        k = pool[0]
        used.add(k)
        chosen.append((str(table["sample_id"].iloc[k]),
                       None if labels is None else int(labels[k])))
    return {"report": report, "chosen": chosen}


def _ci(attack: Mapping[str, Any]) -> str:
    ci = attack.get("auc_ci")
    return f", 95% CI {ci[0]:.2f}-{ci[1]:.2f}" if ci else ""


def _privacy_statement(spec: EducationSpec, table: Mapping[str, Any],
                       vitals: Mapping[str, Any] | None, images: Mapping[str, Any] | None
                       ) -> dict[str, Any]:
    """Build what every case says about how it was made and what the audits found."""
    gen = table["generator"]
    ev = table["evaluation"]["privacy"]
    mia = ev.get("membership_inference") or {}
    copies = ev.get("exact_copies") or {}
    out: dict[str, Any] = {
        "real_patients_included": False,
        "table": {
            "generator": gen["method"], "differentially_private": gen["differentially_private"],
            "epsilon": (gen["privacy"] or {}).get("epsilon"),
            "delta": (gen["privacy"] or {}).get("delta"),
            "fitted_on_rows": table["n_train"], "held_out_rows": table["n_holdout"],
            "membership_inference_auc": mia.get("auc"),
            "membership_inference_auc_ci": mia.get("auc_ci"),
            "exact_copies_share": copies.get("share"),
            "evaluation": "privacy/table_evaluation.json",
        },
    }
    parts = [
        f"Synthetic case: no real patient. The case table comes from a {gen['method']} "
        f"generator fitted on {table['n_train']} real rows"
        + (f" with ({out['table']['epsilon']:g}, {out['table']['delta']:g})-differential "
           "privacy" if gen["differentially_private"] else " (not differentially private)")
        + (f"; a membership-inference attack on it reaches AUC {mia['auc']:.2f}"
           + _ci(mia) + " (0.5 = guessing)" if mia.get("auc") is not None else "")
        + (f"; {100 * copies['share']:.1f}% of its rows copy a training row"
           if copies.get("share") is not None else "") + "."]
    if vitals is not None:
        vp = vitals["evaluation"].get("privacy", {})
        vmia = vp.get("membership_inference") or {}
        vgen = vitals["generator"]
        out["vitals"] = {"generator": vgen.get("method", "vitals model"),
                         "differentially_private": bool(vgen.get("differentially_private")),
                         "epsilon": vgen.get("epsilon"), "delta": vgen.get("delta"),
                         "membership_inference_auc": vmia.get("auc"),
                         "exact_copies": vp.get("exact_copies"),
                         "evaluation": "privacy/vitals_evaluation.json"}
        parts.append("Vital signs come from a model of aggregate statistics of "
                     f"{vitals['generator']['fitted_on_patients']} real patients' trajectories"
                     + (f" with ({vgen['epsilon']:g}, {vgen['delta']:g})-differential privacy "
                        "(add/remove one patient)" if vgen.get("differentially_private")
                        else " (not differentially private)")
                     + (f" (membership-inference AUC {vmia['auc']:.2f}{_ci(vmia)} against "
                        f"{vitals['generator']['held_out_patients']} held-out patients)"
                        if vmia.get("auc") is not None else "") + ".")
    if images is not None:
        nearest = images["report"]["metrics"].get("nearest_real_distance") or {}
        out["image"] = {"generator": "MONAI diffusion model (DDPM, DDIM sampling)",
                        "nearest_real_distance_min": nearest.get("generated_min"),
                        "nearest_real_distance_median": nearest.get("generated_median"),
                        "real_half_vs_half_median": nearest.get("real_half_vs_half_median"),
                        "evaluation": "images/synth_images.json"}
        parts.append("The image is generated by a diffusion model; its distance to the closest "
                     "training slice is reported (a copy would be 0).")
    out["text"] = " ".join(parts)
    return out


def _case_docs(spec: EducationSpec, tab: Mapping[str, Any], case_ids: list[str],
               vit: Mapping[str, Any] | None, img: Mapping[str, Any] | None,
               statement: Mapping[str, Any]) -> list[dict[str, Any]]:
    cases: pd.DataFrame = tab["cases"]
    columns = [c for c in cases.columns if c != "group"]
    docs = []
    for i, cid in enumerate(case_ids):
        g = int(cases["group"].iloc[i])
        group = spec.raw["cases"][g]
        doc: dict[str, Any] = {
            "format": FORMAT + ".case", "format_version": FORMAT_VERSION, "case_id": cid,
            "group": g, "title": group["title"], "conditions": tab["conditions"][g],
            "summary": {c: cases[c].iloc[i] for c in columns},
        }
        if vit is not None:
            doc["vitals"] = _vitals_summary(vit["result"], cid, bool(vit["deterioration"][i]))
        if img is not None and img["chosen"][i] is not None:
            sid, label = img["chosen"][i]
            names = spec.raw["images"]["label_names"]
            doc["image"] = {"sample_id": sid, "label": label,
                            "label_name": names.get(str(label)) if label is not None else None,
                            "file": "image.png", "nifti": f"../../images/samples/{sid}.nii.gz"}
        doc["privacy"] = statement
        docs.append(doc)
    return docs


def _vitals_summary(result: Any, case_id: str, deteriorates: bool) -> dict[str, Any]:
    v = result.vitals[result.vitals["patient_id"] == case_id]
    stats = {}
    for vital, part in v.groupby("vital", sort=True):
        x = part["value"].astype(float)
        stats[str(vital)] = {"unit": str(part["unit"].iloc[0]), "min": float(x.min()),
                             "median": float(x.median()), "max": float(x.max()),
                             "n": int(len(x))}
    ev = result.events[result.events["patient_id"] == case_id]
    onset = str(ev["onset_time"].iloc[0]) if len(ev) and deteriorates else None
    times = pd.to_datetime(v["time"], utc=True)
    return {"deterioration": deteriorates, "onset_time": onset or None,
            "start": str(v["time"].iloc[0]) if len(v) else None,
            "hours": float((times.max() - times.min()).total_seconds() / 3600) if len(v) else 0,
            "measurements": int(len(v)), "per_vital": stats, "chart": "vitals.png",
            "file": "../../vitals/vitals.csv"}


def make_cases(spec: EducationSpec | str | os.PathLike[str], out_dir: str | os.PathLike[str],
               *, progress: bool = False) -> dict[str, Any]:
    """Generate the teaching cases of a spec into ``out_dir`` (all files or none).

    Layout of ``out_dir`` (an earlier output there is replaced as a whole)::

        index.html, index.md        list of cases, privacy statement, links
        cases.csv                   the case table (case_id, group, then the table's columns)
        cases/case-0001/            case.json, case.md, case.html, vitals.png, image.png
        vitals/                     vitals.csv, patients.csv, events.csv, model.json
        images/                     the image model's output (samples/, grid.png, report)
        privacy/                    table_evaluation.json + .html, vitals_evaluation.json
        cases.json                  manifest (written last)

    Parameters
    ----------
    spec
        A parsed :class:`EducationSpec` or the path of a YAML spec.
    out_dir
        Output folder: new, empty, or an earlier output of this function.
    progress
        Show progress bars.

    Returns
    -------
    dict
        The manifest (``cases.json``): spec, counts, conditions met, privacy statement,
        timings.

    Raises
    ------
    ConfigError, InputError, SchemaError, InputFileNotFoundError
        If the spec, a condition or a source is invalid; nothing is written.
    """
    from secured_bio._atomic import atomic_dir, check_replaceable_dir
    from secured_bio.education.pages import write_case_pages, write_index
    from secured_bio.privacy.synthetic.report_html import write_report

    if not isinstance(spec, EducationSpec):
        spec = load_spec(spec)
    out = Path(out_dir)
    check_replaceable_dir(out, marker=MANIFEST)
    seed = int(spec.raw["seed"])
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    tab = _table_part(spec, seed)
    timings["table_seconds"] = time.perf_counter() - t0
    n = len(tab["cases"])
    width = max(4, len(str(n)))
    case_ids = [f"case-{i + 1:0{width}d}" for i in range(n)]
    with atomic_dir(out) as tmp:
        vit = img = None
        if spec.vitals_dir is not None:
            t1 = time.perf_counter()
            vit = _vitals_part(spec, tab["cases"], case_ids, seed, tmp)
            timings["vitals_seconds"] = time.perf_counter() - t1
        if spec.images_dir is not None and any(g["image"] for g in spec.raw["cases"]):
            t1 = time.perf_counter()
            img = _images_part(spec, tab["cases"], seed, tmp, progress)
            timings["images_seconds"] = time.perf_counter() - t1
        statement = _privacy_statement(spec, tab, vit, img)
        docs = _case_docs(spec, tab, case_ids, vit, img, statement)
        t1 = time.perf_counter()
        write_case_pages(docs, tmp / "cases", vitals=vit["result"] if vit else None,
                         images_dir=tmp / "images" if img else None, progress=progress)
        table = tab["cases"].copy()
        table.insert(0, "case_id", case_ids)
        table.to_csv(tmp / "cases.csv", index=False)
        (tmp / "privacy").mkdir()
        write_report(tab["evaluation"], tmp / "privacy" / "table_evaluation.json")
        if vit is not None:
            (tmp / "privacy" / "vitals_evaluation.json").write_text(
                json.dumps(vit["evaluation"], indent=2, default=str) + "\n", encoding="utf-8")
        timings["pages_seconds"] = time.perf_counter() - t1
        timings["total_seconds"] = time.perf_counter() - t0
        manifest = _manifest(spec, tab, docs, statement, vit, img, timings)
        write_index(manifest, docs, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n",
                                    encoding="utf-8")
    log.info("wrote %d teaching cases to %s", n, out)
    return manifest


def _manifest(spec: EducationSpec, tab: Mapping[str, Any], docs: list[dict[str, Any]],
              statement: Mapping[str, Any], vit: Mapping[str, Any] | None,
              img: Mapping[str, Any] | None, timings: Mapping[str, float]) -> dict[str, Any]:
    from secured_bio.privacy.synthetic.conditions import condition_mask, resolve_conditions

    schema = tab["schema"]
    cases: pd.DataFrame = tab["cases"]
    met = 0
    for g, conds in enumerate(tab["conditions"]):
        part = cases[cases["group"] == g]
        met += int(condition_mask(part, resolve_conditions(conds, schema), schema).sum())
    groups = [{"title": grp["title"], "count": int(grp["count"]),
               "conditions": tab["conditions"][g],
               "cases": [d["case_id"] for d in docs if d["group"] == g]}
              for g, grp in enumerate(spec.raw["cases"])]
    ev = tab["evaluation"]
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "title": spec.raw["title"],
        "spec": spec.raw, "n_cases": len(docs),
        "sources": {"table": [str(p) for p in spec.table_files],
                    "vitals": None if spec.vitals_dir is None else str(spec.vitals_dir),
                    "images": None if spec.images_dir is None else str(spec.images_dir)},
        "conditions_met": {"cases": met, "share": met / max(len(docs), 1)},
        "groups": groups,
        "table": {"generator": tab["generator"], "n_real": tab["n_real"],
                  "n_train": tab["n_train"], "n_holdout": tab["n_holdout"],
                  "dropped": tab["dropped"], "utility": ev.get("utility"),
                  "fidelity": (ev.get("fidelity") or {}).get("summary")},
        "vitals": None if vit is None else {
            "generator": vit["generator"], "n_deteriorating": int(vit["deterioration"].sum()),
            "utility": vit["evaluation"].get("utility"),
            "fidelity": vit["evaluation"].get("fidelity")},
        "images": None if img is None else {
            "metrics": img["report"]["metrics"], "training": {
                k: img["report"]["training"][k] for k in ("epochs", "mean_seconds_per_epoch")}},
        "privacy": statement, "timings": {k: round(v, 3) for k, v in timings.items()},
        "files": {"index": "index.html", "cases": "cases/", "table": "cases.csv"},
    }

