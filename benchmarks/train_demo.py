"""Train the demo checkpoints: the mobile families on Fashion-MNIST at 32x32 (deterministic, CPU).

    .venv/bin/python benchmarks/train_demo.py [--models as_mlp_mobile,...] [--epochs 8]

Configs come from `edge_mlp.demo.DEMO_MODELS`. Writes `edge_mlp/assets/demo/NAME.safetensors`,
`NAME.json` (config, accuracy, timing) and appends per-epoch lines to `NAME.log.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from edge_mlp.data import fashion_mnist, preprocess_all
from edge_mlp.demo import DEMO_DIR, DEMO_MODELS, demo_config
from edge_mlp.models import build
from edge_mlp.preprocess import Preprocessing


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and +-2 px translation (zero-padded), per sample."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (2, 2, 2, 2), value=float(x.min()))
    dy, dx = torch.randint(0, 5, (2,), generator=gen).tolist()  # one shift per batch: cheap
    return padded[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum()) for i in range(0, len(x), 1000))
    return 100.0 * correct / len(x)


def train(name: str, epochs: int, batch: int, lr: float, seed: int, out: Path) -> dict:
    config = demo_config(name)
    pre = Preprocessing.for_model(config)
    start = time.perf_counter()
    train_set, test_set = fashion_mnist("train"), fashion_mnist("test")
    x_train = torch.from_numpy(preprocess_all(train_set.images, pre))
    y_train = torch.from_numpy(train_set.labels)
    x_test = torch.from_numpy(preprocess_all(test_set.images, pre))
    y_test = torch.from_numpy(test_set.labels)
    prep_s = time.perf_counter() - start

    torch.manual_seed(seed)
    model = build(config)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    steps = epochs * math.ceil(len(x_train) / batch)
    warmup = steps // 20
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup))))
    gen = torch.Generator().manual_seed(seed)
    log_path = out / f"{name}.log.jsonl"
    log_path.write_text("")
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(x_train), generator=gen)
        total_loss = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(model(augment(x_train[idx], gen)), y_train[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss) * len(idx)
        acc = evaluate(model, x_test, y_test)
        entry = {"epoch": epoch, "train_loss": round(total_loss / len(order), 4), "test_top1": round(acc, 2),
                 "epoch_s": round(time.perf_counter() - t0, 1)}
        history.append(entry)
        with log_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        print(name, entry, flush=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"{name}.safetensors"), metadata={"model": name})
    record = {
        "model": name,
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in DEMO_MODELS[name].items()},
        "dataset": "Fashion-MNIST (Debian dataset-fashion-mnist), train 60k / test 10k",
        "test_top1": history[-1]["test_top1"],
        "params": sum(p.numel() for p in model.parameters()),
        "epochs": epochs, "batch_size": batch, "lr": lr, "seed": seed,
        "optimizer": "AdamW wd 0.05, cosine with 5% warm-up, label smoothing 0.1, flip + translate",
        "train_s": round(time.perf_counter() - start - prep_s, 1), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "history": history,
    }
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEMO_MODELS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEMO_DIR)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        record = train(name, args.epochs, args.batch_size, args.lr, args.seed, args.out)
        print(f"{name}: test top-1 {record['test_top1']:.2f}% ({record['params']:,} params, {record['train_s']:.0f} s)")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
