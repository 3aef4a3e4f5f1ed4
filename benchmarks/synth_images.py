"""Benchmark the synthetic-image diffusion model on the demo imaging cohort; prints JSON.

Simulates the demo cohort (:func:`secured_bio.testing.simulate_imaging` with its defaults:
3 sites x 40 participants, 16 x 16 x 8 x 80 fMRI series), takes the default training slices
(3 central axial slices of each temporal-mean volume, 16 x 16: 360 slices) and trains the
default model (:func:`secured_bio.privacy.synthetic.images.train_diffusion`: channels (16, 32),
no attention, batch 32) for ``--epochs`` epochs, then generates ``--n`` images with
``--timesteps`` DDIM steps. Reports seconds per epoch (each epoch, and the mean without the
first, which includes one-off start-up), slices per second, sampling time, and the metrics of
``secured-bio synth images``. Usage::

    python benchmarks/synth_images.py                      # ~1 min on 2 shared cores
    python benchmarks/synth_images.py --device cuda --epochs 50 --size 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
import torch

from secured_bio.privacy.synthetic.images import (
    image_mmd,
    load_image_slices,
    resolve_device,
    sample,
    ssim_diversity,
    train_diffusion,
)
from secured_bio.testing import simulate_imaging


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--size", type=int, default=16, help="slice side (pixels)")
    ap.add_argument("--slices", type=int, default=3, help="central slices per volume")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n", type=int, default=32, help="images generated")
    ap.add_argument("--timesteps", type=int, default=50, help="DDIM steps")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cohort = simulate_imaging(tmp, seed=args.seed)
        simulate_s = time.perf_counter() - t0
        data = load_image_slices(cohort.out_dir, size=args.size, slices=args.slices)
    model = train_diffusion(data.images, epochs=args.epochs, batch_size=args.batch_size,
                            device=device, seed=args.seed)
    seconds = model.history["seconds"]
    t0 = time.perf_counter()
    generated = sample(model, args.n, timesteps=args.timesteps, seed=args.seed + 1)
    sample_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(data.images))
    half = len(order) // 2
    steady = seconds[1:] or seconds
    result = {
        "benchmark": "synth_images",
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                    "torch": torch.__version__, "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "device": device,
                    "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None},
        "data": {"subjects": data.subjects, "slices": int(len(data.images)),
                 "image_size": args.size, "simulate_seconds": round(simulate_s, 2)},
        "model": {k: model.config[k] for k in ("channels", "attention_levels",
                                               "num_res_blocks", "batch_size")},
        "parameters": int(sum(p.numel() for p in model.network.parameters())),
        "epochs": args.epochs,
        "seconds_per_epoch": [round(s, 3) for s in seconds],
        "mean_seconds_per_epoch_after_first": round(float(np.mean(steady)), 3),
        "slices_per_second": round(len(data.images) / float(np.mean(steady)), 1),
        "loss_per_epoch": [round(v, 4) for v in model.history["loss"]],
        "sampling": {"n": args.n, "ddim_steps": args.timesteps, "seconds": round(sample_s, 3)},
        "metrics": {
            "features": "fixed random CNN (image_features, seed 0)",
            "mmd2_real_vs_generated": image_mmd(data.images, generated),
            "mmd2_real_half_vs_half": image_mmd(data.images[order[:half]],
                                                data.images[order[half:]]),
            "ssim_diversity_generated": ssim_diversity(generated)["mean"],
            "ssim_diversity_real": ssim_diversity(data.images)["mean"],
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
