"""GA4GH Data Use Ontology (DUO) codes on datasets, checked against a request's purpose.

A dataset carries one data-use *permission* (what research it may be used for) and any
*modifiers* (conditions).  A request states its purpose as DUO terms too (the ontology's own
use: the same codes describe data use conditions and research purposes) plus the facts the
modifiers ask about (commercial or not, ethics approval...).  :func:`check` matches them as in
the DUO matching rules of the GA4GH Data Use Ontology paper (Lawson et al., Cell Genomics 2021):
GRU data allows any research, HMB data health/medical/biomedical research (HMB or DS
purposes), DS data only research on that disease, POA data only population origins/ancestry;
NMDS forbids methods development, NPOA ancestry research, GSO allows genetic studies only,
NCU/NPUNCU forbid commercial use, IRB requires ethics approval; COL/PUB/RTN/MOR/TS/GS/IS/US
are conditions the committee must confirm (listed, not blocking).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TERMS", "PERMISSIONS", "PURPOSES", "Purpose", "check", "describe"]

#: code -> (abbreviation, label)
TERMS: dict[str, tuple[str, str]] = {
    "DUO:0000004": ("NRES", "no restriction"),
    "DUO:0000042": ("GRU", "general research use"),
    "DUO:0000006": ("HMB", "health or medical or biomedical research"),
    "DUO:0000007": ("DS", "disease specific research"),
    "DUO:0000011": ("POA", "population origins or ancestry research only"),
    "DUO:0000012": ("RS", "research specific restrictions"),
    "DUO:0000015": ("NMDS", "no general methods research"),
    "DUO:0000016": ("GSO", "genetic studies only"),
    "DUO:0000018": ("NPUNCU", "not for profit, non commercial use only"),
    "DUO:0000019": ("PUB", "publication required"),
    "DUO:0000020": ("COL", "collaboration required"),
    "DUO:0000021": ("IRB", "ethics approval required"),
    "DUO:0000022": ("GS", "geographical restriction"),
    "DUO:0000024": ("MOR", "publication moratorium"),
    "DUO:0000025": ("TS", "time limit on use"),
    "DUO:0000026": ("US", "user specific restriction"),
    "DUO:0000027": ("PS", "project specific restriction"),
    "DUO:0000028": ("IS", "institution specific restriction"),
    "DUO:0000029": ("RTN", "return to database or resource"),
    "DUO:0000043": ("CC", "clinical care use"),
    "DUO:0000044": ("NPOA", "population origins or ancestry research prohibited"),
    "DUO:0000045": ("NPU", "not for profit organisation use only"),
    "DUO:0000046": ("NCU", "non-commercial use only"),
}
PERMISSIONS = ("DUO:0000004", "DUO:0000042", "DUO:0000006", "DUO:0000007", "DUO:0000011")
#: research purposes a request may state (the permission terms, plus methods development)
PURPOSES = ("DUO:0000042", "DUO:0000006", "DUO:0000007", "DUO:0000011")
_CONFIRM = {"DUO:0000019", "DUO:0000020", "DUO:0000022", "DUO:0000024", "DUO:0000025",
            "DUO:0000026",
            "DUO:0000027", "DUO:0000028", "DUO:0000029", "DUO:0000012", "DUO:0000043"}


def describe(code: str) -> str:
    """``"HMB (health or medical or biomedical research)"`` for a known code, else the code."""
    abbr, label = TERMS.get(code, (code, "unknown DUO term"))
    return f"{abbr} ({label})"


@dataclass(frozen=True)
class Purpose:
    """What a request says it will do with the data."""

    code: str = "DUO:0000006"
    disease: str = ""
    commercial: bool = False
    methods_development: bool = False
    genetic_study: bool = True
    ethics_approval: bool = False
    not_for_profit_org: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Purpose:
        """Build from the request's JSON (unknown keys ignored)."""
        d = d or {}
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class DatasetCheck:
    """The outcome for one dataset."""

    dataset: int
    codes: list[str]
    violations: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No violation."""
        return not self.violations


def _check_one(codes: list[str], purpose: Purpose) -> tuple[list[str], list[str]]:
    violations: list[str] = []
    conditions: list[str] = []
    perms = [c for c in codes if c in PERMISSIONS]
    p = purpose.code
    for perm in perms:
        if perm in ("DUO:0000004", "DUO:0000042"):
            continue
        if perm == "DUO:0000006" and p not in ("DUO:0000006", "DUO:0000007"):
            violations.append(f"{describe(perm)} allows health/medical research only; "
                              f"the stated purpose is {describe(p)}")
        if perm == "DUO:0000007" and (p != "DUO:0000007" or not purpose.disease):
            violations.append(f"{describe(perm)}: state a disease-specific purpose "
                              "(DUO:0000007) and the disease")
        if perm == "DUO:0000011" and p != "DUO:0000011":
            violations.append(f"{describe(perm)}: only population origins/ancestry research")
    if not perms:
        conditions.append("the dataset states no DUO permission: the committee decides")
    if "DUO:0000015" in codes and purpose.methods_development:
        violations.append(f"{describe('DUO:0000015')}: methods development is not allowed")
    if "DUO:0000044" in codes and p == "DUO:0000011":
        violations.append(f"{describe('DUO:0000044')}: the purpose is ancestry research")
    if "DUO:0000016" in codes and not purpose.genetic_study:
        violations.append(f"{describe('DUO:0000016')}: genetic studies only")
    if ("DUO:0000046" in codes or "DUO:0000018" in codes) and purpose.commercial:
        violations.append(f"{describe('DUO:0000046')}: commercial use is not allowed")
    if "DUO:0000045" in codes and not purpose.not_for_profit_org:
        violations.append(f"{describe('DUO:0000045')}: only not-for-profit organisations")
    if "DUO:0000021" in codes:
        if purpose.ethics_approval:
            conditions.append(f"{describe('DUO:0000021')}: ethics approval stated; "
                              "the committee checks it")
        else:
            violations.append(f"{describe('DUO:0000021')}: state that ethics approval exists")
    for c in codes:
        if c in _CONFIRM:
            conditions.append(f"{describe(c)}: the committee confirms this condition")
        elif c not in TERMS:
            conditions.append(f"{c}: unknown DUO term, the committee decides")
    return violations, conditions


def check(datasets: list[tuple[int, list[str]]], purpose: Purpose) -> list[DatasetCheck]:
    """Check each ``(dataset id, DUO codes)`` against ``purpose``."""
    out = []
    for ds_id, codes in datasets:
        v, c = _check_one(list(codes), purpose)
        out.append(DatasetCheck(ds_id, list(codes), v, c))
    return out
