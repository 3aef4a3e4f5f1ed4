"""Run one hub task at the site: the same ``secured-bio`` CLI a scientist uses, in a subprocess.

Each job kind maps the task's ``params`` to command-line options through an allow-list
(:data:`JOB_PARAMS`): a param that is not listed is refused with the allowed names, values
are checked by type, and file paths (inputs, ``--out``) come only from the site's own
dataset manifest and the task's work folder, never from the hub.  The outputs meant for
release are returned as :class:`Release` objects; nothing else leaves the work folder.

Threat model: the hub is trusted to coordinate, not to see data.  A compromised hub can ask
for any allowed analysis of the datasets the site registered, but cannot make the agent read
other files, write outside its work folder, or run another program.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secured_bio.errors import ConfigError, SecuredBioError, did_you_mean
from secured_bio.hub.agent.discover import LocalDataset

__all__ = [
    "JOB_KINDS",
    "JOB_PARAMS",
    "ParamSpec",
    "Release",
    "SiteIdentity",
    "TaskCancelled",
    "TaskFailed",
    "check_params",
    "run_task",
]

#: Progress callback: ``progress(fraction, message) -> cancel requested``.
Progress = Callable[[float, str], bool]

#: Seconds between two progress reports while a command runs.
PROGRESS_EVERY_S = 2.0
#: Most characters of a failed command's stderr quoted in :class:`TaskFailed`.
MAX_ERROR_CHARS = 1000


class TaskFailed(SecuredBioError, RuntimeError):
    """A task's command failed; the message holds the end of its stderr (no data values)."""


class TaskCancelled(SecuredBioError, RuntimeError):
    """The hub cancelled the task; its command was stopped."""


@dataclass(frozen=True)
class SiteIdentity:
    """The site's long-term SMPC key pair (see :func:`secured_bio.privacy.smpc.create_identity`).

    Attributes
    ----------
    name
        Site name (the certificate's common name).
    key
        Private key (PEM, mode 0600); never leaves the site.
    cert
        Self-signed certificate (PEM); sent to the hub at registration for the rosters.
    """

    name: str
    key: Path
    cert: Path

    @property
    def cert_pem(self) -> str:
        """The certificate as PEM text."""
        return self.cert.read_text(encoding="ascii")

    @classmethod
    def load_or_create(cls, name: str, state_dir: str | os.PathLike[str]) -> SiteIdentity:
        """Return the key pair in ``state_dir/smpc``, creating it on first use.

        Raises
        ------
        ConfigError
            If the name is invalid, or only one of the two files exists.

        Examples
        --------
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> a = SiteIdentity.load_or_create("site1", d)
        >>> a == SiteIdentity.load_or_create("site1", d), a.cert_pem.startswith("-----BEGIN")
        (True, True)
        """
        from secured_bio.privacy.smpc import create_identity

        folder = Path(state_dir) / "smpc"
        key, cert = folder / f"{name}.key.pem", folder / f"{name}.cert.pem"
        if key.is_file() and cert.is_file():
            return cls(name, key, cert)
        if key.exists() or cert.exists():
            raise ConfigError("the site's key pair is incomplete", where=str(folder),
                              expected=f"{key.name} and {cert.name}",
                              fix="restore the missing file, or move both away to make a new "
                                  "pair (the hub then needs the new certificate)")
        ident = create_identity(name, folder)
        return cls(ident.name, ident.key, ident.cert)


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Release:
    """An output of a task that may leave the site (uploaded to the hub).

    Attributes
    ----------
    path
        The file in the task's work folder.
    name
        File name at the hub (letters, digits, ``_.-``; no path separators).
    kind
        What it is: ``gwas_summary_statistics``, ``anonymized_table``...
    passport
        The privacy passport of the run (JSON object), or None.

    Examples
    --------
    >>> Release(Path("/w/out.csv"), "out.csv", "anonymized_table").name
    'out.csv'
    >>> try:
    ...     Release(Path("/w/x"), "../x", "k")
    ... except ConfigError as e:
    ...     print(e.what)
    invalid release name
    """

    path: Path
    name: str
    kind: str
    passport: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not _SAFE_NAME.match(self.name) or ".." in self.name:
            raise ConfigError("invalid release name",
                              expected="letters, digits, '_', '.', '-' (not starting with '.' "
                                       "or '-')", got=repr(self.name))


# -- parameters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One allowed task parameter and the CLI option it becomes.

    Attributes
    ----------
    option
        The CLI option (``--qi``).
    type
        ``int``, ``float``, ``bool`` (a flag), ``str``, ``list`` (strings, comma-joined), or
        ``repeat`` (strings, the option repeated per item).
    required
        Whether the task must give it.
    choices
        Allowed values (``str``).
    minimum, maximum
        Inclusive bounds (``int``, ``float``).
    help
        What it means (shown by the hub).
    """

    option: str
    type: str
    required: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""


_P = ParamSpec
#: Allowed ``params`` per job kind -> CLI option.  Paths, ``--out`` and options that weaken
#: a privacy guarantee (``--keep-unique-columns``, ``--insecure-reproducible-dp``,
#: ``--allow-two-sites``, ``--unauthenticated-gloo``) are never accepted from the hub.
JOB_PARAMS: dict[str, dict[str, ParamSpec]] = {
    "gwas_secure": {
        "test": _P("--test", "str", True, ("linear", "logistic", "allelic", "trend"),
                   help="association test"),
        "pheno_name": _P("--pheno-name", "str", help="phenotype column (default: the first)"),
        "covar_name": _P("--covar-name", "list", help="covariate columns (default: all)"),
        "pcs": _P("--pcs", "int", minimum=0, maximum=20, help="principal components added"),
        "firth": _P("--firth", "bool", help="logistic: Firth regression for every variant"),
        "firth_fallback": _P("--firth-fallback", "bool",
                             help="logistic: Firth only where plain regression fails"),
        "intersect": _P("--intersect", "bool", help="analyse the variants common to all sites"),
        "chunk_size": _P("--chunk-size", "int", minimum=1, maximum=1_000_000,
                         help="variants per secure block"),
        "timeout": _P("--timeout", "float", minimum=1, maximum=3600,
                      help="seconds to wait for every site to connect"),
    },
    "anonymize": {
        "quasi_identifiers": _P("--qi", "list", True, help="quasi-identifier columns"),
        "k": _P("--k", "int", True, minimum=2, maximum=10_000, help="k-anonymity"),
        "sensitive": _P("--sensitive", "str", help="sensitive column (for l and t)"),
        "l": _P("--l", "int", minimum=2, maximum=1000, help="l-diversity"),
        "l_kind": _P("--l-kind", "str", choices=("distinct", "entropy", "recursive")),
        "c": _P("--c", "float", minimum=1e-9, maximum=1e6, help="c of recursive (c,l)"),
        "t": _P("--t", "float", minimum=0, maximum=1, help="t-closeness"),
        "max_suppression": _P("--max-suppression", "float", minimum=0, maximum=0.99),
        "method": _P("--method", "str", choices=("mondrian", "lattice")),
        "drop": _P("--drop", "list", help="direct identifiers removed (ID columns always are)"),
        "groups": _P("--groups", "list", help="grouping columns of the bias audit"),
        "target": _P("--target", "str", help="binary outcome of the bias audit"),
    },
    "synthesize": {
        "rows": _P("--n", "int", True, minimum=1, maximum=1_000_000,
                   help="synthetic rows"),
        "method": _P("--method", "str", choices=("auto", "copula", "cart", "tvae", "mst")),
        "epsilon": _P("--epsilon", "float", minimum=1e-6, maximum=1e3,
                      help="DP budget (method mst)"),
        "delta": _P("--delta", "float", minimum=0, maximum=1e-3, help="DP delta (mst)"),
        "seed": _P("--seed", "int", minimum=0, maximum=2**32 - 1),
        "target": _P("--target", "str", help="outcome column (utility figures)"),
        "order": _P("--order", "list", help="cart: columns visited first"),
        "min_leaf": _P("--min-leaf", "int", minimum=1, maximum=10_000),
        "smoothing": _P("--smoothing", "str", choices=("density", "none")),
        "epochs": _P("--epochs", "int", minimum=1, maximum=10_000),
        "condition": _P("--condition", "repeat", help="COLUMN=VALUE or COLUMN=LOW..HIGH"),
        "drop": _P("--drop", "repeat", help="columns left out (ID columns always are)"),
        "no_evaluate": _P("--no-evaluate", "bool", help="skip the evaluation"),
    },
    "education_cases": {
        # Not CLI options: written into the case spec (secured-bio education example-spec).
        "cases": _P("spec:cases", "cases", True, help="case groups: count, where, ..."),
        "title": _P("spec:title", "str"),
        "seed": _P("spec:seed", "int", minimum=0, maximum=2**32 - 1),
        "target": _P("spec:table.target", "str", help="class column of the utility figures"),
        "deterioration_column": _P("spec:table.deterioration_column", "str"),
        "method": _P("--method", "str", choices=("copula", "tvae", "mst")),
        "epsilon": _P("--epsilon", "float", minimum=1e-6, maximum=1e3),
        "vitals_epsilon": _P("--vitals-epsilon", "float", minimum=1e-6, maximum=1e3),
        "image_epochs": _P("--image-epochs", "int", minimum=1, maximum=1000),
    },
    "fl_train": {},
}

#: Job kinds this agent runs (``fl_train`` runs through the Flower SuperNode path).
JOB_KINDS = tuple(JOB_PARAMS)

#: Which dataset kind each job reads (the first dataset of that kind among the task's).
_DATASET_KIND = {"gwas_secure": "genotypes", "anonymize": "clinical", "synthesize": "clinical",
                 "education_cases": "clinical"}

_TEXT_RE = re.compile(r"^[^\x00-\x1f/\\]{1,200}$")
_CASE_KEYS = ("title", "count", "where", "deterioration", "image", "image_label")


def check_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check a task's params against the allow-list of its job kind.

    Parameters
    ----------
    kind
        The job kind (a key of :data:`JOB_PARAMS`).
    params
        The task's ``params``.

    Returns
    -------
    dict
        The params, normalised (lists as lists of strings, numbers as numbers).

    Raises
    ------
    ConfigError
        If the kind is unknown, a param is not allowed (the message names the allowed ones),
        a required one is missing, or a value has the wrong type or range.

    Examples
    --------
    >>> check_params("anonymize", {"quasi_identifiers": "age,sex", "k": 5})
    {'quasi_identifiers': ['age', 'sex'], 'k': 5}
    >>> try:
    ...     check_params("anonymize", {"quasi_identifiers": ["age"], "k": 5, "out": "/x"})
    ... except ConfigError as e:
    ...     print(e.what, "|", e.where)
    parameter not allowed for job kind 'anonymize' | params.out
    """
    if kind not in JOB_PARAMS:
        raise ConfigError("unknown job kind", where="task.kind", expected=" | ".join(JOB_KINDS),
                          got=repr(kind), fix=did_you_mean(str(kind), JOB_KINDS)
                          or "upgrade the site agent, or choose a listed kind")
    if not isinstance(params, Mapping):
        raise ConfigError("task params are not a JSON object", where="task.params",
                          got=type(params).__name__)
    allowed = JOB_PARAMS[kind]
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name not in allowed:
            raise ConfigError(
                f"parameter not allowed for job kind {kind!r}", where=f"params.{name}",
                expected="one of " + ", ".join(allowed) if allowed else "no parameters",
                got=repr(name),
                fix=did_you_mean(str(name), allowed)
                or "remove it (outputs and file paths are chosen by the site)")
        if value is None:
            continue
        out[name] = _check_value(name, allowed[name], value)
    missing = [n for n, s in allowed.items() if s.required and n not in out]
    if missing:
        raise ConfigError(f"missing parameter for job kind {kind!r}",
                          where=f"params.{missing[0]}", fix=f"give {', '.join(missing)}")
    return out


def _bad(name: str, spec: ParamSpec, value: Any, expected: str) -> ConfigError:
    got = type(value).__name__ if spec.type == "str" or not isinstance(
        value, (int, float, bool)) else repr(value)
    return ConfigError("invalid parameter value", where=f"params.{name}", expected=expected,
                       got=got)


def _check_text(name: str, spec: ParamSpec, value: Any) -> str:
    if not isinstance(value, str) or not _TEXT_RE.match(value) or value.startswith("-"):
        raise _bad(name, spec, value, "text of 1-200 characters without '/', '\\' or control "
                                      "characters, not starting with '-'")
    return value


def _check_value(name: str, spec: ParamSpec, value: Any) -> Any:
    t = spec.type
    if t == "bool":
        if not isinstance(value, bool):
            raise _bad(name, spec, value, "true or false")
        return value
    if t in ("int", "float"):
        ok = (isinstance(value, int) if t == "int" else isinstance(value, (int, float)))
        if isinstance(value, bool) or not ok or (t == "float" and not math.isfinite(value)):
            raise _bad(name, spec, value, "an integer" if t == "int" else "a number")
        if (spec.minimum is not None and value < spec.minimum) or (
                spec.maximum is not None and value > spec.maximum):
            raise _bad(name, spec, value, f"{spec.minimum:g}..{spec.maximum:g}")
        return value
    if t == "str":
        text = _check_text(name, spec, value)
        if spec.choices is not None and text not in spec.choices:
            raise ConfigError("invalid parameter value", where=f"params.{name}",
                              expected=" | ".join(spec.choices), got=repr(text),
                              fix=did_you_mean(text, spec.choices) or "choose a listed value")
        return text
    if t in ("list", "repeat"):
        items = value.split(",") if isinstance(value, str) and t == "list" else value
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not items or len(items) > 100:
            raise _bad(name, spec, value, "a list of 1-100 names")
        checked = [_check_text(name, spec, v.strip() if isinstance(v, str) else v)
                   for v in items]
        if t == "list" and any("," in v for v in checked):
            raise _bad(name, spec, value, "names without commas")
        return checked
    if t == "cases":
        return _check_cases(name, value)
    raise AssertionError(t)  # pragma: no cover


def _check_cases(name: str, value: Any) -> list[dict[str, Any]]:
    where = f"params.{name}"
    if not isinstance(value, list) or not 1 <= len(value) <= 50:
        raise ConfigError("invalid case groups", where=where, expected="a list of 1-50 groups",
                          got=type(value).__name__)
    for i, group in enumerate(value):
        if not isinstance(group, dict):
            raise ConfigError("invalid case group", where=f"{where}[{i}]",
                              expected="an object", got=type(group).__name__)
        for key in group:
            if key not in _CASE_KEYS:
                raise ConfigError("unknown key in a case group", where=f"{where}[{i}].{key}",
                                  expected=", ".join(_CASE_KEYS),
                                  fix=did_you_mean(str(key), _CASE_KEYS) or "remove it")
    # The spec's JSON schema checks the rest when the command runs.
    return json.loads(json.dumps(value))


def _options(kind: str, params: Mapping[str, Any]) -> list[str]:
    """Turn checked params into CLI arguments (``--opt=value``: never taken as an option)."""
    args: list[str] = []
    for name, value in params.items():
        spec = JOB_PARAMS[kind][name]
        if not spec.option.startswith("--"):
            continue
        if spec.type == "bool":
            if value:
                args.append(spec.option)
        elif spec.type == "list":
            args.append(f"{spec.option}={','.join(value)}")
        elif spec.type == "repeat":
            args.extend(f"{spec.option}={v}" for v in value)
        else:
            args.append(f"{spec.option}={value}")
    return args


# -- running a task ---------------------------------------------------------------------------


def run_task(task: Mapping[str, Any], datasets: Mapping[str, LocalDataset],
             workdir: str | os.PathLike[str], *, identity: SiteIdentity,
             progress: Progress) -> list[Release]:
    """Run one claimed task on this site's data and return what it releases.

    Parameters
    ----------
    task
        The claim JSON of ``POST /api/v1/agent/tasks/claim`` (``id``, ``job_id``, ``kind``,
        ``params``, ``datasets``, ``rank``, ``world_size``, ``coordination``).
    datasets
        This site's datasets by name (:func:`~secured_bio.hub.agent.discover.discover_datasets`).
    workdir
        An empty folder for this task (inputs are never written; outputs go to ``out/``).
    identity
        The site's SMPC key pair (secure jobs).
    progress
        Called every :data:`PROGRESS_EVERY_S` seconds with a fraction and a message; returns
        True when the hub asked to cancel.

    Returns
    -------
    list of Release
        The outputs to upload (empty for a secure job's ranks other than 0).

    Raises
    ------
    ConfigError
        If the kind or a parameter is not allowed, or the task names no suitable dataset
        of this site.
    TaskFailed
        If the command failed (the message holds the end of its stderr).
    TaskCancelled
        If the hub cancelled the task (the command was stopped).
    """
    kind = str(task.get("kind"))
    if kind == "fl_train":
        # a Flower SuperNode joins the hub's SuperLink; the model is aggregated at the hub
        from secured_bio.hub.agent.flower import run_fl_task

        imaging = _pick_dataset(task, datasets, "imaging")
        return run_fl_task(task, _imaging_folder(imaging), Path(workdir), progress=progress)
    params = check_params(kind, task.get("params") or {})
    work = Path(workdir)
    (work / "out").mkdir(parents=True, exist_ok=True)
    dataset = _pick_dataset(task, datasets, _DATASET_KIND[kind])
    run = _RUNNERS[kind]
    return run(task, params, dataset, datasets, work, identity, progress)


def _imaging_folder(ds: LocalDataset) -> Path:
    """Return the folder holding an imaging dataset's ``sub-*`` series (the pilot reads it)."""
    series = ds.files["series"][0]
    for parent in series.parents:
        if parent.name.startswith("sub-"):
            return parent.parent
    return series.parent


def _task_datasets(task: Mapping[str, Any],
                   datasets: Mapping[str, LocalDataset]) -> list[LocalDataset]:
    named = task.get("datasets") or []
    out: list[LocalDataset] = []
    for entry in named:
        name = str(entry.get("name") if isinstance(entry, Mapping) else entry)
        if name in datasets:
            out.append(datasets[name])
        else:
            raise ConfigError("the task names a dataset this site does not have",
                              where="task.datasets", got=repr(name),
                              expected="one of " + ", ".join(datasets),
                              fix=did_you_mean(str(name), datasets)
                              or "re-register the site's datasets")
    return out


def _pick_dataset(task: Mapping[str, Any], datasets: Mapping[str, LocalDataset],
                  kind: str) -> LocalDataset:
    for ds in _task_datasets(task, datasets):
        if ds.kind == kind:
            return ds
    raise ConfigError(f"job kind {task.get('kind')!r} needs a {kind} dataset of this site",
                      where="task.datasets",
                      got=", ".join(f"{d.name} ({d.kind})" for d in
                                    _task_datasets(task, datasets)) or "none")


def _passport_enabled() -> bool:
    """Whether the privacy passport library is installed (then commands get --passport)."""
    try:
        return importlib.util.find_spec("secured_bio.passport") is not None
    except (ImportError, ValueError):
        return False


def _run_cli(args: Sequence[str], work: Path, progress: Progress, *, label: str,
             expected_s: float = 60.0) -> dict[str, Any] | None:
    """Run ``python -m secured_bio ARGS [--passport FILE]`` in ``work``; return the passport.

    Raises TaskFailed / TaskCancelled.  A CLI without ``--passport`` (an older command) is
    rerun without it.
    """
    passport = work / f"{label}.passport.json"
    if _passport_enabled():
        rc, err = _run_process([*args, f"--passport={passport}"], work, progress, label,
                               expected_s)
        if rc == 2 and "--passport" in err and "No such option" in err:
            rc, err = _run_process(list(args), work, progress, label, expected_s)
    else:
        rc, err = _run_process(list(args), work, progress, label, expected_s)
    if rc != 0:
        raise TaskFailed(f"{label} failed (exit status {rc}): {_tail(err)}")
    if passport.is_file():
        loaded = json.loads(passport.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            values = [a.rsplit("=", 1)[-1] for a in args if "=" in a]
            roots = {str(work)} | {str(Path(v).parent) for v in values if os.sep in v}
            scrubbed: dict[str, Any] = _scrub_paths(loaded, roots)
            return scrubbed
    return None


def _scrub_paths(obj: Any, roots: set[str]) -> Any:
    """Replace the site's file paths in a passport by file names (paths stay at the site)."""
    if isinstance(obj, dict):
        return {k: _scrub_paths(v, roots) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub_paths(v, roots) for v in obj]
    if isinstance(obj, str):
        for root in sorted(roots, key=len, reverse=True):
            if len(root) > 1 and root in obj:
                obj = re.sub(re.escape(root) + r"(?:" + re.escape(os.sep) + r"[^\s,;=\"']*)?",
                             lambda m: Path(m.group(0)).name, obj)
    return obj


def _tail(text: str) -> str:
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    out = "\n".join(lines[-12:])
    return out[-MAX_ERROR_CHARS:] if out else "(no error output)"


def _run_process(args: list[str], work: Path, progress: Progress, label: str,
                 expected_s: float) -> tuple[int, str]:
    env = dict(os.environ)
    env["SECURED_BIO_PROGRESS"] = "0"
    env.pop("SECURED_BIO_DEBUG", None)
    cmd = [sys.executable, "-m", "secured_bio", *args]
    stdout_path, stderr_path = work / f"{label}.stdout.log", work / f"{label}.stderr.log"
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True)
        start = time.monotonic()
        next_report = start
        try:
            while True:
                try:
                    rc = proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if now >= next_report:
                    next_report = now + PROGRESS_EVERY_S
                    elapsed = now - start
                    # No progress figures from the command: an estimate that never reaches 1.
                    frac = 0.05 + 0.9 * (1.0 - math.exp(-elapsed / expected_s))
                    if progress(round(frac, 3), f"{label}: running ({elapsed:.0f} s)"):
                        _stop(proc)
                        raise TaskCancelled(f"{label} was cancelled by the hub",
                                            where=f"after {elapsed:.0f} s")
        except BaseException:
            if proc.poll() is None:
                _stop(proc)
            raise
    return rc, stderr_path.read_text(encoding="utf-8", errors="replace")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a command and everything it started (its own process group)."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _identifier_columns(ds: LocalDataset) -> list[str]:
    return [c["name"] for c in ds.metadata.get("columns", []) if c.get("type") == "identifier"]


def _release(path: Path, kind: str, passport: dict[str, Any] | None) -> Release:
    if not path.is_file():
        raise TaskFailed("an expected output is missing", where=path.name,
                         fix="see the command's log in the task's work folder")
    return Release(path, path.name, kind, passport)


# -- the job kinds ----------------------------------------------------------------------------


def _gwas_secure(task: Mapping[str, Any], params: dict[str, Any], ds: LocalDataset,
                 datasets: Mapping[str, LocalDataset], work: Path, identity: SiteIdentity,
                 progress: Progress) -> list[Release]:
    from secured_bio.privacy.smpc import read_roster

    coord = task.get("coordination") or {}
    relay, roster_text = coord.get("relay"), coord.get("roster")
    if not isinstance(relay, str) or not isinstance(roster_text, str):
        raise ConfigError("a gwas_secure task needs its coordination", where="task.coordination",
                          expected='{"relay": "HOST:PORT", "roster": <roster JSON text>}',
                          got=", ".join(sorted(coord)) if isinstance(coord, dict) else "none")
    roster = work / "roster.json"
    roster.write_text(roster_text, encoding="utf-8")
    rank = read_roster(roster).rank_of_file(identity.cert)
    if rank is None:
        raise TaskFailed("this site's certificate is not on the run's roster",
                         where=f"site {identity.name}",
                         fix="re-register the agent so the hub has its current certificate")
    if task.get("rank") is not None and int(task["rank"]) != rank:
        raise TaskFailed("the task's rank differs from this site's place on the roster",
                         expected=str(rank), got=str(task.get("rank")))
    if not ds.has("pheno"):
        raise ConfigError(f"dataset {ds.name!r} has no phenotype file",
                          where=f"datasets.yaml: {ds.name}.files.pheno",
                          fix="add 'pheno: FILE' (plink2 phenotype table) to the manifest")
    args = ["gwas", "party", f"--site={identity.name}={ds.file('genotypes')}",
            f"--relay={relay}", f"--roster={roster}", f"--key={identity.key}",
            f"--cert={identity.cert}", f"--pheno={ds.file('pheno')}"]
    if ds.has("covar") and params["test"] in ("linear", "logistic"):
        args.append(f"--covar={ds.file('covar')}")
    args += _options("gwas_secure", params)
    prefix = work / "out" / "gwas"
    if rank == 0:
        args.append(f"--out={prefix}")
    passport = _run_cli(args, work, progress, label="gwas_party")
    if rank != 0:
        return []
    test = params["test"]
    kinds = [(f"gwas.{test}.tsv", "gwas_summary_statistics"),
             (f"gwas.{test}.ssf.tsv", "gwas_ssf"),
             (f"gwas.{test}.ssf.tsv-meta.yaml", "gwas_ssf_metadata"),
             (f"gwas.{test}.summary.json", "gwas_summary")]
    releases = [_release(prefix.parent / name, kind, passport) for name, kind in kinds]
    releases += [_release(p, "plot", passport) for p in sorted(prefix.parent.glob("gwas.*.png"))]
    return releases


def _anonymize(task: Mapping[str, Any], params: dict[str, Any], ds: LocalDataset,
               datasets: Mapping[str, LocalDataset], work: Path, identity: SiteIdentity,
               progress: Progress) -> list[Release]:
    used = set(params["quasi_identifiers"]) | {params.get("sensitive"), params.get("target")}
    drop = list(params.get("drop", []))
    drop += [c for c in _identifier_columns(ds) if c not in drop and c not in used]
    params = {**params, **({"drop": drop} if drop else {})}
    out, report = work / "out" / "anonymized.csv", work / "out" / "anonymization_report.json"
    args = ["anonymize", "table", f"--in={ds.file('table')}", *_options("anonymize", params),
            f"--out={out}", f"--report={report}"]
    passport = _run_cli(args, work, progress, label="anonymize")
    return [_release(out, "anonymized_table", passport),
            _release(report, "anonymization_report", passport)]


def _synthesize(task: Mapping[str, Any], params: dict[str, Any], ds: LocalDataset,
                datasets: Mapping[str, LocalDataset], work: Path, identity: SiteIdentity,
                progress: Progress) -> list[Release]:
    drop = list(params.get("drop", []))
    drop += [c for c in _identifier_columns(ds) if c not in drop]
    params = {**params, **({"drop": drop} if drop else {})}
    out, report = work / "out" / "synthetic.csv", work / "out" / "synthesis_report.json"
    args = ["synth", "table", f"--in={ds.file('table')}", *_options("synthesize", params),
            f"--out={out}", f"--report={report}"]
    passport = _run_cli(args, work, progress, label="synthesize", expected_s=120.0)
    return [_release(out, "synthetic_table", passport),
            _release(report, "synthesis_report", passport)]


def _education_cases(task: Mapping[str, Any], params: dict[str, Any], ds: LocalDataset,
                     datasets: Mapping[str, LocalDataset], work: Path,
                     identity: SiteIdentity, progress: Progress) -> list[Release]:
    import yaml

    task_sets = _task_datasets(task, datasets)
    vitals = next((d for d in task_sets if d.kind == "vitals"), None)
    imaging = next((d for d in task_sets if d.kind == "imaging"), None)
    vitals_dir = None
    if vitals is not None and vitals.has("patients") and vitals.has("events"):
        folder = vitals.file("vitals").parent
        if (vitals.file("vitals").name == "vitals.csv"
                and vitals.file("patients") == folder / "patients.csv"
                and vitals.file("events") == folder / "events.csv"):
            vitals_dir = str(folder)
    images_dir = str(imaging.file("participants").parent) if (
        imaging is not None and imaging.has("participants")) else None
    spec: dict[str, Any] = {
        "title": params.get("title", "Synthetic teaching cases"),
        "seed": params.get("seed", 0),
        "sources": {"table": str(ds.file("table")), "vitals": vitals_dir,
                    "images": images_dir},
        "table": {"drop": _identifier_columns(ds)},
        "cases": params["cases"],
    }
    for key in ("target", "deterioration_column"):
        if key in params:
            spec["table"][key] = params[key]
    spec_path = work / "cases.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    out = work / "out" / "teaching_cases"
    args = ["education", "cases", f"--spec={spec_path}", f"--out={out}", "--no-progress",
            *_options("education_cases", params)]
    passport = _run_cli(args, work, progress, label="education_cases", expected_s=300.0)
    archive = work / "out" / "teaching_cases.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(out.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(out).as_posix())
    releases = [_release(archive, "teaching_cases", passport)]
    if (out / "cases.json").is_file():
        releases.append(_release(out / "cases.json", "teaching_cases_summary", passport))
    return releases


_Runner = Callable[[Mapping[str, Any], dict[str, Any], LocalDataset,
                    Mapping[str, LocalDataset], Path, SiteIdentity, Progress], list[Release]]
_RUNNERS: dict[str, _Runner] = {
    "gwas_secure": _gwas_secure,
    "anonymize": _anonymize,
    "synthesize": _synthesize,
    "education_cases": _education_cases,
}
