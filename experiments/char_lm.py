"""A character-level language model (nn.Embedding + nn.LSTM + nn.Linear: a plain torch model)
trained on the Zen of Python (task `zen_chars`, the text Python ships) with your own loop, logged
and recorded with the run API, then its gradient-flow heatmap exported.

    python experiments/char_lm.py --store runs
    gradlab dash --store runs   # every figure of the run

Every step logs the batch loss (nats per character) and bits per character; every
`--record-every` steps `run.record(model, ..., module="lstm")` records the LSTM inside the whole
model on a fixed batch: the contributions are of the real loss through the real head. The run's
config does not name the cell: `run.record` adds it (and the LSTM's shape) from the module. The
end writes the `gradient_flow` figure (‖∂L/∂h_k‖, timestep k × training step) to `--figure`
(PNG or PDF; it needs Chrome/Chromium, and says so when there is none).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn

import gradlab
from gradlab.tasks import make


class CharLM(nn.Module):
    """Characters (T, B) int64 → next-character logits (T, B, V)."""

    def __init__(self, vocab: int, embedding: int, hidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, embedding)
        self.lstm = nn.LSTM(embedding, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.emb(chars))[0])


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="runs", help="run store folder (default: runs)")
    parser.add_argument("--name", default=None, help="run id (default: a fresh one)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--embedding", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--record-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path, default=Path("char_lm_gradient_flow.png"),
                        help="gradient_flow figure (.png/.pdf/.svg); '' for none")  # fmt: skip
    args = parser.parse_args(argv)

    task = make("zen_chars", seq_len=args.seq_len)
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    model = CharLM(task.input_size, args.embedding, args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    def batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = task.sample(size, gen)  # one-hot (T, B, V), next characters (T, B)
        return x.argmax(-1), y

    probe_chars, probe_next = batch(16)

    def probe_loss(logits: torch.Tensor) -> torch.Tensor:
        return task.loss(logits, probe_next)

    config = {"task": "zen_chars", "seq_len": args.seq_len, "embedding": args.embedding,
              "hidden_size": args.hidden, "batch_size": args.batch, "lr": args.lr,
              "seed": args.seed}  # fmt: skip
    with gradlab.init(args.store, name=args.name, config=config) as run:
        for step in range(args.steps):
            if step % args.record_every == 0 or step == args.steps - 1:
                run.record(model, probe_chars, probe_loss, step=step, module="lstm")
            chars, target = batch(args.batch)
            loss = task.loss(model(chars), target)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            run.log({"loss": loss, "bits_per_char": loss.item() / math.log(2)}, step)
        scores = {"baseline_loss": task.baseline_loss, **run.summary()}
        run.finish({"baseline_loss": task.baseline_loss})
    print(f"{run.run_id}: loss {scores['final_loss']:.3f} nats/char over the last 10% of steps "
          f"(no-memory baseline {task.baseline_loss:.3f})")  # fmt: skip
    if str(args.figure) not in ("", "."):
        export_figure(args.store, run.run_id, args.figure)
    return scores


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
