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


# -- what goes through the rendezvous store ----------------------------------------------------


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):  # a vector<uint8_t> from C++
        return bytes(value)
    return str(value).encode()


def install_store_recorder(log: list[tuple[str, str, bytes]]) -> None:
    """Replace ``torch.distributed.TCPStore`` by a wrapper that logs every store operation.

    The wrapper is a Python :class:`torch.distributed.Store`: both the calls made in Python
    (the party's own rendezvous keys) and those made in C++ (the process groups CrypTen
    builds on the store, through ``PrefixStore``) reach it.  Each entry is
    ``(operation, key, value bytes)``; for reads the value is what the store returned.
    """
    import torch.distributed as dist

    real = getattr(dist.TCPStore, "_secured_bio_real", dist.TCPStore)

    class RecordingStore(dist.Store):  # type: ignore[misc]
        _secured_bio_real = real

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__()
            self._inner = real(*args, **kwargs)

        def _log(self, op: str, key: str, value: Any = b"") -> None:
            log.append((op, str(key), _as_bytes(value)))

        def set(self, key: str, value: Any) -> None:
            self._log("set", key, value)
            self._inner.set(key, value)

        def get(self, key: str) -> bytes:
            value = self._inner.get(key)
            self._log("get", key, value)
            return value

        def add(self, key: str, amount: int) -> int:
            self._log("add", key, str(amount))
            return self._inner.add(key, amount)

        def compare_set(self, key: str, expected: Any, desired: Any) -> bytes:
            self._log("compare_set", key, _as_bytes(expected) + b"->" + _as_bytes(desired))
            return self._inner.compare_set(key, expected, desired)

        def multi_get(self, keys: list[str]) -> list[bytes]:
            values = self._inner.multi_get(keys)
            for key, value in zip(keys, values, strict=True):
                self._log("get", key, value)
            return values

        def multi_set(self, keys: list[str], values: list[Any]) -> None:
            for key, value in zip(keys, values, strict=True):
                self._log("set", key, value)
            self._inner.multi_set(keys, values)

        def append(self, key: str, value: Any) -> None:
            self._log("append", key, value)
            self._inner.append(key, value)

        def check(self, keys: list[str]) -> bool:
            for key in keys:
                self._log("check", key)
            return self._inner.check(keys)

        def wait(self, keys: list[str], *timeout: Any) -> None:
            for key in keys:
                self._log("wait", key)
            self._inner.wait(keys, *timeout)

        def delete_key(self, key: str) -> bool:
            self._log("delete_key", key)
            return self._inner.delete_key(key)

        def num_keys(self) -> int:
            return self._inner.num_keys()

        def set_timeout(self, timeout: Any) -> None:
            self._inner.set_timeout(timeout)

        def has_extended_api(self) -> bool:
            return True

    dist.TCPStore = RecordingStore  # type: ignore[misc, assignment]


def store_recorded_site(rank: int, world_size: int, site: str, path: str, port: int,
                        options: dict[str, Any], results: Any) -> None:
    """Process target: run one site with :func:`secure_gwas.run_site`, its store recorded."""
    log: list[tuple[str, str, bytes]] = []
    try:
        install_store_recorder(log)
        from secured_bio.genomics import secure_gwas as sg

        run = sg.run_site(rank, world_size, site, path, master_port=port, **options)
        results.put((rank, "ok", log, run.results.shape[0]))
    except BaseException as e:  # reported to the test, which fails
        import traceback

        traceback.print_exc()
        results.put((rank, f"error: {type(e).__name__}: {e}", log, 0))
    finally:
        results.close()
        results.join_thread()
