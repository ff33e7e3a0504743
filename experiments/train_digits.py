"""Train an LSTM on sequential digits (one pixel per step, T = 64) with your own loop, logged and
recorded with the run API (`gradlab.init`), then scored on the held-out split.

    python experiments/train_digits.py --store runs --steps 2000
    gradlab runs --store runs && gradlab dash --store runs   # its gradient-flow figures

The end exports the run's `gradient_flow` heatmap (‖∂L/∂h_k‖, timestep k × training step) to
`--figure` (it needs Chrome/Chromium, and says so when there is none). `--write docs/digits.json`
also writes the measured result (test accuracy, steps, wall time, settings, the command): the
committed docs/digits.json and docs/digits_gradient_flow.png are such a run at the defaults, and
the README quotes its accuracy and shows the heatmap.

Every `--record-every` steps the model is recorded on a fixed batch of training digits; every
step logs the batch loss and accuracy; the end logs the test split's loss and accuracy
(`test_loss`, `test_acc`) and stores them in the run's summary. `--task perm_digits` shows the
pixels in a fixed random order instead (longer dependencies).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import time
from pathlib import Path

import torch

import gradlab
from gradlab.tasks import make


def make_parser() -> argparse.ArgumentParser:
    """The command line (its defaults are the documented run's settings)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="runs", help="run store folder (default: runs)")
    parser.add_argument("--name", default=None, help="run id (default: a fresh one)")
    parser.add_argument("--task", choices=("seq_digits", "perm_digits"), default="seq_digits")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--record-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument("--figure", type=Path, default=Path("digits_gradient_flow.png"),
                        help="gradient_flow figure (.png/.pdf/.svg); '' for none")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = make_parser().parse_args(argv)
    start = time.perf_counter()

    task, test = make(args.task), make(args.task, split="test")
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    model, head = gradlab.LSTM(1, args.hidden), torch.nn.Linear(args.hidden, 10)
    params = [*model.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=args.lr)
    x_probe, y_probe = task.sample(32, gen)

    def probe_loss(out: torch.Tensor) -> torch.Tensor:
        return task.loss(head(out), y_probe)

    config = {"cell": "lstm", "task": args.task, "seq_len": 64, "seed": args.seed,
              "hidden_size": args.hidden, "batch_size": args.batch, "lr": args.lr}  # fmt: skip
    with gradlab.init(args.store, name=args.name, config=config) as run:
        for step in range(args.steps):
            if step % args.record_every == 0 or step == args.steps - 1:
                run.record(model, x_probe, probe_loss, step=step)
            x, y = task.sample(args.batch, gen)
            pred = head(model(x)[0])
            loss = task.loss(pred, y)
            optimizer.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            run.log({"loss": loss, "acc": task.accuracy(pred, y), "grad_norm": grad_norm}, step)
        with torch.no_grad():
            x, y = test.split_data()
            pred = head(model(x)[0])
            scores = {"test_loss": float(test.loss(pred, y)), "test_acc": test.accuracy(pred, y)}
        run.log(scores, step=args.steps - 1)
        run.finish({**scores, "baseline_loss": task.baseline_loss})
    wall_s = time.perf_counter() - start
    print(f"{run.run_id}: {scores} (baseline loss {task.baseline_loss:.3f}) in {wall_s:.0f} s")
    if args.write is not None:
        write_result(args, run.run_id, scores, len(y), wall_s)
    if str(args.figure) not in ("", "."):
        export_figure(args.store, run.run_id, args.figure)
    return scores


#: Command-line options that say where outputs go, not how the model trains.
OUTPUTS = ("store", "name", "write", "figure")


def write_result(
    args: argparse.Namespace, run_id: str, scores: dict[str, float], n: int, wall_s: float
) -> None:
    """The measured result, its settings and the command that reproduces it, as JSON."""
    settings = {k: v for k, v in vars(args).items() if k not in OUTPUTS}
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    flags += [f"--write={args.write}", f"--figure={args.figure}"]
    result = {
        "task": args.task,
        "run_id": run_id,
        "test_acc": scores["test_acc"],
        "test_loss": scores["test_loss"],
        "test_size": n,
        "steps": args.steps,
        "wall_s": round(wall_s, 1),
        "settings": settings,
        "command": shlex.join(["python", "experiments/train_digits.py", *flags]),
        "machine": {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "platform": platform.platform()},
    }  # fmt: skip
    args.write.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def export_figure(store: str, run_id: str, path: Path) -> None:
    """The run's gradient_flow heatmap to `path`, or a note why not (no browser)."""
    from gradlab.export import ExportError, export

    try:
        export("gradient_flow", path, store=store, run_ids=run_id, width="double")
        print(f"gradient flow heatmap: {path}")
    except ExportError as error:  # its data (.csv, .json) are written; the image needs Chromium
        print(f"gradient flow heatmap not rendered: {error}")


if __name__ == "__main__":
    main()
