"""Warm start in the paper's online setting: progressive AUC over the first passes after a warm start.

One samples topic of ``--samples`` simulated samples, passes of ``--pass-samples``:

1. ``first``: a cold-start model (Adam lr 3e-3) trained on the first ``--first-passes`` passes;
   its export is the warm model.
2. ``warm``: ``model.preset: paper-online`` (Adam lr 5e-6) started from that export
   (``trainer.init_from``); it continues after the first run's offsets.
3. ``cold 5e-6``: the same learning rate from random weights on the same passes (what
   paper-online does without a warm start; the trainer refuses the preset itself, so the rate is
   set with ``model.dense_lr``).
4. ``cold 3e-3``: a cold-start model from random weights on the same passes.
5. ``continued``: the first run itself, going on with cold-start settings (reference).

Every run cuts the same passes (content-only rules), checked by the pass manifests. Prints the
progressive AUC per pass (click, like, and the mean over tasks) of each run.
Run: ``nice python benchmarks/warm_start.py`` (starts its own broker on free ports; ``--bootstrap``
uses an existing one).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer import in_scratch_dir  # noqa: E402  (benchmarks/trainer.py)

from monitoring.run_log import PassRecord  # noqa: E402
from stream.config.pipeline import PipelineConfig  # noqa: E402
from stream.trainer.loop import IncrementalTrainer, RunOptions, RunSummary, TrainerPaths  # noqa: E402


def with_settings(config: PipelineConfig, model: dict, trainer: dict) -> PipelineConfig:
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, **model),
        trainer=dataclasses.replace(config.trainer, **trainer),
    )


def train(config: PipelineConfig, run_dir: Path, options: RunOptions) -> RunSummary:
    return IncrementalTrainer(config, TrainerPaths.from_config(config, str(run_dir))).run(options)


def mean_auc(record: PassRecord) -> float:
    values = [v for v in record.auc.values() if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="", help="existing broker (default: start one on free ports)")
    parser.add_argument("--samples", type=int, default=400_000)
    parser.add_argument("--pass-samples", type=int, default=20_000)
    parser.add_argument("--first-passes", type=int, default=10, help="passes of the cold-start model to export")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    return in_scratch_dir(args, "bench-warm-start-", compare)


def compare(args: argparse.Namespace, work: Path, config: PipelineConfig, produced: int) -> int:
    """The five runs on the samples topic of ``config``; prints their progressive AUC per pass."""
    print(f"{produced:,} samples, passes of {args.pass_samples:,}, batch {config.trainer.batch_size}; "
          f"first model: {args.first_passes} cold-start passes")  # fmt: skip

    first = train(config, work / "first", RunOptions(max_passes=args.first_passes))
    start = first.manifests[-1].next_offsets()
    rest = RunOptions(stop_at_end=True)
    same_passes = RunOptions(stop_at_end=True, start_offsets=start)
    runs = {
        "warm paper-online": train(
            with_settings(config, {"preset": "paper-online"}, {"init_from": str(work / "first" / "model")}),
            work / "warm",
            rest,
        ),
        "cold lr 5e-6": train(with_settings(config, {"dense_lr": 5e-6}, {}), work / "cold-slow", same_passes),
        "cold lr 3e-3": train(config, work / "cold", same_passes),
        "continued": train(config, work / "first", rest),
    }
    ranges = {name: [m.ranges for m in summary.manifests] for name, summary in runs.items()}
    if len({repr(r) for r in ranges.values()}) != 1:
        raise SystemExit(f"the runs cut different passes: {ranges}")
    names = list(runs)
    print("progressive AUC per pass after the first model (click / like / mean over tasks):")
    print(f"{'pass':>4}  " + "  ".join(f"{name:>24}" for name in names))
    for j in range(len(runs[names[0]].passes)):
        cells = []
        for name in names:
            r = runs[name].passes[j]
            cells.append(f"{r.auc['click']:.4f} {r.auc['like']:.4f} {mean_auc(r):.4f}")
        print(f"{j:>4}  " + "  ".join(f"{c:>24}" for c in cells))
    print(f"{'mean':>4}  " + "  ".join(
        f"{sum(mean_auc(r) for r in runs[n].passes) / len(runs[n].passes):>24.4f}" for n in names
    ))  # fmt: skip
    like_logloss = {n: sum(r.logloss["like"] for r in runs[n].passes) / len(runs[n].passes) for n in names}
    print("mean like log loss: " + ", ".join(f"{n} {v:.4f}" for n, v in like_logloss.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
