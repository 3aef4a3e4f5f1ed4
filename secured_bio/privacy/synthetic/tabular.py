"""Synthetic tables: Gaussian copula, sequential CART, a TVAE on torch, DP MST, and ``auto``.

Methods (:data:`METHODS`):

``auto``
    Chooses among :data:`AUTO_CANDIDATES` on the data (the CLI's default): each candidate is
    fitted on a training split (70 % of the rows), scored on the validation split (fidelity,
    TSTR/TRTR utility on ``target``, and a privacy guard: membership-inference AUC <= 0.6 and
    exact copies <= 1 %; see :func:`~secured_bio.privacy.synthetic.evaluate.validation_scores`),
    and the best guarded candidate is refitted on all rows.  The comparison is kept in
    ``params["auto"]`` (the report's ``auto`` section).  TVAE is not a candidate by default
    (minutes of training on a CPU for no gain over CART on the benchmark tables).
``copula``
    Gaussian copula on mixed columns (Li et al. 2014; the SDV GaussianCopula design):
    each variable is mapped to a normal score through its empirical CDF (ties and categories
    spread uniformly over their CDF interval), the scores' correlation matrix is estimated,
    and samples are mapped back through the inverse empirical CDF (linear interpolation
    between observed values). Not differentially private.
``cart``
    Sequential CART synthesis in the style of R's synthpop (Nowok, Raab & Dibben 2016;
    :mod:`~secured_bio.privacy.synthetic.cart`): each variable drawn from the leaf of a tree
    fitted on the variables before it, numeric draws smoothed with a Gaussian kernel.
    Options: visiting ``order`` (default: the schema's, with ``target`` last), ``min_leaf``
    (default 5), ``smoothing`` (``density`` or ``none``). Not differentially private.
``tvae``
    A variational autoencoder for tables (Xu et al. 2019, "Modeling Tabular data using
    Conditional GAN", TVAE) on torch: normal-score inputs for continuous variables (a
    quantile transform instead of TVAE's mode-specific mixture), one-hot categories, learned
    per-column output scales. Not differentially private.
``mst``
    The MST mechanism (McKenna, Miklau & Sheldon 2021, "Winning the NIST Contest: A scalable
    and general approach to differentially private synthetic data"): columns are discretised,
    all 1-way marginals are measured with Gaussian noise, a maximum spanning tree of pairs is
    chosen with the exponential mechanism (scores: L1 error of the independence estimate), its
    2-way marginals are measured with Gaussian noise and rows are sampled along the tree.
    The zCDP budget ``rho`` is split in thirds (1-way / selection / 2-way, as in MST); the
    exponential mechanism with parameter ``e`` is ``e**2/8``-zCDP (Cesar & Rogers 2021) and
    the Gaussian mechanism with L2 sensitivity 1 and scale ``sigma`` is ``1/(2 sigma**2)``-zCDP.
    ``rho`` is chosen so that ``epsilon = rho + 2 sqrt(rho log(1/delta))`` (Bun & Steinke 2016,
    Prop. 1.3), so the whole release is (epsilon, delta)-DP under add/remove-one-row
    neighbours. The noise is secure (:mod:`secured_bio.privacy.dp_random`: OS CSPRNG, never
    the seed): OpenDP's discrete Gaussian on the integer marginal counts (Canonne, Kamath &
    Steinke 2020; same ``rho`` as the continuous one) and OpenDP's Gumbel noisy-max for the
    exponential mechanism, so two runs with the same input and seed differ. ``seed`` only
    drives the non-private parts (sampling rows from the noisy model: post-processing).
    Unlike private-pgm, marginals are not made consistent by graphical-model
    inference: conditionals are read from the clipped noisy 2-way marginals.

**Domain disclosure (MST).** The set of categories and the numeric/date bounds are part of
the output and are *not* covered by epsilon when taken from the data (``domain="observed"``
in the privacy report): a rare category present in the input would be revealed. Pass
``public_domain={column: [categories] | (low, high)}`` with values known without looking at
the data (code lists, plausible ranges) to cover them; the report then says ``"public"``.

All methods honour conditions exactly (see :mod:`~secured_bio.privacy.synthetic.conditions`):
the copula samples the normal scores from the Gaussian restricted to the conditioned box, MST
samples the tree exactly by belief propagation with evidence, and TVAE uses rejection
sampling with a fallback (decoding latent codes of training rows that satisfy the conditions,
then setting the conditioned columns) counted in the report.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio.errors import ConfigError, SchemaError
from secured_bio.privacy.dp_random import DPRandom
from secured_bio.privacy.synthetic.conditions import (
    Condition,
    check_conditions,
    rejection_sample,
    resolve_conditions,
    sample_truncated_normal,
    satisfies,
)
from secured_bio.privacy.synthetic.schema import TableSchema, Variable, infer_schema

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "METHODS",
    "AUTO_CANDIDATES",
    "TableSynthesizer",
    "SynthesisResult",
    "fit_synthesizer",
    "synthesize_table",
    "zcdp_rho",
    "zcdp_epsilon",
]

log = logging.getLogger(__name__)

METHODS = ("auto", "copula", "cart", "tvae", "mst")
#: Generators that ``auto`` compares.
AUTO_CANDIDATES = ("copula", "cart")
#: Privacy guard of ``auto``: largest membership-inference AUC and exact-copy share.
AUTO_MAX_MEMBERSHIP_AUC = 0.6
AUTO_MAX_COPY_SHARE = 0.01
#: Share of rows ``auto`` fits candidates on (the rest scores them); fewer rows than
#: AUTO_MIN_ROWS skip the comparison (the copula is used).
AUTO_TRAIN_SHARE = 0.7
AUTO_MIN_ROWS = 50
DEFAULT_EPOCHS = 300
DEFAULT_DELTA = 1e-6
MST_BINS = 16
_U_EPS = 1e-6


def zcdp_rho(epsilon: float, delta: float) -> float:
    """Return the zCDP ``rho`` whose (epsilon, delta)-DP guarantee is exactly ``epsilon``.

    Solves ``epsilon = rho + 2 sqrt(rho log(1/delta))`` (Bun & Steinke 2016, Prop. 1.3).

    Examples
    --------
    >>> round(zcdp_epsilon(zcdp_rho(1.0, 1e-6), 1e-6), 12)
    1.0
    """
    a = math.sqrt(math.log(1.0 / delta))
    return (math.sqrt(a * a + epsilon) - a) ** 2


def zcdp_epsilon(rho: float, delta: float) -> float:
    """Return the epsilon of a ``rho``-zCDP mechanism at ``delta`` (Bun & Steinke 2016).

    Examples
    --------
    >>> zcdp_epsilon(0.0, 1e-6)
    0.0
    """
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


# ----------------------------------------------------------------- empirical CDF (copula/TVAE)
@dataclass
class _Margin:
    """Empirical CDF of one variable: category/tie intervals and interpolation knots."""

    discrete: bool
    lower: np.ndarray  # CDF at the start of each level / unique value
    upper: np.ndarray
    values: np.ndarray  # unique values (continuous)

    @classmethod
    def fit(cls, x: np.ndarray, var: Variable) -> _Margin:
        if var.discrete:
            counts = np.bincount(x.astype(int), minlength=var.n_levels).astype(float)
            values = np.arange(var.n_levels, dtype=float)
        else:
            values, inv = np.unique(x, return_inverse=True)
            counts = np.bincount(inv).astype(float)
        upper = np.cumsum(counts) / counts.sum()
        lower = np.concatenate([[0.0], upper[:-1]])
        return cls(var.discrete, lower, upper, values)

    def index(self, x: np.ndarray) -> np.ndarray:
        if self.discrete:
            return x.astype(int)
        return np.searchsorted(self.values, x)

    def to_u(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Spread each value uniformly over its CDF interval (a continuous distribution)."""
        i = self.index(x)
        u = self.lower[i] + rng.random(x.shape[0]) * (self.upper[i] - self.lower[i])
        return np.clip(u, _U_EPS, 1 - _U_EPS)

    @property
    def mids(self) -> np.ndarray:
        return (self.lower + self.upper) / 2

    def from_u(self, u: np.ndarray) -> np.ndarray:
        if self.discrete:
            return np.clip(np.searchsorted(self.upper, u), 0, len(self.upper) - 1).astype(float)
        return np.interp(u, self.mids, self.values)

    def u_bounds(self, cond: Condition) -> tuple[float, float]:
        """CDF interval whose inverse image satisfies ``cond`` (0/1 mean unbounded)."""
        if self.discrete:
            codes = np.array(cond.codes)
            return float(self.lower[codes.min()]), float(self.upper[codes.max()])
        mids, vals = self.mids, self.values
        lo = 0.0 if cond.low <= vals[0] else float(np.interp(cond.low, vals, mids))
        hi = 1.0 if cond.high >= vals[-1] else float(np.interp(cond.high, vals, mids))
        return lo, hi


def _variable_conditions(schema: TableSchema, conditions: Sequence[Condition]
                         ) -> dict[int, Condition]:
    """Map conditions to model-variable indices.

    A conditioned continuous column with missing values also gets ``#missing = 0``.
    """
    out: dict[int, Condition] = {}
    by_col = {c.column: c for c in conditions}
    for j, var in enumerate(schema.variables):
        cond = by_col.get(var.column)
        if cond is None:
            continue
        if var.name.endswith("#missing") and var.name != var.column:
            out[j] = Condition(var.column, cond.expression, codes=(0,))
        else:
            out[j] = cond
    return out


def _enforce(matrix: np.ndarray, schema: TableSchema, conditions: Sequence[Condition]
             ) -> np.ndarray:
    """Safety net against boundary rounding: clip to the conditions in model units."""
    for j, cond in _variable_conditions(schema, conditions).items():
        if cond.codes:
            allowed = np.array(sorted(cond.codes), dtype=float)
            col = np.rint(matrix[:, j])
            nearest = allowed[np.abs(col[:, None] - allowed[None, :]).argmin(axis=1)]
            matrix[:, j] = np.where(np.isin(col, allowed), col, nearest)
        else:
            matrix[:, j] = np.clip(matrix[:, j], cond.low, cond.high)
    return matrix


# ---------------------------------------------------------------------------- the models
class _CopulaModel:
    def __init__(self, x: np.ndarray, variables: list[Variable], rng: np.random.Generator
                 ) -> None:
        from scipy.special import ndtri

        self.margins = [_Margin.fit(x[:, j], v) for j, v in enumerate(variables)]
        z = np.column_stack([ndtri(m.to_u(x[:, j], rng)) for j, m in enumerate(self.margins)])
        d = z.shape[1]
        if z.shape[0] > 1 and d > 1:
            corr = np.corrcoef(z, rowvar=False)
            corr = np.nan_to_num(corr, nan=0.0)
        else:
            corr = np.eye(d)
        np.fill_diagonal(corr, 1.0)
        # shrink slightly towards independence: keeps the matrix positive definite
        self.corr = 0.99 * corr + 0.01 * np.eye(d)

    def sample(self, n: int, conds: dict[int, Condition], rng: np.random.Generator
               ) -> tuple[np.ndarray, dict[str, int]]:
        from scipy.special import ndtr, ndtri

        d = len(self.margins)
        lower, upper = np.full(d, -np.inf), np.full(d, np.inf)
        for j, cond in conds.items():
            lo, hi = self.margins[j].u_bounds(cond)
            lower[j] = -np.inf if lo <= 0 else ndtri(np.clip(lo, _U_EPS, 1 - _U_EPS))
            upper[j] = np.inf if hi >= 1 else ndtri(np.clip(hi, _U_EPS, 1 - _U_EPS))
        z = sample_truncated_normal(self.corr, lower, upper, n, rng)
        u = ndtr(z)
        out = np.column_stack([m.from_u(u[:, j]) for j, m in enumerate(self.margins)])
        return out, {}


class _TVAEModel:
    """TVAE (Xu et al. 2019) with normal-score continuous inputs."""

    def __init__(self, x: np.ndarray, variables: list[Variable], rng: np.random.Generator,
                 *, epochs: int, seed: int) -> None:
        import torch

        self.variables = variables
        self.margins = [_Margin.fit(x[:, j], v) for j, v in enumerate(variables)]
        self.seed = seed
        self.x_train = x
        data = self._to_net(x, rng)
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # parameter initialisation
        dim_in = data.shape[1]
        self.n_cont = sum(not v.discrete for v in variables)
        self.latent = 32
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(dim_in, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
            torch.nn.ReLU(), torch.nn.Linear(128, 2 * self.latent))
        self.decoder = torch.nn.Sequential(
            torch.nn.Linear(self.latent, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
            torch.nn.ReLU(), torch.nn.Linear(128, dim_in))
        self.log_sigma = torch.nn.Parameter(torch.full((self.n_cont,), math.log(0.1)))
        params = [*self.encoder.parameters(), *self.decoder.parameters(), self.log_sigma]
        opt = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-5)
        t = torch.as_tensor(data, dtype=torch.float32)
        batch = min(500, t.shape[0])
        threads = torch.get_num_threads()
        # Small MLPs: one intra-op thread is as fast, and up to 8x faster on a busy machine.
        torch.set_num_threads(1)
        try:
            self._train(t, opt, gen, batch, epochs)
        finally:
            torch.set_num_threads(threads)

    def _train(self, t: Any, opt: Any, gen: Any, batch: int, epochs: int) -> None:
        import torch

        for _ in range(epochs):
            perm = torch.randperm(t.shape[0], generator=gen)
            for start in range(0, t.shape[0], batch):
                xb = t[perm[start:start + batch]]
                mu, logvar = self.encoder(xb).chunk(2, dim=1)
                zb = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
                loss = self._recon_loss(self.decoder(zb), xb)
                kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
                loss = (loss + kl) / xb.shape[0]
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    self.log_sigma.clamp_(math.log(0.01), 0.0)

    def _to_net(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Network layout: normal scores of continuous variables (/3), then one-hots."""
        from scipy.special import ndtri

        cont = [ndtri(m.to_u(x[:, j], rng))[:, None] / 3.0
                for j, (v, m) in enumerate(zip(self.variables, self.margins, strict=True))
                if not v.discrete]
        disc = [np.eye(v.n_levels)[x[:, j].astype(int)]
                for j, v in enumerate(self.variables) if v.discrete]
        return np.concatenate([*cont, *disc, np.zeros((x.shape[0], 0))], axis=1)

    def _recon_loss(self, out: Any, xb: Any) -> Any:
        import torch

        k = self.n_cont
        sigma = torch.exp(self.log_sigma)
        loss = ((xb[:, :k] - torch.tanh(out[:, :k])) ** 2 / 2 / sigma ** 2).sum() + (
            torch.log(sigma).sum() * xb.shape[0])
        pos = k
        for v in self.variables:
            if v.discrete:
                target = xb[:, pos:pos + v.n_levels].argmax(dim=1)
                loss = loss + torch.nn.functional.cross_entropy(
                    out[:, pos:pos + v.n_levels], target, reduction="sum")
                pos += v.n_levels
        return loss

    def _decode(self, z: Any, rng: np.random.Generator) -> np.ndarray:
        import torch
        from scipy.special import ndtr

        with torch.no_grad():
            out = self.decoder(z).numpy().astype(float)
            sig = torch.exp(self.log_sigma).numpy().astype(float)
        cols: list[np.ndarray] = []
        pos, c = self.n_cont, 0
        for v, m in zip(self.variables, self.margins, strict=True):
            if v.discrete:
                logits = out[:, pos:pos + v.n_levels]
                p = np.exp(logits - logits.max(axis=1, keepdims=True))
                cols.append(_draw_rows(p, rng).astype(float))
                pos += v.n_levels
            else:
                val = np.tanh(out[:, c]) + sig[c] * rng.standard_normal(out.shape[0])
                cols.append(m.from_u(ndtr(np.clip(val, -1, 1) * 3.0)))
                c += 1
        return np.column_stack(cols)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        import torch

        z = torch.as_tensor(rng.standard_normal((n, self.latent)), dtype=torch.float32)
        return self._decode(z, rng)

    def sample(self, n: int, conds: dict[int, Condition], rng: np.random.Generator
               ) -> tuple[np.ndarray, dict[str, int]]:
        if not conds:
            return self._draw(n, rng), {}
        return rejection_sample(lambda m: self._draw(m, rng),
                                lambda m: self._fallback(m, conds, rng), n, conds, rounds=20)

    def _fallback(self, n: int, conds: dict[int, Condition], rng: np.random.Generator
                  ) -> np.ndarray:
        """Decode latent codes of training rows that satisfy the conditions."""
        import torch

        match = np.flatnonzero(satisfies(self.x_train, conds))
        if match.size == 0:
            return self._draw(n, rng)
        pick = rng.choice(match, size=n)
        data = torch.as_tensor(self._to_net(self.x_train[pick], rng), dtype=torch.float32)
        with torch.no_grad():
            mu, logvar = self.encoder(data).chunk(2, dim=1)
            noise = torch.as_tensor(rng.standard_normal(mu.shape), dtype=torch.float32)
            z = mu + noise * torch.exp(0.5 * logvar)
        return self._decode(z, rng)


class _MSTModel:
    """MST (McKenna et al. 2021) with a tree sampler; see the module docstring."""

    def __init__(self, x: np.ndarray, schema: TableSchema, noise: DPRandom, *,
                 epsilon: float, delta: float) -> None:
        # Every random draw below is a DP mechanism: it uses ``noise`` (OS CSPRNG), never
        # the run's seed (see secured_bio.privacy.dp_random).
        self.variables = schema.variables
        self.specs = {c.name: c for c in schema.columns}
        self.edges_bins: list[np.ndarray | None] = []
        codes = []
        for j, v in enumerate(self.variables):
            if v.discrete:
                self.edges_bins.append(None)
                codes.append(x[:, j].astype(int))
                continue
            spec = self.specs[v.column]
            lo, hi = spec.low, spec.high
            if spec.kind in ("integer", "date"):
                lo, hi = lo - 0.5, hi + 0.5
                n_bins = int(min(MST_BINS, hi - lo))
            else:
                n_bins = MST_BINS if hi > lo else 1
            edges = np.linspace(lo, hi if hi > lo else lo + 1.0, n_bins + 1)
            self.edges_bins.append(edges)
            codes.append(np.clip(np.searchsorted(edges, x[:, j], side="right") - 1, 0,
                                 n_bins - 1))
        self.sizes = [int(v.n_levels) if e is None else len(e) - 1
                      for v, e in zip(self.variables, self.edges_bins, strict=True)]
        d = len(self.variables)
        rho = zcdp_rho(epsilon, delta)
        shares = (1.0, 0.0, 0.0) if d == 1 else (1 / 3, 1 / 3, 1 / 3)
        rho1, rho_sel, rho2 = (rho * s for s in shares)
        sigma1 = math.sqrt(d / (2 * rho1))
        self.one = [noise.discrete_gaussian(np.bincount(c, minlength=k), sigma1)
                    for c, k in zip(codes, self.sizes, strict=True)]
        total = max(float(np.mean([m.sum() for m in self.one])), 1.0)
        probs1 = [self._normalise(m) for m in self.one]
        self.tree: list[tuple[int, int]] = []
        self.two: dict[tuple[int, int], np.ndarray] = {}
        sigma2 = eps_round = 0.0
        if d > 1:
            eps_round = math.sqrt(8 * rho_sel / (d - 1))
            sigma2 = math.sqrt((d - 1) / (2 * rho2))
            scores = {}
            for i in range(d):
                for j in range(i + 1, d):
                    true = self._joint(codes[i], codes[j], i, j)
                    scores[(i, j)] = np.abs(true - total * np.outer(probs1[i], probs1[j])).sum()
            comp = list(range(d))

            def find(a: int) -> int:
                while comp[a] != a:
                    comp[a] = comp[comp[a]]
                    a = comp[a]
                return a

            for _ in range(d - 1):  # Kruskal with the exponential mechanism (sensitivity 1)
                cands = [e for e in scores if find(e[0]) != find(e[1])]
                s = np.array([scores[e] for e in cands])
                i, j = cands[noise.exponential_mechanism(s, eps_round, sensitivity=1.0)]
                comp[find(i)] = find(j)
                self.tree.append((i, j))
                self.two[(i, j)] = noise.discrete_gaussian(
                    self._joint(codes[i], codes[j], i, j), sigma2)
        self.privacy = {
            "epsilon": epsilon, "delta": delta, "rho": rho,
            "accounting": "zCDP (Bun & Steinke 2016), epsilon = rho + 2 sqrt(rho log(1/delta))",
            "budget_split": {"one_way_marginals": rho1, "tree_selection": rho_sel,
                             "two_way_marginals": rho2},
            "noise": {"one_way_sigma": sigma1, "two_way_sigma": sigma2,
                      "selection_epsilon_per_edge": eps_round},
            "neighbouring": "add/remove one row",
            "mechanisms": {"marginals": "discrete Gaussian (OpenDP make_gaussian, integer "
                                        "counts; Canonne, Kamath & Steinke 2020)",
                           "tree_selection": "exponential mechanism as Gumbel noisy-max "
                                             "(OpenDP make_noisy_max, zCDP)"},
            "randomness": noise.describe(),
            "epsilon_holds": noise.secure,
            "seed_covers": "only the non-private parts (sampling rows from the noisy model, "
                           "post-processing); the DP noise is never seeded",
            "reference": "McKenna, Miklau & Sheldon 2021 (MST), arXiv:2108.04978",
        }
        self._build_sampler()

    def _joint(self, a: np.ndarray, b: np.ndarray, i: int, j: int) -> np.ndarray:
        ki, kj = self.sizes[i], self.sizes[j]
        return np.bincount(a * kj + b, minlength=ki * kj).reshape(ki, kj)

    @staticmethod
    def _normalise(m: np.ndarray) -> np.ndarray:
        p = np.clip(m, 0, None) + 1e-9
        return p / p.sum()

    def _build_sampler(self) -> None:
        d = len(self.variables)
        adj: dict[int, list[int]] = {i: [] for i in range(d)}
        for i, j in self.tree:
            adj[i].append(j)
            adj[j].append(i)
        self.order, self.parent = [0], {0: -1}
        for node in self.order:
            for nb in adj[node]:
                if nb not in self.parent:
                    self.parent[nb] = node
                    self.order.append(nb)
        self.cond: dict[int, np.ndarray] = {}  # P(child | parent), rows = parent states
        for child in self.order[1:]:
            par = self.parent[child]
            joint = self.two[(par, child)] if (par, child) in self.two else self.two[
                (child, par)].T
            p = np.clip(joint, 0, None) + 1e-6 * self._normalise(self.one[child])[None, :]
            self.cond[child] = p / p.sum(axis=1, keepdims=True)
        self.root = self._normalise(self.one[0])

    def _allowed(self, j: int, cond: Condition | None) -> np.ndarray:
        k = self.sizes[j]
        if cond is None:
            return np.ones(k)
        edges = self.edges_bins[j]
        if edges is None:
            mask = np.zeros(k)
            mask[list(cond.codes)] = 1.0
            return mask
        lo, hi = self._value_range(j, cond)
        return ((edges[1:] > lo) & (edges[:-1] <= hi)).astype(float)

    def _value_range(self, j: int, cond: Condition) -> tuple[float, float]:
        spec = self.specs[self.variables[j].column]
        if spec.kind in ("integer", "date"):
            return cond.low - 0.49, cond.high + 0.49
        return cond.low, cond.high

    def sample(self, n: int, conds: dict[int, Condition], rng: np.random.Generator
               ) -> tuple[np.ndarray, dict[str, int]]:
        d = len(self.variables)
        allowed = [self._allowed(j, conds.get(j)) for j in range(d)]
        belief = [a.copy() for a in allowed]
        for child in reversed(self.order[1:]):  # upward messages (sum-product with evidence)
            msg = self.cond[child] @ belief[child]
            belief[self.parent[child]] = belief[self.parent[child]] * msg
        states = np.zeros((n, d), dtype=int)
        states[:, 0] = _draw_rows(np.broadcast_to(self.root * belief[0], (n, self.sizes[0])),
                                  rng)
        for child in self.order[1:]:
            p = self.cond[child][states[:, self.parent[child]]] * belief[child][None, :]
            states[:, child] = _draw_rows(p, rng)
        out = np.zeros((n, d))
        for j in range(d):
            edges = self.edges_bins[j]
            if edges is None:
                out[:, j] = states[:, j]
                continue
            lo, hi = edges[states[:, j]], edges[states[:, j] + 1]
            if j in conds:
                vlo, vhi = self._value_range(j, conds[j])
                lo, hi = np.maximum(lo, vlo), np.minimum(hi, vhi)
            out[:, j] = lo + rng.random(n) * (hi - lo)
        return out, {}


def _draw_rows(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    p = p / p.sum(axis=1, keepdims=True)
    draws = (p.cumsum(axis=1) < rng.random((p.shape[0], 1))).sum(axis=1)
    return np.minimum(draws, p.shape[1] - 1)


# ----------------------------------------------------------------------------- public API
@dataclass
class TableSynthesizer:
    """A fitted table generator; create it with :func:`fit_synthesizer`.

    Attributes
    ----------
    method
        One of :data:`METHODS` (with ``auto``: the generator it chose).
    schema
        The typed input columns (the output has exactly these, in order).
    seed
        Seed of the fit's non-private parts (and default seed of :meth:`sample`); the DP
        noise of ``mst`` is never seeded.
    params
        Method parameters (epochs...).
    privacy
        For ``mst``: epsilon, delta, rho, budget split, noise scales, domain source;
        None for non-DP methods.
    fit_seconds
        Wall time of the fit.
    """

    method: str
    schema: TableSchema
    seed: int
    params: dict[str, Any]
    privacy: dict[str, Any] | None
    fit_seconds: float
    _model: Any = field(repr=False)
    #: How the last :meth:`sample` met its conditions (TVAE: rejection vs fallback rows).
    last_conditional: dict[str, int] = field(default_factory=dict)
    #: With ``method="auto"``: the candidates' validation figures and why the winner won.
    auto: dict[str, Any] | None = None

    def sample(self, n: int, *, conditions: Sequence[str] = (), seed: int | None = None
               ) -> pd.DataFrame:
        """Generate ``n`` rows, every one satisfying every condition.

        Parameters
        ----------
        n
            Number of rows (>= 1).
        conditions
            Condition expressions (``"age=5..10"``, ``"sex=F"``), combined with AND.
        seed
            Seed of this draw (default: the fit's seed); the same seed and the same fitted
            generator give the same rows (sampling is post-processing of the DP model).

        Returns
        -------
        pandas.DataFrame
            Text columns in the input's order and formats.

        Raises
        ------
        ConfigError
            If ``n`` < 1 or a condition is malformed or impossible.

        Examples
        --------
        >>> import pandas as pd
        >>> t = pd.DataFrame({"age": [str(a) for a in range(30)], "sex": ["F", "M"] * 15})
        >>> s = fit_synthesizer(t, seed=1)
        >>> out = s.sample(5, conditions=["age=5..10", "sex=F"])
        >>> out["sex"].unique().tolist(), out["age"].astype(int).between(5, 10).all()
        (['F'], np.True_)
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ConfigError("number of rows must be a positive integer", where="--n",
                              expected=">= 1", got=str(n) if isinstance(n, int) else
                              type(n).__name__, fix="pass --n 100 for example")
        resolved = resolve_conditions(conditions, self.schema)
        self.last_conditional = {}
        rng = np.random.default_rng([self.seed if seed is None else seed, 1])
        conds = _variable_conditions(self.schema, resolved)
        matrix, info = self._model.sample(int(n), conds, rng)
        self.last_conditional = info
        table = self.schema.decode(_enforce(matrix, self.schema, resolved))
        check_conditions(table, resolved, self.schema)
        return table

    def describe(self) -> dict[str, Any]:
        """Describe the generator for JSON: method, parameters, schema, privacy (no values)."""
        return {"method": self.method, "seed": self.seed, "params": dict(self.params),
                "schema": self.schema.to_dict(), "privacy": self.privacy,
                "differentially_private": self.privacy is not None,
                "requested_method": "auto" if self.auto is not None else self.method,
                "auto": self.auto,
                "fit_seconds": round(self.fit_seconds, 3)}


def _check_privacy_args(method: str, epsilon: float | None, delta: float | None
                        ) -> tuple[float | None, float | None]:
    if method != "mst":
        if epsilon is not None or delta is not None:
            raise ConfigError("--epsilon/--delta apply only to a differentially private "
                              "method", where="--method", expected="--method mst",
                              got=f"--method {method}", fix="add --method mst or drop "
                              "--epsilon/--delta")
        return None, None
    if epsilon is None:
        raise ConfigError("the DP method needs a privacy budget", where="--epsilon",
                          expected="a number > 0", got="none", fix="add --epsilon 1.0")
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise ConfigError("epsilon must be a finite number > 0", where="--epsilon",
                          expected="> 0", got=str(epsilon), fix="e.g. --epsilon 1.0")
    delta = DEFAULT_DELTA if delta is None else delta
    if not (isinstance(delta, int | float) and 0 < delta < 1):
        raise ConfigError("delta must be in (0, 1)", where="--delta", expected="0 < delta < 1",
                          got=str(delta), fix="e.g. --delta 1e-6 (below 1/rows)")
    return float(epsilon), float(delta)


def _apply_public_domain(schema: TableSchema, table: pd.DataFrame,
                         public_domain: Mapping[str, Any]) -> TableSchema:
    cols = []
    for spec in schema.columns:
        if spec.name not in public_domain:
            cols.append(spec)
            continue
        dom = public_domain[spec.name]
        tokens = set(table[spec.name].astype(str).str.strip())
        if spec.discrete:
            cats = tuple(str(c) for c in dom)
            if not tokens <= set(cats):
                raise SchemaError("public domain misses values present in the data",
                                  where=f"public domain of '{spec.name}'",
                                  expected="every observed category listed",
                                  got=f"{len(tokens - set(cats))} category(ies) not listed",
                                  fix="complete the code list")
            spec = dataclasses.replace(spec, categories=cats)
        else:
            try:
                low, high = (spec.to_number(str(dom[0])), spec.to_number(str(dom[1])))
            except (TypeError, IndexError, ValueError, KeyError) as e:
                raise ConfigError("public domain of a continuous column must be [low, high]",
                                  where=f"public domain of '{spec.name}'",
                                  expected="[low, high] in the column's format",
                                  got=type(dom).__name__) from e
            if low > spec.low or high < spec.high:
                raise SchemaError("public domain does not cover the data",
                                  where=f"public domain of '{spec.name}'",
                                  expected="low <= every value <= high",
                                  got="values outside", fix="widen the range")
            spec = dataclasses.replace(spec, low=low, high=high)
        cols.append(spec)
    unknown = set(public_domain) - set(schema.names)
    if unknown:
        raise ConfigError("public domain names unknown columns", where="public domain",
                          expected="columns of the table", got=f"{len(unknown)} unknown",
                          fix="check the column names")
    return TableSchema(tuple(cols), schema.dropped)


def fit_synthesizer(table: pd.DataFrame, *, method: str = "copula", seed: int = 0,
                    epsilon: float | None = None, delta: float | None = None,
                    epochs: int | None = None, drop: Sequence[str] = (),
                    public_domain: Mapping[str, Any] | None = None,
                    insecure_dp_seed: int | None = None, target: str | None = None,
                    order: Sequence[str] | None = None, min_leaf: int | None = None,
                    smoothing: str | None = None) -> TableSynthesizer:
    """Fit a table generator on a text table (every column as ``str``).

    Parameters
    ----------
    table
        The real table (e.g. from :func:`secured_bio.privacy.anonymize.read_table_csv`).
    method
        ``copula`` (default here, fast), ``cart``, ``tvae``, ``mst`` (differentially
        private) or ``auto`` (chooses among :data:`AUTO_CANDIDATES` on a validation split;
        the CLI's default).
    seed
        Seed of the non-private parts: for ``copula``/``tvae`` the same seed and input give
        identical output; for ``mst`` it drives only the sampling from the noisy model, and
        the DP noise comes from the OS CSPRNG (two runs differ).
    epsilon, delta
        Privacy budget of ``mst`` (delta defaults to 1e-6); refused for other methods.
    epochs
        Training epochs of ``tvae`` (default 300).
    drop
        Columns to leave out (identifiers); identifier-like text columns are refused otherwise.
    public_domain
        ``mst`` only: categories or ``[low, high]`` per column known without the data, so
        that the domain is covered by the DP guarantee (see the module docstring).
    insecure_dp_seed
        ``mst`` only, for tests: seed the DP noise too (reproducible output).  The noise is
        then predictable and **the epsilon does not hold**; the privacy report says so
        (``epsilon_holds: false``).  Default None: secure noise.
    target
        The outcome column: ``auto`` scores utility (TSTR/TRTR) on it (default: the last
        discrete column with 2 to 20 levels), and ``cart`` visits it last.
    order
        ``cart`` (and ``auto``'s cart): visiting order, all columns or a leading subset (the
        others follow in schema order). Default: schema order with ``target`` last.
    min_leaf
        ``cart``: minimum training rows per leaf (default 5).
    smoothing
        ``cart``: ``density`` (default; Gaussian kernel on numeric draws) or ``none``.

    Returns
    -------
    TableSynthesizer
        The fitted generator.

    Raises
    ------
    ConfigError
        Unknown method (with a hint), epsilon <= 0, delta outside (0, 1), epsilon with a
        non-DP method, epochs < 1, seed < 0, a malformed public domain, or
        ``insecure_dp_seed`` with a non-DP method or not an integer >= 0.
    InputError
        Empty table.
    SchemaError
        Unsupported (free-text/identifier) column, unknown column in ``drop``, or a public
        domain that does not cover the data.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"x": ["1.5", "2.25", "3.0", "0.75"] * 5, "g": ["a", "b"] * 10})
    >>> s = fit_synthesizer(t, method="mst", epsilon=1.0, seed=0)
    >>> s.privacy["epsilon"], list(s.sample(3).columns)
    (1.0, ['x', 'g'])
    """
    from secured_bio.errors import did_you_mean

    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}'", where="--method",
                          expected=" | ".join(METHODS), got=f"'{method}'",
                          fix=did_you_mean(method, METHODS) or "choose one of the methods")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed must be an integer >= 0", where="--seed", expected=">= 0",
                          got=str(seed))
    epsilon, delta = _check_privacy_args(method, epsilon, delta)
    if insecure_dp_seed is not None and method != "mst":
        raise ConfigError("the insecure DP seed applies only to --method mst",
                          where="--insecure-reproducible-dp", expected="--method mst",
                          got=f"--method {method}", fix="drop --insecure-reproducible-dp")
    noise = DPRandom(insecure_seed=insecure_dp_seed)  # validates the seed
    if epochs is not None and (method != "tvae" or epochs < 1):
        raise ConfigError("epochs must be >= 1 and apply only to tvae", where="--epochs",
                          expected="--method tvae with --epochs >= 1",
                          got=f"--method {method} --epochs {epochs}",
                          fix="drop --epochs or use --method tvae")
    if public_domain is not None and method != "mst":
        raise ConfigError("a public domain applies only to --method mst",
                          where="--public-domain", expected="--method mst",
                          got=f"--method {method}")
    cart_opts = _check_cart_args(method, order, min_leaf, smoothing)
    start = time.perf_counter()
    schema = infer_schema(table, drop=drop)
    if target is not None:
        schema.column(target)  # UnknownColumnError with a hint
    if method == "auto":
        return _fit_auto(table, schema, seed=seed, drop=drop, target=target,
                         cart_opts=cart_opts, start=start)
    domain = "observed"
    if public_domain:
        schema = _apply_public_domain(schema, table, public_domain)
        domain = "public" if set(public_domain) >= set(schema.names) else "partly public"
    # MST: each row's encoding must depend on that row alone (sensitivity 1)
    x = schema.encode(table, seed=seed, impute="midpoint" if method == "mst" else "random")
    rng = np.random.default_rng([seed, 0])
    params: dict[str, Any] = {}
    privacy = None
    model: Any
    if method == "copula":
        model = _CopulaModel(x, schema.variables, rng)
    elif method == "cart":
        from secured_bio.privacy.synthetic.cart import CartModel

        names = _cart_order(schema, cart_opts["order"], target)
        params.update(order=names, min_leaf=cart_opts["min_leaf"],
                      smoothing=cart_opts["smoothing"])
        index = {v.name: j for j, v in enumerate(schema.variables)}
        var_order = [index[name] for col in names for name in
                     (col, f"{col}#missing") if name in index]
        model = CartModel(x, schema.variables, var_order, min_leaf=cart_opts["min_leaf"],
                          smoothing=cart_opts["smoothing"], seed=seed)
    elif method == "tvae":
        params["epochs"] = DEFAULT_EPOCHS if epochs is None else int(epochs)
        model = _TVAEModel(x, schema.variables, rng, epochs=params["epochs"], seed=seed)
    else:
        assert epsilon is not None and delta is not None
        params["bins"] = MST_BINS
        model = _MSTModel(x, schema, noise, epsilon=epsilon, delta=delta)
        privacy = dict(model.privacy, domain=domain)
        if not noise.secure:
            log.warning("mst: INSECURE reproducible DP mode: the noise is seeded, so the "
                        "stated epsilon does not hold (tests only)")
        if domain != "public":
            log.warning("mst: category sets and numeric ranges come from the data and are not "
                        "covered by epsilon; pass a public domain to cover them")
    return TableSynthesizer(method, schema, seed, params, privacy,
                            time.perf_counter() - start, model)


def _check_cart_args(method: str, order: Sequence[str] | None, min_leaf: int | None,
                     smoothing: str | None) -> dict[str, Any]:
    from secured_bio.privacy.synthetic.cart import DEFAULT_MIN_LEAF, SMOOTHING

    given = [name for name, v in (("--order", order), ("--min-leaf", min_leaf),
                                  ("--smoothing", smoothing)) if v is not None]
    if given and method not in ("cart", "auto"):
        raise ConfigError(f"{'/'.join(given)} apply only to sequential CART", where="--method",
                          expected="--method cart or auto", got=f"--method {method}",
                          fix=f"drop {'/'.join(given)} or use --method cart")
    if min_leaf is not None and (isinstance(min_leaf, bool) or not isinstance(min_leaf, int)
                                 or min_leaf < 1):
        raise ConfigError("minimum leaf size must be an integer >= 1", where="--min-leaf",
                          expected=">= 1", got=str(min_leaf), fix="e.g. --min-leaf 5")
    if smoothing is not None and smoothing not in SMOOTHING:
        from secured_bio.errors import did_you_mean

        raise ConfigError(f"unknown smoothing '{smoothing}'", where="--smoothing",
                          expected=" | ".join(SMOOTHING), got=f"'{smoothing}'",
                          fix=did_you_mean(smoothing, SMOOTHING) or "choose density or none")
    if isinstance(order, str):
        order = [c.strip() for c in order.split(",") if c.strip()]
    return {"order": None if order is None else list(order),
            "min_leaf": DEFAULT_MIN_LEAF if min_leaf is None else int(min_leaf),
            "smoothing": "density" if smoothing is None else smoothing}


def _cart_order(schema: TableSchema, order: list[str] | None, target: str | None
                ) -> list[str]:
    """Column visiting order: the given leading columns, then the rest (``target`` last)."""
    names = schema.names
    lead = list(order or [])
    for col in lead:
        schema.column(col)  # UnknownColumnError with a hint
    if len(set(lead)) < len(lead):
        raise ConfigError("a column appears twice in the visiting order", where="--order",
                          expected="each column at most once", got=f"{len(lead)} names",
                          fix="list each column once")
    rest = [c for c in names if c not in lead]
    if target is not None and target in rest:
        rest = [c for c in rest if c != target] + [target]
    return lead + rest


def _auto_target(schema: TableSchema, target: str | None) -> tuple[str | None, str]:
    if target is not None:
        return target, "given"
    for spec in reversed(schema.columns):
        if spec.discrete and 2 <= len(spec.categories) <= 20:
            return spec.name, "last discrete column (pass target= / --target to choose)"
    return None, "no discrete column: utility not scored"


def _fit_auto(table: pd.DataFrame, schema: TableSchema, *, seed: int, drop: Sequence[str],
              target: str | None, cart_opts: dict[str, Any], start: float
              ) -> TableSynthesizer:
    """Fit :data:`AUTO_CANDIDATES` on a split, score them, refit the winner on all rows."""
    from secured_bio.privacy.synthetic.evaluate import validation_scores

    kept = table[schema.names]
    score_target, target_source = _auto_target(schema, target)
    cart_kw = {"order": cart_opts["order"], "min_leaf": cart_opts["min_leaf"],
               "smoothing": cart_opts["smoothing"], "target": score_target}
    info: dict[str, Any] = {
        "candidates": list(AUTO_CANDIDATES), "target": score_target,
        "target_source": target_source, "train_share": AUTO_TRAIN_SHARE,
        "guard": {"max_membership_auc": AUTO_MAX_MEMBERSHIP_AUC,
                  "max_exact_copy_share": AUTO_MAX_COPY_SHARE},
        "score": "0.75 x min(TSTR/TRTR, 1) + 0.25 x column similarity among candidates within "
                 "the guard (column similarity alone without a target)",
        "not_candidates": {"tvae": "slow on a CPU, no better than cart on the benchmark",
                           "mst": "differentially private: ask for it explicitly"},
        "results": {}}
    n = len(kept)
    winner = "copula"
    if n < AUTO_MIN_ROWS:
        info["reason"] = f"fewer than {AUTO_MIN_ROWS} rows: no validation split; copula used"
    else:
        perm = np.random.default_rng([seed, 7]).permutation(n)
        cut = int(round(AUTO_TRAIN_SHARE * n))
        train, valid = kept.iloc[np.sort(perm[:cut])], kept.iloc[np.sort(perm[cut:])]
        scored: dict[str, float] = {}
        for cand in AUTO_CANDIDATES:
            t0 = time.perf_counter()
            kw = cart_kw if cand == "cart" else {}
            try:
                fitted = fit_synthesizer(train, method=cand, seed=seed, **kw)
                out = fitted.sample(len(train))
            except (SchemaError, ValueError) as e:  # e.g. a column typed otherwise on the split
                log.warning("synth auto: candidate %s failed on the training split (%s); "
                            "it is left out", cand, type(e).__name__)
                info["results"][cand] = {"error": type(e).__name__, "eligible": False}
                continue
            fig = validation_scores(train, out, valid, target=score_target, seed=seed)
            guard = (fig["membership_auc"] <= AUTO_MAX_MEMBERSHIP_AUC
                     and fig["exact_copy_share"] <= AUTO_MAX_COPY_SHARE)
            sim = fig["column_similarity"] or 0.0
            ratio = fig["utility_ratio"]
            score = 0.75 * min(ratio, 1.0) + 0.25 * sim if ratio is not None else sim
            info["results"][cand] = {**{k: (round(v, 4) if isinstance(v, float) else v)
                                        for k, v in fig.items()},
                                     "score": round(score, 4), "eligible": guard,
                                     "seconds": round(time.perf_counter() - t0, 3)}
            if guard:
                scored[cand] = score
        if scored:
            winner = max(scored, key=lambda c: (scored[c], -AUTO_CANDIDATES.index(c)))
            others = ", ".join(f"{c} {scored[c]:.3f}" for c in scored if c != winner)
            info["reason"] = (f"highest score within the privacy guard ({winner} "
                              f"{scored[winner]:.3f}" + (f" vs {others}" if others else "")
                              + ")")
        else:
            res = info["results"]
            winner = min((c for c in res if "membership_auc" in res[c]),
                         key=lambda c: res[c]["membership_auc"], default="copula")
            info["reason"] = ("no candidate met the privacy guard: the one with the lowest "
                              "membership AUC was used")
            log.warning("synth auto: no candidate met the privacy guard (membership AUC <= "
                        "%s, copies <= %s); using %s", AUTO_MAX_MEMBERSHIP_AUC,
                        AUTO_MAX_COPY_SHARE, winner)
    info["winner"] = winner
    final = fit_synthesizer(table, method=winner, seed=seed, drop=drop,
                            **(cart_kw if winner == "cart" else {}))
    final.auto = info
    final.fit_seconds = time.perf_counter() - start
    return final


@dataclass
class SynthesisResult:
    """A synthetic table and the JSON-ready report of how it was made."""

    table: pd.DataFrame
    report: dict[str, Any]


def synthesize_table(table: pd.DataFrame, n: int, *, method: str = "copula",
                     conditions: Sequence[str] = (), seed: int = 0,
                     epsilon: float | None = None, delta: float | None = None,
                     epochs: int | None = None, drop: Sequence[str] = (),
                     public_domain: Mapping[str, Any] | None = None,
                     insecure_dp_seed: int | None = None, target: str | None = None,
                     order: Sequence[str] | None = None, min_leaf: int | None = None,
                     smoothing: str | None = None) -> SynthesisResult:
    """Fit a generator and draw ``n`` rows in one call (what ``secured-bio synth table`` does).

    Parameters are those of :func:`fit_synthesizer` and :meth:`TableSynthesizer.sample`.

    Returns
    -------
    SynthesisResult
        The table and a report: format, method, parameters, schema, privacy (epsilon/delta
        for ``mst``), conditions, timings.

    Raises
    ------
    ConfigError, InputError, SchemaError
        As :func:`fit_synthesizer` and :meth:`TableSynthesizer.sample`.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"age": [str(a) for a in range(40)], "sex": ["F", "M"] * 20})
    >>> r = synthesize_table(t, 10, conditions=["age=5..10"], seed=3)
    >>> len(r.table), r.report["method"], r.report["conditions"]
    (10, 'copula', ['age=5..10'])
    """
    synth = fit_synthesizer(table, method=method, seed=seed, epsilon=epsilon, delta=delta,
                            epochs=epochs, drop=drop, public_domain=public_domain,
                            insecure_dp_seed=insecure_dp_seed, target=target, order=order,
                            min_leaf=min_leaf, smoothing=smoothing)
    resolve_conditions(conditions, synth.schema)  # fail before sampling
    start = time.perf_counter()
    out = synth.sample(n, conditions=conditions)
    report = {"format": "secured_bio.synthetic_table_report", "format_version": 1,
              **synth.describe(), "n_rows_input": len(table), "n_rows_output": len(out),
              "conditions": list(conditions),
              "conditional_sampling": synth.last_conditional,
              "sample_seconds": round(time.perf_counter() - start, 3)}
    return SynthesisResult(out, report)
