"""Train an LSTM on sequential digits (one pixel per step, T = 64) with your own loop, logged and
recorded with the run API (`gradlab.init`), then scored on the held-out split.

    python experiments/train_digits.py --store runs --steps 2000
    gradlab runs --store runs && gradlab dash --store runs   # its gradient-flow figures

Every `--record-every` steps the model is recorded on a fixed batch of training digits; every
step logs the batch loss and accuracy; the end logs the test split's loss and accuracy
(`test_loss`, `test_acc`) and stores them in the run's summary. `--task perm_digits` shows the
pixels in a fixed random order instead (longer dependencies).
"""

from __future__ import annotations

import argparse

import torch

import gradlab
from gradlab.tasks import make


def main(argv: list[str] | None = None) -> dict[str, float]:
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
    args = parser.parse_args(argv)

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
    print(f"{run.run_id}: {scores} (baseline loss {task.baseline_loss:.3f})")
    return scores


if __name__ == "__main__":
    main()
