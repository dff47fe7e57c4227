"""Generation rate of the event simulator on one core.

    python -m benchmarks.simulator                    # 200,000 impressions
    python -m benchmarks.simulator --impressions 1000000

Measured in the same run: the vectorised draw alone (``simulate``: numpy arrays, the ceiling),
``events`` (Impression/Action dataclasses in delivery order), ``events`` + JSON encoding (what
``pepnet simulate`` hands to the producer) and ``labelled_samples`` (with oracle probabilities).
Prints impressions/s and events/s of each and the ratio to the array-only ceiling; the target of
the simulator issue is >= 20,000 impressions/s for ``events`` and ``labelled_samples``. Then the
ground truth of the run: windowed label rate per task x domain (with the target) and oracle AUC.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from pepnet.auc import auc
from stream.config.pipeline import load_config
from stream.events.formats import encode
from stream.simulator import EventSimulator

TARGET_IMPRESSIONS_PER_S = 20_000


def timed(run: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    events = run()
    return time.perf_counter() - start, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=200_000)
    parser.add_argument("--window-ms", type=int, default=300_000)
    args = parser.parse_args()
    n = args.impressions
    config = load_config()
    start = time.perf_counter()
    sim = EventSimulator(config.simulator, config.schema)
    print(f"set-up (load CSVs, hidden model, calibration): {time.perf_counter() - start:.2f} s")

    def arrays() -> int:
        return sum(int(c.actions.sum()) + c.actions.shape[0] for c in sim.simulate(n))

    def events() -> int:
        return sum(1 for _ in sim.events(n))

    def encoded() -> int:
        return sum(1 for e in sim.events(n) if encode(e))

    def labelled() -> int:
        return sum(1 for _ in sim.labelled_samples(n, args.window_ms))

    results = {
        name: timed(run)
        for name, run in [
            ("arrays", arrays),
            ("events", events),
            ("events+encode", encoded),
            ("labelled_samples", labelled),
        ]
    }
    ceiling = n / results["arrays"][0]
    print(f"{'stage':<18} {'impressions/s':>14} {'events/s':>12} {'vs arrays':>10} {'vs target':>10}")
    for name, (seconds, count) in results.items():
        rate = n / seconds
        print(
            f"{name:<18} {rate:>14,.0f} {count / seconds:>12,.0f} {rate / ceiling:>10.2f} "
            f"{rate / TARGET_IMPRESSIONS_PER_S:>10.2f}"
        )
    print_ground_truth(sim, n, args.window_ms)


def print_ground_truth(sim: EventSimulator, n: int, window_ms: int) -> None:
    tasks, domains = sim.task_names, list(sim.schema.domains)
    rows = [
        (s.impression.domain, [s.labels[t] for t in tasks], [p[t] for t in tasks])
        for s, p in sim.labelled_samples(n, window_ms)
    ]
    domain = np.array([r[0] for r in rows])
    labels = np.array([r[1] for r in rows])
    oracle = np.array([r[2] for r in rows])
    within, targets = sim.probability_within_window(window_ms), sim.target_rates()
    print(f"\nlabel rate per task x domain (window {window_ms} ms); target x P(delay <= window) in brackets")
    print(f"{'task':<15}" + "".join(f"{d:>18}" for d in domains) + f"{'all':>9}{'oracle AUC':>12}")
    for k, task in enumerate(tasks):
        cells = "".join(
            f"{labels[domain == d, k].mean():>9.4f} ({targets[task][d] * within[task]:.4f})" for d in domains
        )
        print(f"{task:<15}{cells}{labels[:, k].mean():>9.4f}{auc(labels[:, k], oracle[:, k]):>12.3f}")
    share = " ".join(f"{d} {np.mean(domain == d):.3f}" for d in domains)
    print(f"traffic share: {share}")


if __name__ == "__main__":
    main()
