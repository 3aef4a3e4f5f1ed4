"""Benchmark tumour-classifier inference per scan, plaintext and encrypted; prints JSON on stdout.

Measured in one run, on CPU, batch of one scan:

* ``plaintext.connectivity_classifier`` and ``plaintext.cnn3d``: forward-pass latency
  (:func:`secured_bio.imaging.models.inference_latency`) with one torch thread, p50/p95 over
  ``--repeats`` scans;
* ``encrypted.connectivity_classifier``:
  :func:`secured_bio.privacy.smpc.inference.encrypted_predict` with two parties and a
  separate dealer (``ttp``), each an OS process with one torch thread, over gloo on
  loopback; per-scan latency at the data owner (share the row, evaluate, open the
  output) over ``--scans`` scans, the one-off set-up (architecture exchange, model conversion
  and encryption), bytes per party per scan, and the largest logit error against plaintext;
* ``ratio_encrypted_to_plain_p50``: encrypted p50 over plaintext p50 (same network).

Weights are seeded and untrained (latency does not depend on their values).  Usage::

    python benchmarks/inference.py                     # ~1 min on 2 cores
    python benchmarks/inference.py --repeats 500 --n-features 190 --scans 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

from secured_bio.imaging.models import (
    cnn3d,
    connectivity_classifier,
    inference_latency,
    predict_logits,
)
from secured_bio.privacy.smpc.inference import encrypted_predict


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200, help="plaintext scans timed per model")
    ap.add_argument("--n-features", type=int, default=45,
                    help="connectivity edges (45 = upper triangle of 10 ROIs)")
    ap.add_argument("--hidden", type=int, nargs="+", default=[32])
    ap.add_argument("--cnn-shape", type=int, nargs=3, default=[16, 16, 8])
    ap.add_argument("--scans", type=int, default=20, help="scans classified encrypted")
    ap.add_argument("--dealer", choices=["ttp", "trusted_first_party"], default="ttp")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    clf = connectivity_classifier(args.n_features, hidden=args.hidden, seed=args.seed)
    x_conn = rng.normal(0.0, 1.0, size=(max(args.scans, 16), args.n_features)).astype(np.float32)
    net3d = cnn3d(tuple(args.cnn_shape), seed=args.seed)
    x_vol = rng.normal(size=(16, 1, *args.cnn_shape)).astype(np.float32)

    plain_conn = inference_latency(clf, x_conn, repeats=args.repeats)
    plain_cnn = inference_latency(net3d, x_vol, repeats=args.repeats)

    scans = x_conn[: args.scans]
    t0 = time.perf_counter()
    enc = encrypted_predict(clf, scans, dealer=args.dealer, torch_threads=1, timeout_s=300)
    session_s = time.perf_counter() - t0
    summary = enc.latency_summary()
    encrypted: dict[str, Any] = {
        **summary,
        "setup_s": enc.setup_s,
        "total_s": enc.total_s,
        "session_seconds_incl_process_start": session_s,
        "bytes_sent_per_scan": {str(r): b / args.scans for r, b in enc.bytes_sent.items()},
        "bytes_received_per_scan": {str(r): b / args.scans for r, b in enc.bytes_received.items()},
        "max_abs_logit_error": float(np.abs(enc.logits - predict_logits(clf, scans)).max()),
        "precision_bits": enc.precision_bits,
        "dealer": enc.dealer,
    }
    report = {
        "benchmark": "secured_bio.imaging.models inference latency (plain and encrypted)",
        "format_version": 1,
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                    "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads_per_process": 1, "transport": "gloo over loopback TCP"},
        "config": vars(args),
        "plaintext": {
            "connectivity_classifier": plain_conn,
            "cnn3d": plain_cnn,
        },
        "encrypted": {"connectivity_classifier": encrypted},
        "ratio_encrypted_to_plain_p50": summary["p50_ms"] / plain_conn["p50_ms"],
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
