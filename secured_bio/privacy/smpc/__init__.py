"""Secure multi-party computation: parties over CrypTen/torch.distributed, secure aggregation.

Each site runs one party (an OS process) holding only its own data; parties meet over TCP
(:func:`run_party` on each host, or :func:`run_parties` for all of them on one host), across
hosts through an encrypted relay they connect out to (:mod:`~secured_bio.privacy.smpc.links`:
mutual TLS, roster-authenticated keys, messages sealed end to end), and call
the secure-aggregation protocols (:func:`secure_sum`, :func:`secure_sum_int`,
:func:`secure_sum_many`), which reveal only the sums.  :func:`import_crypten` imports CrypTen
with the fixes it needs on torch 2.13.  Threat models and reveal sets are documented in
:mod:`~secured_bio.privacy.smpc.parties` and :mod:`~secured_bio.privacy.smpc.protocols`.

Importing this package imports neither torch nor CrypTen; they are imported when a party
starts.

A site's process (one per host)::

    from secured_bio.privacy.smpc import run_party, secure_sum_many

    def site_main(path):
        stats = compute_local_statistics(path)        # plaintext, stays here
        return secure_sum_many(stats)                 # only the sums come back

    totals = run_party(rank, 3, site_main, "site_a.zarr",
                       master_addr="10.0.0.1", master_port=29500)
"""

from ._compat import import_crypten
from .inference import (
    EncryptedInferenceResult,
    encrypted_predict,
    inference_party,
    run_data_owner,
    run_model_owner,
)
from .links import LinkConfig, create_identity, read_roster, run_relay, write_roster
from .parties import (
    DEALERS,
    Dealer,
    PartyInfo,
    current_party,
    free_port,
    run_dealer,
    run_parties,
    run_party,
)
from .protocols import (
    Message,
    MessageLog,
    ProtocolStats,
    measure,
    record_messages,
    secure_sum,
    secure_sum_int,
    secure_sum_many,
)

__all__ = [
    "DEALERS",
    "Dealer",
    "EncryptedInferenceResult",
    "LinkConfig",
    "Message",
    "MessageLog",
    "PartyInfo",
    "ProtocolStats",
    "create_identity",
    "current_party",
    "encrypted_predict",
    "free_port",
    "import_crypten",
    "inference_party",
    "measure",
    "read_roster",
    "record_messages",
    "run_data_owner",
    "run_dealer",
    "run_model_owner",
    "run_parties",
    "run_party",
    "run_relay",
    "secure_sum",
    "secure_sum_int",
    "secure_sum_many",
    "write_roster",
]
