"""Real-time scoring of vital-sign observations with a trained deterioration model.

:class:`StreamState` keeps, per patient and vital sign, the last value and one sliding window
per window length.  Each window holds its observations in a deque with running sums (count,
time, z, time x z, time^2) for the mean and least-squares slope, and two monotonic deques for
the minimum and maximum (the "ascending minima" algorithm; Lemire, "Streaming maximum-minimum
filter using no more than three comparisons per element", Nordic J. Computing 2006).  An
observation costs O(1) amortised: it enters each window once and leaves it once; nothing is
recomputed from scratch.  The features equal those of
:func:`secured_bio.telemetry.features.window_features` at the same observations: means and
slopes are rounded to the same 2**-20 grid, which absorbs the rounding of the running sums.

:func:`score_stream` reads observations as JSON lines
``{"patient_id": ..., "time": ..., "vital": ..., "value": ..., "unit": ...}`` (canonical UCUM
units, ISO 8601 times with offset; each patient's observations in time order), scores the
patient after every observation and writes a JSON line when a patient's score crosses the
alert threshold upwards (``patient_id``, ``time``, ``score``, ``threshold``, ``latency_ms``).
Observations are scored in small batches (up to ``batch_size``, or whatever has arrived when
the input pauses), so the latency includes the wait for the batch.

Bad lines (malformed JSON, missing fields, unknown vital, non-canonical unit, non-numeric
value, time without offset, unknown patient, time earlier than the patient's last observation)
are skipped and counted by reason in the summary; with ``strict=True`` the first one raises.
"""

from __future__ import annotations

import io
import json
import math
import os
import select
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from math import floor
from typing import IO, Any

import numpy as np
from threadpoolctl import threadpool_limits

from secured_bio.errors import FormatError, SchemaError
from secured_bio.telemetry.features import QUANTUM, VITAL_UNITS, to_microseconds, vital_norms
from secured_bio.telemetry.model import TelemetryModel

__all__ = ["StreamState", "StreamSummary", "score_stream", "read_lines", "follow_lines"]

_US_PER_HOUR = 3_600_000_000
_VITALS = tuple(VITAL_UNITS)
_VINDEX = {v: i for i, v in enumerate(_VITALS)}
_NAN = float("nan")
_TIMES: dict[str, int] = {}  # time string -> microseconds since the epoch


class _Window:
    """Observations of one vital in ``(t - width, t]`` with running sums and min/max deques."""

    __slots__ = ("width", "q", "n", "st", "sz", "stz", "stt", "qmin", "qmax")

    def __init__(self, width_us: int) -> None:
        self.width = width_us
        self.q: deque[tuple[int, float, float]] = deque()  # (time_us, hours, z)
        self.n = 0
        self.st = self.sz = self.stz = self.stt = 0.0
        self.qmin: deque[tuple[int, float]] = deque()  # (time_us, z), z increasing
        self.qmax: deque[tuple[int, float]] = deque()  # (time_us, z), z decreasing

    def add(self, t_us: int, th: float, z: float) -> None:
        self.q.append((t_us, th, z))
        self.n += 1
        self.st += th
        self.sz += z
        self.stz += th * z
        self.stt += th * th
        qmin, qmax = self.qmin, self.qmax
        while qmin and qmin[-1][1] > z:
            qmin.pop()
        qmin.append((t_us, z))
        while qmax and qmax[-1][1] < z:
            qmax.pop()
        qmax.append((t_us, z))

    def evict(self, now_us: int) -> None:
        cut = now_us - self.width
        q = self.q
        while q and q[0][0] <= cut:
            _, th, z = q.popleft()
            self.n -= 1
            self.st -= th
            self.sz -= z
            self.stz -= th * z
            self.stt -= th * th
        if self.n == 0:  # reset exactly: no rounding residue carried into the next window
            self.st = self.sz = self.stz = self.stt = 0.0
        while self.qmin and self.qmin[0][0] <= cut:
            self.qmin.popleft()
        while self.qmax and self.qmax[0][0] <= cut:
            self.qmax.popleft()

    def stats(self) -> tuple[float, float, float, float]:
        """(mean, min, max, slope); NaN where undefined."""
        n = self.n
        if n == 0:
            return _NAN, _NAN, _NAN, _NAN
        mean = floor(self.sz / n * QUANTUM + 0.5) / QUANTUM
        slope = _NAN
        if n >= 2 and self.q[0][0] != self.q[-1][0]:
            sxx = self.stt - self.st * self.st / n
            if sxx > 0:
                slope = floor((self.stz - self.st * self.sz / n) / sxx * QUANTUM + 0.5) / QUANTUM
        return mean, self.qmin[0][1], self.qmax[0][1], slope


class _Patient:
    __slots__ = ("age", "norms", "origin", "now", "last_t", "last_z", "windows", "alerting",
                 "segments", "seg_time")

    def __init__(self, age: float, widths: list[int], origin: int) -> None:
        self.age = age
        norms = vital_norms(age)
        self.norms = [norms[v] for v in _VITALS]
        self.origin = origin
        self.now = origin
        self.last_t = [0] * len(_VITALS)
        self.last_z = [_NAN] * len(_VITALS)
        self.windows = [[_Window(w) for w in widths] for _ in _VITALS]
        self.alerting = False
        self.segments: list[list[float]] = [[] for _ in _VITALS]
        self.seg_time = -1  # time of the cached segments; -1: none yet


class StreamState:
    """Incremental window features of many patients, one observation at a time.

    Parameters
    ----------
    ages
        ``{patient_id: age in years}`` of the patients that may appear.
    windows, carry_hours
        The feature definition (as in :func:`secured_bio.telemetry.features.window_features`).

    Examples
    --------
    >>> s = StreamState({"a": 5.0}, windows=(2,))
    >>> s.update("a", 0, "spo2", 98.0)[:3]
    [5.0, nan, 1.0]
    >>> row = s.update("a", 3_600_000_000, "spo2", 97.0)
    >>> row[13:17]  # spo2: z, missing, mean, min of the 2 h window
    [-1.0, 0.0, -0.5, -1.0]
    """

    def __init__(self, ages: Mapping[str, float], *, windows: Iterable[float] = (2.0, 6.0),
                 carry_hours: float = 4.0) -> None:
        self.ages = dict(ages)
        self.widths = [round(float(w) * _US_PER_HOUR) for w in windows]
        self.carry = round(float(carry_hours) * _US_PER_HOUR)
        self.patients: dict[str, _Patient] = {}

    def check(self, patient_id: str, time_us: int) -> str | None:
        """Return why an observation cannot be used (unknown patient, out of order), or None."""
        if patient_id not in self.ages:
            return "unknown_patient"
        p = self.patients.get(patient_id)
        if p is not None and time_us < p.now:
            return "out_of_order"
        return None

    def update(self, patient_id: str, time_us: int, vital: str, value: float) -> list[float]:
        """Add one observation (canonical unit); return the patient's feature row after it.

        The caller checks the observation first (:meth:`check`, known vital, finite value).
        """
        p = self.patients.get(patient_id)
        if p is None:
            p = self.patients[patient_id] = _Patient(float(self.ages[patient_id]), self.widths,
                                                     time_us)
        k = _VINDEX[vital]
        med, sd = p.norms[k]
        z = (value - med) / sd
        p.now = time_us
        p.last_t[k] = time_us
        p.last_z[k] = z
        th = (time_us - p.origin) / _US_PER_HOUR
        for w in p.windows[k]:
            w.add(time_us, th, z)
        return self._row(p, k)

    def _segment(self, p: _Patient, k: int) -> list[float]:
        """Features of vital ``k`` at the patient's current time."""
        now = p.now
        z = p.last_z[k]
        seg = [z, 0.0] if z == z and now - p.last_t[k] <= self.carry else [_NAN, 1.0]
        for w in p.windows[k]:
            w.evict(now)
            seg.extend(w.stats())
        return seg

    def _row(self, p: _Patient, k: int) -> list[float]:
        # A vital's features change only when it is observed or time moves on: while time
        # stands still (the other vitals of the same measurement round) only vital k is redone.
        segs = p.segments
        if p.now != p.seg_time:
            for j in range(len(_VITALS)):
                segs[j] = self._segment(p, j)
            p.seg_time = p.now
        else:
            segs[k] = self._segment(p, k)
        row = [p.age]
        for seg in segs:
            row.extend(seg)
        return row


@dataclass
class StreamSummary:
    """Counts and timing of one :func:`score_stream` run (what goes to stderr)."""

    lines: int = 0
    observations: int = 0
    alerts: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    latency_ms: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary: counts, throughput and latency percentiles."""
        lat = np.asarray(self.latency_ms) if self.latency_ms else np.array([np.nan])
        return {
            "lines": self.lines,
            "observations": self.observations,
            "bad_lines": int(sum(self.bad.values())),
            "bad_by_reason": dict(sorted(self.bad.items())),
            "alerts": self.alerts,
            "seconds": round(self.seconds, 6),
            "obs_per_s": round(self.observations / self.seconds, 1) if self.seconds else None,
            "latency_ms_median": float(np.nanmedian(lat)) if self.latency_ms else None,
            "latency_ms_p99": float(np.nanpercentile(lat, 99)) if self.latency_ms else None,
        }


def _parse(line: str, state: StreamState) -> tuple[str, str, int, str, float] | str:
    """Parse one JSON line; return the observation or the reason it is bad."""
    try:
        obs = json.loads(line)
    except ValueError:
        return "malformed_json"
    if not isinstance(obs, dict):
        return "malformed_json"
    try:
        pid, when, vital, value, unit = (obs["patient_id"], obs["time"], obs["vital"],
                                         obs["value"], obs["unit"])
    except KeyError:
        return "missing_field"
    expected = VITAL_UNITS.get(vital) if isinstance(vital, str) else None
    if expected is None:
        return "unknown_vital"
    if unit != expected:
        return "bad_unit"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "bad_value"
    if not isinstance(when, str):
        return "bad_time"
    t_us = _TIMES.get(when)
    if t_us is None:
        try:
            dt = datetime.fromisoformat(when)
        except ValueError:
            return "bad_time"
        if dt.tzinfo is None:
            return "bad_time"
        t_us = to_microseconds(dt)
        if len(_TIMES) >= 4096:  # the vitals of one round share a time string: a small cache
            _TIMES.clear()
        _TIMES[when] = t_us
    pid = str(pid)
    why = state.check(pid, t_us)
    if why is not None:
        return why
    return pid, when, t_us, vital, float(value)


def score_stream(
    lines: Iterable[str | None],
    model: TelemetryModel,
    ages: Mapping[str, float],
    *,
    out: IO[str] | None = None,
    emit: str = "alerts",
    strict: bool = False,
    batch_size: int = 512,
    clock: Callable[[], float] = time.perf_counter,
) -> StreamSummary:
    """Score a stream of JSON-line observations; write alerts (or every score) as JSON lines.

    Parameters
    ----------
    lines
        JSON lines; a ``None`` item means "the input paused": score what has arrived
        (:func:`read_lines` and :func:`follow_lines` yield it).
    model
        Trained model (its feature definition and threshold are used).
    ages
        ``{patient_id: age in years}``.
    out
        Where output lines go (None: nowhere, e.g. for benchmarks).
    emit
        ``"alerts"``: a line when a patient's score crosses the threshold upwards;
        ``"all"``: a line per scored observation (with ``"alert": true/false``).
    strict
        Raise on the first bad line instead of counting it.
    batch_size
        Most observations scored together.
    clock
        Time source in seconds (for latency).

    Returns
    -------
    StreamSummary

    Raises
    ------
    FormatError
        With ``strict``, on the first bad line (its number and reason, never its content).
    SchemaError
        If ``emit`` is not ``"alerts"`` or ``"all"``.

    Examples
    --------
    >>> import io
    >>> from secured_bio.telemetry.features import feature_names
    >>> from secured_bio.telemetry.model import mlp
    >>> m = TelemetryModel("torch", mlp(len(feature_names()), hidden=(4,)), threshold=0.0)
    >>> obs = '{"patient_id": "a", "time": "2026-01-05T08:00:00+01:00", "vital": "spo2", '
    >>> obs += '"value": 97, "unit": "%"}'
    >>> buf = io.StringIO()
    >>> s = score_stream([obs, "not json"], m, {"a": 4.0}, out=buf)
    >>> s.observations, s.alerts, s.bad, sorted(json.loads(buf.getvalue()))
    (1, 1, {'malformed_json': 1}, ['latency_ms', 'patient_id', 'score', 'threshold', 'time'])
    """
    if emit not in ("alerts", "all"):
        raise SchemaError("unknown emit mode", where="score_stream(emit=...)",
                          expected="'alerts' or 'all'", got=repr(emit), fix="choose one")
    state = StreamState(ages, windows=model.windows, carry_hours=model.carry_hours)
    thr = float(model.threshold)
    summary = StreamSummary()
    pending: list[tuple[str, str, float]] = []
    rows: list[list[float]] = []
    write = out.write if out is not None else None
    all_lines = emit == "all"

    def flush() -> None:
        if not rows:
            return
        # One thread: for a few hundred rows OpenMP start-up costs more than it saves, and on
        # a busy host its spinning threads multiply the latency (measured 8x on 2 shared cores).
        with threadpool_limits(1):
            scores = model.predict(np.asarray(rows, dtype=np.float64))
        done = clock()
        for (pid, when, t0), s in zip(pending, scores.tolist(), strict=True):
            p = state.patients[pid]
            lat = (done - t0) * 1000.0
            summary.latency_ms.append(lat)
            alert = s >= thr
            crossed = alert and not p.alerting
            p.alerting = alert
            if crossed:
                summary.alerts += 1
            if write is not None and (crossed or all_lines):
                rec = {"patient_id": pid, "time": when, "score": s, "threshold": thr,
                       "latency_ms": round(lat, 4)}
                if all_lines:
                    rec["alert"] = crossed
                write(json.dumps(rec) + "\n")
        if out is not None:
            out.flush()
        pending.clear()
        rows.clear()

    start = clock()
    for line in lines:
        if line is None:
            flush()
            continue
        t0 = clock()
        summary.lines += 1
        if not line.strip():
            summary.lines -= 1
            continue
        got = _parse(line, state)
        if isinstance(got, str):
            if strict:
                flush()
                raise FormatError("bad observation", where=f"input line {summary.lines}",
                                  expected="a JSON object with patient_id, time (ISO 8601 with "
                                           "offset), a known vital, a finite value, its UCUM "
                                           "unit, in time order per known patient",
                                  got=got.replace("_", " "),
                                  fix="repair the line, or drop --strict to skip and count it")
            summary.bad[got] = summary.bad.get(got, 0) + 1
            continue
        pid, when, t_us, vital, value = got
        rows.append(state.update(pid, t_us, vital, value))
        pending.append((pid, when, t0))
        summary.observations += 1
        if len(rows) >= batch_size:
            flush()
    flush()
    summary.seconds = clock() - start
    return summary


def read_lines(fh: IO[str] | IO[bytes], *, chunk: int = 1 << 16) -> Iterator[str | None]:
    """Yield lines of a pipe or file as they arrive, and None whenever the input pauses.

    Reads the file descriptor directly (no hidden buffering), so a pause is seen at once.
    Objects without a file descriptor (e.g. ``io.StringIO``) are read line by line.
    """
    try:
        fd = fh.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        for item in fh:
            yield (item.decode("utf-8", errors="replace") if isinstance(item, bytes)
                   else item).rstrip("\r\n")
        return
    buf = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0)
        if not ready:
            yield None
            select.select([fd], [], [])
        data = os.read(fd, chunk)
        if not data:
            break
        buf += data
        *done, buf = buf.split(b"\n")
        for raw in done:
            yield raw.decode("utf-8", errors="replace")
    if buf:
        yield buf.decode("utf-8", errors="replace")


def follow_lines(path: str | os.PathLike[str], *, poll_s: float = 0.1,
                 idle_exit_s: float | None = None) -> Iterator[str | None]:
    """Yield lines appended to a file (like ``tail -f`` from its start), None when idle.

    Stops after ``idle_exit_s`` seconds without new data (None: never).
    """
    with open(path, "rb") as fh:
        buf = b""
        idle_since = time.monotonic()
        while True:
            data = fh.read(1 << 16)
            if data:
                idle_since = time.monotonic()
                buf += data
                *done, buf = buf.split(b"\n")
                for raw in done:
                    yield raw.decode("utf-8", errors="replace")
                continue
            yield None
            if idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                break
            time.sleep(poll_s)
        if buf:
            yield buf.decode("utf-8", errors="replace")
