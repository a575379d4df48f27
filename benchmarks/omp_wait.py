"""What the OpenMP wait policy costs: training steps with idle threads spinning (ACTIVE), spinning
a while then sleeping (unset: libgomp's default, GOMP_SPINCOUNT 300k) or sleeping at once
(PASSIVE), on an idle machine and on one busy with other work.

    python benchmarks/omp_wait.py [--repeats 3] [--busy 2]

Each measurement is a fresh process (the policy is read when the OpenMP runtime starts) that
times 60 training steps of a small Transformer encoder-decoder on 2 torch threads (the project's
pinned count), policies alternating. "busy" runs ``--busy`` spinning processes beside it, as a
shared workstation or a CI machine with a parallel job does. Time it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time

WORKLOAD = r"""
import time, torch
torch.manual_seed(0)
torch.set_num_threads(2)
net = torch.nn.Transformer(d_model=128, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                           dim_feedforward=256, batch_first=True)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
src, tgt = torch.randn(32, 20, 128), torch.randn(32, 18, 128)
for _ in range(5):  # warm-up
    opt.zero_grad(); net(src, tgt).pow(2).mean().backward(); opt.step()
t0 = time.perf_counter()
for _ in range(60):
    # a little serial Python between the parallel regions, as a data loader and a loop have
    opt.zero_grad(); net(src, tgt).pow(2).mean().backward(); opt.step(); sum(range(20000))
print(time.perf_counter() - t0)
"""


def _spin(stop: mp.Event) -> None:
    x = 0
    while not stop.is_set():
        x += 1


#: name -> the OpenMP settings of that mode (unset: libgomp's defaults)
MODES = {
    "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
    "unset": {},
    "spin 20k": {"GOMP_SPINCOUNT": "20000"},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def _time(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(MODES[mode])
    out = subprocess.run([sys.executable, "-c", WORKLOAD], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", type=int, default=2, help="spinning processes beside the workload when busy")
    args = ap.parse_args()
    print(f"load {os.getloadavg()[0]:.2f} at start")
    results = {}
    for machine in ("idle", "busy"):
        stop, spinners = mp.Event(), []
        if machine == "busy":
            spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.busy)]
            for p in spinners:
                p.start()
            time.sleep(1)
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        try:
            for _ in range(args.repeats):
                for policy in times:
                    times[policy].append(_time(policy))
        finally:
            stop.set()
            for p in spinners:
                p.join()
        med = {k: statistics.median(v) for k, v in times.items()}
        results[machine] = {"seconds": times, "median": med}
        print(f"{machine:5s} " + ", ".join(f"{k} median {v:.2f} s" for k, v in med.items())
              + f"  runs {json.dumps({k: [round(x, 2) for x in v] for k, v in times.items()})}", flush=True)


if __name__ == "__main__":
    main()
