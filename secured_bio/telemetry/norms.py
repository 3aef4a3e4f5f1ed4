"""Age-specific norms of paediatric vital signs (median and SD), for z-scores and simulation.

One table for the library (feature z-scores, :mod:`secured_bio.telemetry.features`) and the
demo-cohort simulator (:func:`secured_bio.testing.simulate_vitals`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["vital_norms"]

# Age-specific centiles of heart rate and respiratory rate, approximated from
# Fleming S, et al. "Normal ranges of heart rate and respiratory rate in children from birth
# to 18 years of age: a systematic review of observational studies." Lancet 2011;377:1011-18.
# Columns: age-band midpoint (years), 1st, 50th, 99th centile.  The SD used for z-scores is
# (99th - 1st) / (2 x 2.326).  For simulation only, not for clinical use.
_HR = np.array([
    (0.125, 107, 143, 181), (0.375, 104, 140, 175), (0.625, 98, 134, 168),
    (0.875, 93, 128, 161), (1.25, 88, 123, 156), (1.75, 82, 116, 149), (2.5, 76, 110, 142),
    (3.5, 70, 104, 136), (5.0, 65, 98, 131), (7.0, 59, 91, 123), (10.0, 52, 84, 115),
    (13.5, 47, 78, 108), (16.5, 43, 73, 104),
])
_RR = np.array([
    (0.125, 25, 43, 66), (0.375, 24, 41, 64), (0.625, 23, 39, 61), (0.875, 22, 37, 58),
    (1.25, 21, 35, 53), (1.75, 19, 31, 46), (2.5, 18, 28, 38), (3.5, 17, 25, 33),
    (5.0, 17, 23, 29), (7.0, 16, 21, 27), (10.0, 14, 19, 25), (13.5, 12, 18, 23),
    (16.5, 11, 16, 22),
])
# Blood pressure, 50th centile at median height, approximated from the NHBPEP Fourth Report
# (Pediatrics 2004;114:555-76) and Flynn JT, et al. Pediatrics 2017;140:e20171904; neonatal
# values from term-newborn norms.  Columns: age (years), systolic, diastolic (mm[Hg]).
_BP = np.array([
    (0.0, 70, 40), (0.5, 82, 42), (1.0, 85, 42), (3.0, 91, 46), (5.0, 95, 53), (7.0, 97, 57),
    (10.0, 102, 61), (13.0, 108, 62), (15.0, 113, 64), (17.0, 118, 66), (18.0, 118, 66),
])
_Z99 = 2.326


def vital_norms(age_years: float) -> dict[str, tuple[float, float]]:
    """Return the age-specific (median, SD) of each vital sign used by the simulator.

    Heart and respiratory rates follow the centiles of Fleming et al. (Lancet 2011); blood
    pressure the NHBPEP Fourth Report / AAP 2017 50th centiles (SD 10 and 9 mm[Hg]);
    SpO2 98 +/- 1 %, temperature 36.8 +/- 0.35 Cel.

    Parameters
    ----------
    age_years
        Age in years, 0 to 18.

    Returns
    -------
    dict
        ``{vital: (median, sd)}`` in the units of :data:`VITALS`.

    Examples
    --------
    >>> med, sd = vital_norms(0.1)["heart_rate"]
    >>> round(med), round(sd, 1)
    (143, 15.9)
    """
    a = float(np.clip(age_years, 0.0, 18.0))

    def centile(tab: np.ndarray) -> tuple[float, float]:
        lo, med, hi = (float(np.interp(a, tab[:, 0], tab[:, k])) for k in (1, 2, 3))
        return med, (hi - lo) / (2 * _Z99)

    return {
        "heart_rate": centile(_HR),
        "respiratory_rate": centile(_RR),
        "spo2": (98.0, 1.0),
        "temperature": (36.8, 0.35),
        "systolic_bp": (float(np.interp(a, _BP[:, 0], _BP[:, 1])), 10.0),
        "diastolic_bp": (float(np.interp(a, _BP[:, 0], _BP[:, 2])), 9.0),
    }
