"""Differentially private fit of the vital-sign generator (``synth vitals --epsilon E``).

:func:`fit_vitals_model_dp` fits the same :class:`~secured_bio.telemetry.synthetic.VitalsModel`
as :func:`~secured_bio.telemetry.synthetic.fit_vitals_model`, but every number in it is
post-processing of noisy sums, so the model (and everything sampled from it) is
``(epsilon, delta)``-differentially private.

**Adjacency.**  Patient level: two cohorts are neighbours when one has one more patient (all
of that patient's measurements, age, sex and events).  The patient count is not public: it
is released with noise like everything else.

**Mechanism.**  The fit is restructured so that each statistic is a sum over patients of a
per-patient contribution vector.  Each patient's vector of a statistic *group* is built from
clamped values (z-scores to ``[-Z, Z]``, squared lag differences to ``[0, G]`` ...), divided
by those bounds (entries in ``[-1, 1]``) and then clipped to L2 norm ``C_g``; adding or
removing one patient therefore changes the group's sum by at most ``C_g`` in L2 norm.  The
Gaussian mechanism adds ``N(0, sigma_g^2)`` to every coordinate of the sum, which is
``rho_g = C_g^2 / (2 sigma_g^2)``-zCDP (Bun & Steinke, TCC 2016, Prop. 1.6).  The groups
compose additively, ``rho = sum_g rho_g`` (adaptively: stage-2 groups use the released
stage-1 parameters, e.g. the mean and the harmonic, to form residuals), and ``rho``-zCDP
implies ``(rho + 2 sqrt(rho log(1/delta)), delta)``-DP (Bun & Steinke, Prop. 1.3).  The
requested epsilon is converted to ``rho`` by inverting that formula and split over the groups
by the fixed public fractions :data:`BUDGET_SPLIT`.  Noise comes from
:class:`secured_bio.privacy.dp_random.DPRandom` (OS CSPRNG), never from ``seed``.

Groups (per-patient contribution, before scaling and clipping):

* ``cohort``: 1 (the patient count), deteriorates (0/1), one-hot age band, one-hot sex
  (``F``/``M``/other), one-hot UTC offset (whole hours -12..+14).  Norm <= sqrt 5, so no
  clipping happens.
* ``timing``: median, 25th and 75th percentile of the gaps between rounds (minutes, clamped
  to 240), stay length (hours, clamped to 336), onset position and its square
  (deteriorating patients; else 0).
* ``level``: per vital, mean z and mean z^2 over the patient's baseline measurements.
* ``circadian``: per vital, within-patient averages of the centred cos/sin-by-z products, and
  of the centred cos^2, sin^2, cos*sin (the normal equations of the harmonic).
* ``variogram``: per vital and lag bin (public geometric bins), the patient's mean of
  ``0.5 (r_j - r_i)^2`` over pairs in the bin; per bin whether the patient has a pair in it
  (the denominator; scaled by 1/4).
* ``correlation``: within-patient mean products of the innovations at consecutive rounds, and
  products of the patient's mean residuals (offsets), per vital pair.
* ``missingness``: per patient, the share of rounds without each vital (blood pressure as a
  pair).
* ``episode``: deteriorating patients only; per vital the mean residual in 4 coarse bins of
  hours since onset (-6..0, 0..6, 6..24, 24..48) minus the patient's own pre-episode mean;
  per coarse bin whether the patient has data in it (scaled by 1/2).

Post-processing turns the noisy sums into valid parameters: noisy counts are floored at 1,
shares clipped to [0, 1] and renormalised, missingness capped at ``MISSING_MAX``, the
interval kept in [``INTERVAL_MIN_MINUTES``, 240] minutes, the deterioration share in
``DET_FRACTION_RANGE``, variances kept in
[0, ``VARIANCE_MAX``], correlation matrices
projected to the nearest correlation matrix, the variogram fit by
the exact fit's variogram fit (rate in its grid, variances >= 0).

**Not fitted (public defaults).**  ``severity_sd`` (the spread of episode severity across
patients) is the public constant :data:`SEVERITY_SD`; ``n_measurements`` are not released
(0).  **Not covered by epsilon**: the refusal to fit when there are fewer than
:data:`~secured_bio.telemetry.synthetic.MIN_PATIENTS` patients or
:data:`~secured_bio.telemetry.synthetic.MIN_MEASUREMENTS` baseline measurements of a vital
(the exact counts are compared; only the refusal is revealed), and the public settings
(clip bounds, budget split, bins, delta).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from secured_bio.errors import ConfigError
from secured_bio.privacy.dp_random import DPRandom
from secured_bio.telemetry import synthetic as _syn

__all__ = [
    "ADJACENCY",
    "BUDGET_SPLIT",
    "CLIP",
    "DEFAULT_DELTA",
    "SEVERITY_SD",
    "fit_vitals_model_dp",
    "zcdp_epsilon",
    "zcdp_rho",
]

#: Adjacency of the guarantee.
ADJACENCY = "add/remove one patient"
#: Default delta of the (epsilon, delta) guarantee.
DEFAULT_DELTA = 1e-6
#: Public share of rho given to each statistic group (sums to 1).
BUDGET_SPLIT: dict[str, float] = {
    "cohort": 0.15, "timing": 0.05, "level": 0.15, "circadian": 0.05, "variogram": 0.15,
    "correlation": 0.05, "missingness": 0.05, "episode": 0.35,
}
#: L2 bound of each patient's scaled contribution vector per group (the L2 sensitivity).
CLIP: dict[str, float] = {
    "cohort": math.sqrt(5.0), "timing": 0.75, "level": 0.5, "circadian": 0.5, "variogram": 1.5,
    "correlation": 0.5, "missingness": 0.25, "episode": 3.0,
}
#: Clamps of per-patient values before scaling (z units, minutes, hours).
Z_CLAMP = 4.0
GAMMA_CLAMP = 4.0
INNOVATION_CLAMP = 3.0
SHIFT_CLAMP = 4.0
GAP_MAX_MINUTES = 240.0
#: Post-processing bounds of released parameters (public): sampling interval (minutes),
#: missingness share (every vital keeps some measurements), variances (z^2).
INTERVAL_MIN_MINUTES = 5.0
MISSING_MAX = 0.9
VARIANCE_MAX = 4.0
#: Range of the released deterioration share (so that samples have both classes).
DET_FRACTION_RANGE = (0.05, 0.95)
STAY_MAX_HOURS = 336.0
#: Public default of the episode severity SD (not fitted under DP).
SEVERITY_SD = 0.3
#: Coarse bins (hours since onset) of the DP episode profile.
EPISODE_COARSE_EDGES: tuple[float, ...] = (-6.0, 0.0, 6.0, 24.0, 48.0)
_SEX_DOMAIN = ("F", "M", "other")
_UTC_HOURS = tuple(range(-12, 15))
_N_LAG_BINS = 8
#: Scale of the 0/1 presence indicators inside the variogram and episode vectors.
_PRESENCE = {"variogram": 0.25, "episode": 0.5}
_VITALS = _syn._VITALS
_BP = ("systolic_bp", "diastolic_bp")
_NON_BP = tuple(v for v in _VITALS if v not in _BP)
_PAIRS = [(a, b) for a in range(len(_VITALS)) for b in range(a, len(_VITALS))]


def zcdp_epsilon(rho: float, delta: float) -> float:
    """Epsilon of ``rho``-zCDP at ``delta``: ``rho + 2 sqrt(rho log(1/delta))``.

    Examples
    --------
    >>> round(zcdp_epsilon(zcdp_rho(1.0, 1e-6), 1e-6), 12)
    1.0
    """
    return float(rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta)))


def zcdp_rho(epsilon: float, delta: float) -> float:
    """Return the largest ``rho`` whose :func:`zcdp_epsilon` at ``delta`` is ``epsilon``."""
    lg = math.sqrt(math.log(1.0 / delta))
    return float((math.sqrt(lg * lg + epsilon) - lg) ** 2)


def _clip_rows(x: np.ndarray, c: float) -> np.ndarray:
    """Scale each row to L2 norm at most ``c``."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x * np.minimum(1.0, c / np.maximum(norm, 1e-300))


@dataclass
class _Prep:
    """Per-row arrays of the cohort (see fit_vitals_model)."""

    pid: np.ndarray
    vit: np.ndarray
    z: np.ndarray
    t_us: np.ndarray
    t_h: np.ndarray
    clock: np.ndarray
    rel_h: np.ndarray
    base: np.ndarray
    off: np.ndarray
    patients: pd.DataFrame
    onset_us: pd.Series
    ids: list[str]
    where: str
    has_events: bool


def _prepare(vitals: Any, patients: Any, events: Any) -> _Prep:
    fr = _syn._frames(vitals, patients, events)
    v, where = fr.vitals, fr.where
    n_pat = int(v["patient_id"].nunique())
    if n_pat < _syn.MIN_PATIENTS:
        raise _syn._too_few("patients", where, f">= {_syn.MIN_PATIENTS} patients with vital "
                            "signs", f"{n_pat}")
    z = np.clip(_syn._age_z(v, fr.patients), -Z_CLAMP, Z_CLAMP)
    vit = v["vital"].to_numpy()
    t_us = v["time_us"].to_numpy(dtype=np.int64)
    pid = v["patient_id"].to_numpy().astype(str)
    first = v.groupby("patient_id")["time_us"].transform("min").to_numpy(dtype=np.int64)
    off = v["off_min"].to_numpy(dtype=np.int64)
    clock = ((t_us // _syn._US_PER_MIN + off) % (24 * 60)) / 60.0
    onset = pd.Series(-1, index=pd.Index(sorted(set(pid))), dtype=np.int64)
    if fr.events is not None:
        onset = fr.events["onset_us"].reindex(onset.index).fillna(-1).astype(np.int64)
    onset_row = onset.reindex(pid).to_numpy(dtype=np.int64)
    rel_h = np.where(onset_row >= 0, (t_us - onset_row) / _syn._US_PER_HOUR, np.nan)
    base = ~(np.isfinite(rel_h) & (rel_h >= _syn.EPISODE_EDGES[0]))
    for name in _VITALS:
        n_m = int(((vit == name) & base).sum())
        if n_m < _syn.MIN_MEASUREMENTS:
            raise _syn._too_few(f"{name} measurements", f"{where}:{name}",
                                f">= {_syn.MIN_MEASUREMENTS} baseline measurements of each "
                                "vital", f"{n_m}")
    return _Prep(pid=pid, vit=vit, z=z, t_us=t_us, t_h=(t_us - first) / _syn._US_PER_HOUR,
                 clock=clock, rel_h=rel_h, base=base, off=off,
                 patients=fr.patients, onset_us=onset, ids=list(onset.index), where=where,
                 has_events=fr.events is not None)


def _groups(prep: _Prep) -> dict[str, np.ndarray]:
    """Row index of each patient (sorted by time)."""
    order = np.lexsort((prep.t_us, prep.pid))
    pid = prep.pid[order]
    bounds = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1], True])
    return {str(pid[a]): order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)}


def _lag_edges(interval_h: float) -> np.ndarray:
    lo = max(interval_h / 2, 1.0 / 120)
    return np.geomspace(lo, _syn._MAX_LAG_H, _N_LAG_BINS + 1)


def _stage1_contributions(prep: _Prep) -> dict[str, np.ndarray]:
    """Scaled, clipped per-patient vectors of the stage-1 groups (rows: ``prep.ids``)."""
    rows = _groups(prep)
    na = len(_syn._AGE_EDGES) - 1
    cohort, timing, level, circ, miss = [], [], [], [], []
    for p in prep.ids:
        ix = rows[p]
        # cohort: age band, sex, deteriorates, UTC offset hour.
        age = float(prep.patients.at[p, "age_years"])
        band = int(np.clip(np.searchsorted(_syn._AGE_EDGES, age, side="right") - 1, 0, na - 1))
        sex = str(prep.patients.at[p, "sex"])
        s_ix = _SEX_DOMAIN.index(sex) if sex in _SEX_DOMAIN[:-1] else len(_SEX_DOMAIN) - 1
        det = bool(prep.onset_us[p] >= 0)
        hour = int(np.clip(round(float(pd.Series(prep.off[ix]).mode().iloc[0]) / 60), -12, 14))
        c = np.zeros(2 + na + len(_SEX_DOMAIN) + len(_UTC_HOURS))
        c[0], c[1] = 1.0, float(det)
        c[2 + band] = c[2 + na + s_ix] = 1.0
        c[2 + na + len(_SEX_DOMAIN) + _UTC_HOURS.index(hour)] = 1.0
        cohort.append(c)
        # timing
        times = np.unique(prep.t_us[ix])
        gaps = np.diff(times) / _syn._US_PER_MIN
        gaps = gaps[gaps > 0]
        g = (np.clip(np.percentile(gaps, [50, 25, 75]), 0, GAP_MAX_MINUTES) / GAP_MAX_MINUTES
             if len(gaps) else np.zeros(3))
        span = (times[-1] - times[0]) if len(times) else 0
        stay = min(span / _syn._US_PER_HOUR, STAY_MAX_HOURS) / STAY_MAX_HOURS
        pos = (float(np.clip((prep.onset_us[p] - times[0]) / span, 0, 1))
               if det and span > 0 else 0.0)
        timing.append(np.r_[g, stay, pos, pos * pos])
        # level, circadian, missingness
        lv, ci = [], []
        vit_ix, base_ix = prep.vit[ix], prep.base[ix]
        for name in _VITALS:
            m = (vit_ix == name) & base_ix
            zz = prep.z[ix][m]
            if len(zz) == 0:
                lv += [0.0, 0.0]
                ci += [0.0] * 5
                continue
            lv += [zz.mean() / Z_CLAMP, (zz**2).mean() / Z_CLAMP**2]
            cc = prep.clock[ix][m]
            cs, sn = np.cos(2 * np.pi * cc / 24), np.sin(2 * np.pi * cc / 24)
            cs, sn, zc = cs - cs.mean(), sn - sn.mean(), zz - zz.mean()
            ci += [(cs * zc).mean() / (2 * Z_CLAMP), (sn * zc).mean() / (2 * Z_CLAMP),
                   (cs * cs).mean() / 4, (sn * sn).mean() / 4, (cs * sn).mean() / 4]
        level.append(np.asarray(lv))
        circ.append(np.asarray(ci))
        pres = pd.crosstab(prep.t_us[ix], vit_ix).reindex(columns=list(_VITALS), fill_value=0)
        pres = pres.to_numpy() > 0
        n_r = max(len(pres), 1)
        js, jd = _VITALS.index("systolic_bp"), _VITALS.index("diastolic_bp")
        mv = [float((~pres[:, _VITALS.index(x)]).sum()) / n_r for x in _NON_BP]
        mv += [float((~pres[:, js] & ~pres[:, jd]).sum()) / n_r,
               float((~pres[:, js] & pres[:, jd]).sum()) / n_r,
               float((pres[:, js] & ~pres[:, jd]).sum()) / n_r]
        miss.append(np.asarray(mv))
    out = {"cohort": cohort, "timing": timing, "level": level, "circadian": circ,
           "missingness": miss}
    return {k: _clip_rows(np.asarray(x, dtype=float), CLIP[k]) for k, x in out.items()}


def _residuals(prep: _Prep, released: dict[str, Any]) -> np.ndarray:
    """Return z minus the released mean and harmonic of each vital (clamped to +-Z)."""
    r = np.zeros(len(prep.z))
    for name in _VITALS:
        m = prep.vit == name
        a, b, mu = released["harmonic"][name] + (released["mean"][name],)
        cc = prep.clock[m]
        r[m] = prep.z[m] - mu - a * np.cos(2 * np.pi * cc / 24) - b * np.sin(2 * np.pi * cc / 24)
    return np.clip(r, -Z_CLAMP, Z_CLAMP)


def _stage2_contributions(prep: _Prep, released: dict[str, Any]) -> dict[str, np.ndarray]:
    """Scaled, clipped per-patient vectors of the stage-2 groups, given stage-1 releases.

    ``released`` holds ``mean`` and ``harmonic`` (a, b) per vital, ``ou_rate`` per vital and
    ``interval_hours`` (all already differentially private).
    """
    rows = _groups(prep)
    r_all = _residuals(prep, released)
    edges = _lag_edges(float(released["interval_hours"]))
    rates = np.array([released["ou_rate"][x] for x in _VITALS])
    cedges = np.asarray(EPISODE_COARSE_EDGES)
    nc = len(cedges) - 1
    vario, corr, episode = [], [], []
    for p in prep.ids:
        ix = rows[p]
        vit_ix, base_ix, t_h, r = prep.vit[ix], prep.base[ix], prep.t_h[ix], r_all[ix]
        # variogram: per vital and lag bin, the mean semivariance; per bin, presence.
        gam = np.zeros((len(_VITALS), _N_LAG_BINS))
        has = np.zeros(_N_LAG_BINS, dtype=bool)
        for j, name in enumerate(_VITALS):
            m = (vit_ix == name) & base_ix
            tt, rr = t_h[m], r[m]
            if len(tt) > _syn._MAX_OBS_VARIOGRAM:
                keep = np.linspace(0, len(tt) - 1, _syn._MAX_OBS_VARIOGRAM).round().astype(int)
                tt, rr = tt[keep], rr[keep]
            i, k = np.triu_indices(len(tt), k=1)
            lag = tt[k] - tt[i]
            ok = (lag >= edges[0]) & (lag <= edges[-1])
            if not ok.any():
                continue
            b = np.clip(np.searchsorted(edges, lag[ok], side="right") - 1, 0, _N_LAG_BINS - 1)
            g = np.minimum(0.5 * (rr[k[ok]] - rr[i[ok]]) ** 2, GAMMA_CLAMP)
            cnt = np.bincount(b, minlength=_N_LAG_BINS)
            sg = np.bincount(b, weights=g, minlength=_N_LAG_BINS)
            gam[j] = np.where(cnt > 0, sg / np.maximum(cnt, 1), 0.0) / GAMMA_CLAMP
            has |= cnt > 0
        vario.append(np.r_[gam.reshape(-1), _PRESENCE["variogram"] * has.astype(float)])
        # correlation: innovations at consecutive rounds, and offsets (mean residuals).
        wide = pd.DataFrame({"t": prep.t_us[ix][base_ix], "v": vit_ix[base_ix],
                             "r": r[base_ix]}).pivot_table(
            index="t", columns="v", values="r", aggfunc="mean").reindex(columns=list(_VITALS))
        wv = wide.to_numpy(dtype=float)
        dt = np.diff(wide.index.to_numpy(dtype=np.int64)) / _syn._US_PER_HOUR
        inn = np.clip(wv[1:] - np.exp(-np.outer(dt, rates)) * wv[:-1],
                      -INNOVATION_CLAMP, INNOVATION_CLAMP)
        seen = np.isfinite(wv)
        means = np.where(seen.any(axis=0), np.where(seen, wv, 0.0).sum(axis=0)
                         / np.maximum(seen.sum(axis=0), 1), 0.0)
        c_inn, c_off = [], []
        for a, b2 in _PAIRS:
            pr = inn[:, a] * inn[:, b2] if len(inn) else np.zeros(0)
            pr = pr[np.isfinite(pr)]
            c_inn.append(pr.mean() / INNOVATION_CLAMP**2 if len(pr) else 0.0)
            c_off.append(means[a] * means[b2] / Z_CLAMP**2)
        corr.append(np.r_[c_inn, c_off])
        # episode: deteriorating patients only.
        e = np.zeros(len(_VITALS) * nc + nc)
        if prep.onset_us[p] >= 0:
            rel = prep.rel_h[ix]
            cb = np.searchsorted(cedges, rel, side="right") - 1
            inb = (cb >= 0) & (cb < nc)
            pre = base_ix  # the patient's own reference: before -6 h
            for j, name in enumerate(_VITALS):
                mv = vit_ix == name
                ref = float(r[mv & pre].mean()) if (mv & pre).any() else 0.0
                for q in range(nc):
                    mq = mv & inb & (cb == q)
                    if mq.any():
                        e[j * nc + q] = np.clip(float(r[mq].mean()) - ref, -SHIFT_CLAMP,
                                                SHIFT_CLAMP) / SHIFT_CLAMP
            for q in range(nc):
                e[len(_VITALS) * nc + q] = _PRESENCE["episode"] * float((inb & (cb == q)).any())
        episode.append(e)
    out = {"variogram": vario, "correlation": corr, "episode": episode}
    return {k: _clip_rows(np.asarray(x, dtype=float), CLIP[k]) for k, x in out.items()}


class _Releaser:
    """Gaussian mechanism on clipped sums, with the zCDP ledger."""

    def __init__(self, rho: float, rng: DPRandom) -> None:
        self.rho, self.rng = rho, rng
        self.ledger: dict[str, dict[str, float]] = {}

    def release(self, group: str, contrib: np.ndarray) -> np.ndarray:
        rho_g = self.rho * BUDGET_SPLIT[group]
        sigma = CLIP[group] / math.sqrt(2.0 * rho_g)
        self.ledger[group] = {"share": BUDGET_SPLIT[group], "rho": rho_g,
                              "l2_sensitivity": CLIP[group], "sigma": sigma,
                              "dimension": int(contrib.shape[1])}
        return contrib.sum(axis=0) + self.rng.normal(contrib.shape[1], sigma)


def _share(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, None)
    return x / x.sum() if x.sum() > 0 else np.full(len(x), 1.0 / len(x))


def fit_vitals_model_dp(
    vitals: str | os.PathLike[str] | pd.DataFrame,
    patients: str | os.PathLike[str] | pd.DataFrame,
    events: str | os.PathLike[str] | pd.DataFrame | None = None,
    *,
    epsilon: float,
    delta: float = DEFAULT_DELTA,
    dp_random: DPRandom | None = None,
    seed: int = 0,
) -> _syn.VitalsModel:
    """Fit a :class:`~secured_bio.telemetry.synthetic.VitalsModel` with (epsilon, delta)-DP.

    Parameters
    ----------
    vitals, patients, events
        As :func:`~secured_bio.telemetry.synthetic.fit_vitals_model`.
    epsilon
        Privacy budget (> 0) of the whole model, patient-level adjacency.
    delta
        The delta of the guarantee (0 < delta < 1; default 1e-6).
    dp_random
        Source of the noise (default: the OS CSPRNG).  ``DPRandom(insecure_seed=...)`` only in
        tests: the model then records that its epsilon does not hold.
    seed
        Accepted for symmetry; it never touches the noise.

    Returns
    -------
    VitalsModel
        With ``differential_privacy`` filled in (epsilon, delta, adjacency, clip bounds,
        budget split with each group's rho and sigma, randomness).

    Raises
    ------
    ConfigError
        If epsilon or delta is out of range.
    InputError, SchemaError, InputFileNotFoundError
        As :func:`~secured_bio.telemetry.synthetic.fit_vitals_model`.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_vitals
    >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=1, patients_per_site=12, hours=24)
    >>> m = fit_vitals_model_dp(c.vitals_paths[0], c.patients_paths[0], c.events_paths[0],
    ...                         epsilon=4.0)
    >>> m.differential_privacy["epsilon"], m.differential_privacy["adjacency"]
    (4.0, 'add/remove one patient')
    """
    del seed
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not (
            math.isfinite(epsilon) and epsilon > 0):
        raise ConfigError("epsilon must be a positive number", where="epsilon",
                          expected="epsilon > 0, e.g. 1", got=repr(epsilon),
                          fix="pass e.g. --epsilon 1")
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
        raise ConfigError("delta must be in (0, 1)", where="delta",
                          expected="0 < delta < 1, e.g. 1e-6", got=repr(delta),
                          fix="pass e.g. --delta 1e-6")
    rng = dp_random if dp_random is not None else DPRandom()
    prep = _prepare(vitals, patients, events)
    rho = zcdp_rho(float(epsilon), float(delta))
    rel = _Releaser(rho, rng)
    nv = len(_VITALS)
    na = len(_syn._AGE_EDGES) - 1
    ns = len(_SEX_DOMAIN)
    c1 = _stage1_contributions(prep)
    # -- cohort: counts and shares (CLIP cohort = sqrt 5 >= the largest norm: no clipping).
    s = rel.release("cohort", c1["cohort"])
    n_hat = max(float(s[0]), 1.0)
    n_det = float(np.clip(s[1], 0.0, n_hat))
    age_shares = _share(s[2:2 + na])
    sex = _share(s[2 + na:2 + na + ns])
    utc_hour = _UTC_HOURS[int(np.argmax(s[2 + na + ns:]))]
    # -- timing (scaled by the clamps).
    t = rel.release("timing", c1["timing"])
    med_gap = float(np.clip(t[0] / n_hat * GAP_MAX_MINUTES, INTERVAL_MIN_MINUTES,
                            GAP_MAX_MINUTES))
    q = sorted(float(np.clip(x / n_hat, 0.0, 1.0)) * GAP_MAX_MINUTES for x in t[1:3])
    stay_h = float(np.clip(t[3] / n_hat, 0.0, 1.0)) * STAY_MAX_HOURS
    n_det_span = max(n_det, 1.0)
    onset_mean = float(np.clip(t[4] / n_det_span, 0.05, 0.95))
    onset_sd = float(math.sqrt(max(float(t[5]) / n_det_span - onset_mean**2, 0.0025)))
    onset_position = (round(onset_mean, 4), round(min(onset_sd, 0.5), 4))
    # -- level and circadian.
    lv = rel.release("level", c1["level"]).reshape(nv, 2)
    ci = rel.release("circadian", c1["circadian"]).reshape(nv, 5)
    mean = {}
    harmonic: dict[str, tuple[float, float]] = {}
    total: dict[str, float] = {}
    for j, name in enumerate(_VITALS):
        mu = float(np.clip(lv[j, 0] / n_hat * Z_CLAMP, -Z_CLAMP, Z_CLAMP))
        ez2 = float(np.clip(lv[j, 1] / n_hat, 0.0, 1.0)) * Z_CLAMP**2
        cz, sz = ci[j, 0] * 2 * Z_CLAMP, ci[j, 1] * 2 * Z_CLAMP
        xtx = np.array([[ci[j, 2], ci[j, 4]], [ci[j, 4], ci[j, 3]]]) * 4
        w = np.linalg.eigvalsh(xtx)
        a = b = 0.0
        if w.min() > 0.05 * n_hat:  # enough clock-hour spread (noisy): else no harmonic
            a, b = (float(x) for x in np.linalg.solve(xtx, np.array([cz, sz])))
            amp = math.hypot(a, b)
            if amp > 1.5:  # post-processing bound on a z-score harmonic
                a, b = a * 1.5 / amp, b * 1.5 / amp
        mean[name], harmonic[name] = mu, (a, b)
        total[name] = max(ez2 - mu**2 - (a * a + b * b) / 2, 0.0)
    # -- missingness.
    mm = np.clip(rel.release("missingness", c1["missingness"]) / n_hat, 0.0, MISSING_MAX)
    miss_rate = {x: float(mm[k]) for k, x in enumerate(_NON_BP)}
    bp = mm[len(_NON_BP):]
    if bp.sum() > MISSING_MAX:
        bp = bp * MISSING_MAX / bp.sum()
    bp_missing = {"both": round(float(bp[0]), 6), "systolic_only": round(float(bp[1]), 6),
                  "diastolic_only": round(float(bp[2]), 6)}
    miss_rate["systolic_bp"] = float(bp[0] + bp[1])
    miss_rate["diastolic_bp"] = float(bp[0] + bp[2])
    # -- stage 2: variogram (needs the released interval, mean and harmonic).
    interval_h = med_gap / 60.0
    released: dict[str, Any] = {"mean": mean, "harmonic": harmonic,
                                "interval_hours": interval_h,
                                "ou_rate": {x: 1.0 for x in _VITALS}}
    edges = _lag_edges(interval_h)
    centres = np.sqrt(edges[:-1] * edges[1:])
    vario_contrib = _stage2_contributions(prep, released)["variogram"]
    vs = rel.release("variogram", vario_contrib)
    cnt = vs[nv * _N_LAG_BINS:] / _PRESENCE["variogram"]
    gam = vs[:nv * _N_LAG_BINS].reshape(nv, _N_LAG_BINS) * GAMMA_CLAMP
    ok = cnt >= max(2.0, 0.1 * n_hat)
    params: dict[str, _syn.VitalParams] = {}
    for j, name in enumerate(_VITALS):
        if ok.sum() >= 3:
            g = np.clip(gam[j, ok] / cnt[ok], 0.0, GAMMA_CLAMP)
            nug, proc, rate = _syn._fit_variogram(centres[ok], g, cnt[ok])
        else:
            nug, proc, rate = total[name] / 2, total[name] / 2, 1.0 / 3
        nug, proc = min(nug, VARIANCE_MAX), min(proc, VARIANCE_MAX)
        tau2 = min(max(total[name] - nug - proc, 0.0), VARIANCE_MAX)
        a, b = harmonic[name]
        amp = float(math.hypot(a, b))
        peak = float((math.degrees(math.atan2(b, a)) / 15.0) % 24) if amp > 0 else 0.0
        params[name] = _syn.VitalParams(
            mean=round(mean[name], 6), offset_sd=round(math.sqrt(tau2), 6),
            ou_rate=round(rate, 6), process_sd=round(math.sqrt(proc), 6),
            noise_sd=round(math.sqrt(nug), 6), circadian_amplitude=round(amp, 6),
            circadian_peak_hour=round(peak, 4),
            missing_rate=round(float(np.clip(miss_rate[name], 0, 1)), 6), n_measurements=0)
    released["ou_rate"] = {x: params[x].ou_rate for x in _VITALS}
    # -- correlations and the episode profile (need the released rates).
    c2 = _stage2_contributions(prep, released)
    cr = rel.release("correlation", c2["correlation"])
    npair = len(_PAIRS)
    inn, offm = np.zeros((nv, nv)), np.zeros((nv, nv))
    for k, (a_, b_) in enumerate(_PAIRS):
        inn[a_, b_] = inn[b_, a_] = cr[k]
        offm[a_, b_] = offm[b_, a_] = cr[npair + k]
    innovation_corr = _safe_corr(inn)
    offset_corr = _safe_corr(offm)
    ep_sum = rel.release("episode", c2["episode"])
    episode = _episode(ep_sum, n_det) if prep.has_events else None
    det_frac = float(np.clip(n_det / n_hat, DET_FRACTION_RANGE[0], DET_FRACTION_RANGE[1]))
    sexes = {k: round(float(x), 6) for k, x in zip(_SEX_DOMAIN, sex, strict=True) if x > 0}
    dp = {
        "epsilon": float(epsilon), "delta": float(delta), "adjacency": ADJACENCY,
        "accounting": "zCDP (Bun & Steinke 2016): Gaussian mechanism per group, "
                      "rho = sum of l2_sensitivity^2 / (2 sigma^2); "
                      "epsilon = rho + 2 sqrt(rho log(1/delta))",
        "rho": rho, "epsilon_spent": zcdp_epsilon(sum(g["rho"] for g in rel.ledger.values()),
                                                  float(delta)),
        "groups": rel.ledger,
        "clip_bounds": {"z": Z_CLAMP, "semivariance": GAMMA_CLAMP,
                        "innovation": INNOVATION_CLAMP, "episode_shift": SHIFT_CLAMP,
                        "gap_minutes": GAP_MAX_MINUTES, "stay_hours": STAY_MAX_HOURS,
                        "l2_per_group": dict(CLIP)},
        "budget_split": dict(BUDGET_SPLIT),
        "public_defaults": {"severity_sd": SEVERITY_SD,
                            "episode_coarse_edges_hours": list(EPISODE_COARSE_EDGES)},
        "not_covered": f"the refusal to fit below {_syn.MIN_PATIENTS} patients or "
                       f"{_syn.MIN_MEASUREMENTS} baseline measurements of a vital",
        "randomness": rng.describe(),
    }
    model = _syn.VitalsModel(
        vitals=params, innovation_corr=innovation_corr, offset_corr=offset_corr,
        bp_missing=bp_missing, interval_minutes=round(med_gap, 4),
        interval_quartiles=(round(q[0], 4), round(q[1], 4)),
        utc_offset_minutes=60 * utc_hour, age_edges=_syn._AGE_EDGES,
        age_shares=tuple(round(float(x), 6) for x in age_shares), sex_shares=sexes,
        deterioration_fraction=round(det_frac, 6),
        onset_position=onset_position, episode=episode, n_patients=int(round(n_hat)),
        n_deteriorating=int(round(n_det)), n_measurements=0,
        stay_hours_median=round(stay_h, 4),
        notes=[f"differentially private fit: ({epsilon:g}, {delta:g})-DP, {ADJACENCY}; "
               "counts are noisy, n_measurements not released"],
        differential_privacy=dp,
    )
    return model


def _safe_corr(cov: np.ndarray) -> list[list[float]]:
    """Turn a noisy second-moment matrix into a well-conditioned correlation matrix."""
    d = np.sqrt(np.clip(np.diag(cov), 1e-12, None))
    c = np.clip(cov / np.outer(d, d), -1.0, 1.0)
    np.fill_diagonal(c, 1.0)
    c = np.asarray(_syn._nearest_corr(c))
    lo = float(np.linalg.eigvalsh(c).min())
    if lo < 0.01:  # shrink towards the identity so that Cholesky succeeds after rounding
        w = (0.01 - lo) / (1.0 - lo)
        c = (1 - w) * c + w * np.eye(len(c))
    return [[round(float(x), 6) for x in row] for row in c]


def _episode(ep_sum: np.ndarray, n_det: float) -> dict[str, Any]:
    """Episode profile on the public fine bins from the noisy coarse sums.

    Unlike the exact fit, a profile is always released when an events table was given (the
    noise, not a minimum count, protects the patients); denominators are floored at
    ``MIN_BIN_PATIENTS`` so that a tiny noisy count cannot blow the shifts up.
    """
    nv = len(_VITALS)
    cedges = np.asarray(EPISODE_COARSE_EDGES)
    nc = len(cedges) - 1
    counts = ep_sum[nv * nc:] / _PRESENCE["episode"]
    est = counts >= _syn.MIN_BIN_PATIENTS
    if not est[1:].any():  # no post-onset bin stands out of the noise: use them all
        est[1:] = True
    shift = ep_sum[:nv * nc].reshape(nv, nc) * SHIFT_CLAMP / np.maximum(
        counts, float(_syn.MIN_BIN_PATIENTS))
    shift = np.clip(shift, -SHIFT_CLAMP, SHIFT_CLAMP)
    # Coarse bins not estimated: the nearest estimated post-onset bin, 0 before the onset.
    cols = np.flatnonzero(est)
    for q in range(nc):
        if not est[q]:
            shift[:, q] = 0.0 if cedges[q] < 0 else shift[:, cols[np.argmin(np.abs(cols - q))]]
    fine = np.asarray(_syn.EPISODE_EDGES, dtype=float)
    mids = (fine[:-1] + fine[1:]) / 2
    which = np.clip(np.searchsorted(cedges, mids, side="right") - 1, 0, nc - 1)
    return {
        "edges_hours": [float(e) for e in fine],
        "shift_mean": {x: [round(float(shift[j, w]), 6) for w in which]
                       for j, x in enumerate(_VITALS)},
        "shift_sd": {x: [round(SEVERITY_SD * abs(float(shift[j, w])), 6) for w in which]
                     for j, x in enumerate(_VITALS)},
        "severity_sd": {x: SEVERITY_SD for x in _VITALS},
        "patients_per_bin": [max(int(round(float(counts[w]))), 0) for w in which],
        "estimated": [bool(est[w]) for w in which],
        "n_episodes": int(round(n_det)),
    }
