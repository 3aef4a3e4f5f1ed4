"""Party functions for the secure GWAS tests.

Party processes are spawned, so the functions they run must be importable by name: the tests
import this module as ``genomics._secure_party_fns`` (``tests/`` is on ``sys.path`` through
the pytest ``pythonpath`` setting, and spawned processes inherit ``sys.path``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def audited_site(arg: Any) -> dict[str, Any]:
    """Run one site of :func:`secure_gwas` and record everything it sends and reveals.

    Returns the site's outcome, every ``secure_sum_many`` call (this site's plaintext
    inputs, the options and the revealed outputs) and the payload of every message this
    party sent over torch.distributed.
    """
    import secured_bio.genomics.secure_gwas as sg
    from secured_bio.privacy.smpc import record_messages

    calls: list[dict[str, Any]] = []
    real = sg.secure_sum_many

    def spy(arrays: Any, **kwargs: Any) -> Any:
        out = real(arrays, **kwargs)
        calls.append({
            "inputs": {k: np.array(v, copy=True) for k, v in arrays.items()},
            "precision_bits": kwargs.get("precision_bits", 16),
            "outputs": out,
        })
        return out

    sg.secure_sum_many = spy  # type: ignore[assignment]
    try:
        with record_messages() as log:
            outcome = sg._site_entry(arg)
    finally:
        sg.secure_sum_many = real  # type: ignore[assignment]
    sent = [(m.op, m.peer, m.payload) for m in log.sent()]
    return {"outcome": outcome, "calls": calls, "sent": sent}
