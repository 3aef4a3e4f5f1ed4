"""Party functions for the encrypted-inference tests.

Party processes are spawned, so the functions they run must be importable by name: the tests
import this module as ``privacy.smpc._inference_fns`` (``tests/`` is on ``sys.path`` through
the pytest ``pythonpath`` setting, and spawned processes inherit ``sys.path``).
"""

from __future__ import annotations

from typing import Any


def audited_inference(arg: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`inference_party`, then show what gloo's ``reduce`` leaves at the non-root.

    After the inference both parties reduce a *public* tensor (rank r holds ``1000 * (r + 1)``
    in every element) to rank 0 with ``torch.distributed.reduce`` -- what CrypTen's
    ``get_plain_text(dst=0)`` does -- and report how many elements of the non-root's buffer
    hold the full sum afterwards.
    """
    import crypten.communicator as comm
    import torch
    import torch.distributed as dist

    from secured_bio.privacy.smpc import current_party
    from secured_bio.privacy.smpc.inference import inference_party

    out = inference_party(arg)
    rank = current_party().rank
    t = torch.full((16,), 1000 * (rank + 1), dtype=torch.int64)
    dist.reduce(t, 0, group=comm.get().main_group)
    out["gloo_reduce_full_sums_at_rank"] = int((t == 3000).sum())
    return out
