"""The training loop shared by every task: seeded epochs -> global batches -> micro-batches, validation,
checkpoints, resume and logs. A task (train.tasks) says what one micro-batch computes.

Data order: epoch e visits the items (caption pairs for CE, videos for SCST) in
``np.random.default_rng([seed, e]).permutation(num_items)``, cut into global batches of
``batch_size * grad_accum * world_size`` items (an incomplete last batch is dropped). Rank r takes the r-th
contiguous slice of a global batch, then ``grad_accum`` micro-batches of ``batch_size`` from it. A resumed run
recomputes the permutation and skips exactly the global batches already consumed.

Loss normalisation: the loss of a global batch is the *sum* of per-item losses divided by a normaliser of the
whole global batch (CE: its label tokens; SCST: its samples), the same whatever the split over processes and
micro-batches, so one process and N processes with the same global batch take the same optimizer step.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from train.distributed import DistInfo, all_gather_objects, all_reduce_sum, barrier
from train.errors import TrainingError
from train.file_utils import atomic_write_dir, write_json
from train.logger import JsonlLog, print_main, try_plot_log
from train.optim import build_optimizer, build_scheduler, group_lrs
from train.precision import autocast
from train.rng import rng_state, set_rng_state
from train.run_dir import INFO_FILE, LOG_NAME, PLOT_NAME, PROGRESS_FILE, STATE_DIR, STATE_FILE, ResumeState
from train.tasks import Task
from train.validation import Validator
from videoblip2.modeling import VideoBLIP2


@dataclasses.dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # global batches of `epoch` already consumed
    best_score: float = -math.inf  # of the run's best metric, signed so that higher is better (losses negated)
    best_step: int = -1


class Trainer:
    """Epochs of seeded permutations -> global batches -> micro-batches; eval, checkpoints, resume, logs."""

    def __init__(self, args: argparse.Namespace, task: Task, model: VideoBLIP2, dist: DistInfo,
                 validator: Validator | None, out: Path, resumed: "ResumeState | None" = None,
                 extra_info: Mapping[str, Any] | None = None, qformer_lr: float | None = None):
        self.args, self.task, self.model, self.dist, self.validator, self.out = args, task, model, dist, validator, out
        self.global_batch = args.batch_size * args.grad_accum * dist.world_size
        self.steps_per_epoch = task.num_items // self.global_batch
        if self.steps_per_epoch == 0:
            raise TrainingError(f"{task.num_items} training {task.unit} do not fill one global batch of "
                                f"{self.global_batch} (batch-size {args.batch_size} x grad-accum {args.grad_accum} "
                                f"x {dist.world_size} processes): lower --batch-size")
        self.total_steps = args.max_steps if args.max_steps else args.epochs * self.steps_per_epoch
        warmup = args.warmup_steps if args.warmup_steps is not None else int(round(args.warmup_ratio * self.total_steps))
        self.warmup_steps = warmup
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.qformer_lr = args.lr if qformer_lr is None else qformer_lr  # train.optim.resolve_qformer_lr
        self.optimizer = build_optimizer(model, args, dist.device, self.qformer_lr)
        self.scheduler = build_scheduler(self.optimizer, warmup, self.total_steps)
        self.progress = Progress()
        module = task.forward_module(model)
        if dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            module = DistributedDataParallel(module, device_ids=[dist.device.index] if dist.device.type == "cuda"
                                             else None)
        self.module = module
        self.log = JsonlLog(out / LOG_NAME, enabled=dist.is_main)
        self.extra_info = dict(extra_info or {})
        self.plotting = True  # log.png is best-effort: off after a warning when matplotlib is missing
        # best/ follows one validation metric the run names (--best-metric; default CIDEr-D); losses count lowest
        self.best_metric = getattr(args, "best_metric", None) or "val_cider"
        if validator is not None and self.best_metric not in validator.metrics:
            raise TrainingError(f"--best-metric {self.best_metric}: this run's validation reports "
                                f"{', '.join(validator.metrics)}")
        if resumed is not None:
            self._restore(resumed)

    # ------------------------------------------------------------------ resume
    def _restore(self, state: "ResumeState") -> None:
        saved = state.training["progress"]
        run = state.training["run"]
        mine = self._run_signature()
        for key in ("global_batch", "seed", "num_items", "task", "best_metric"):
            if (key in run or key != "best_metric") and run.get(key) != mine[key]:
                raise TrainingError(f"{self.out / STATE_DIR}: the saved run has {key}={run.get(key)!r}, this one "
                                    f"{mine[key]!r}; resume with the same settings or use --overwrite")
        saved_groups = [g.get("name") for g in state.training["optimizer"]["param_groups"]]
        my_groups = [g.get("name") for g in self.optimizer.param_groups]
        if len(saved_groups) != len(my_groups) or (all(saved_groups) and saved_groups != my_groups):
            raise TrainingError(f"{self.out / STATE_DIR}: the saved optimizer has parameter groups {saved_groups}, this "
                                f"run {my_groups} (--qformer-lr differs?); resume with the same settings or use "
                                "--overwrite")
        self.optimizer.load_state_dict(state.training["optimizer"])  # each group's rate and schedule position
        self.scheduler.load_state_dict(state.training["scheduler"])
        if run.get("total_steps") != self.total_steps:
            print_main(self.dist, f"warning: total steps changed from {run.get('total_steps')} to {self.total_steps}; "
                              "the learning-rate schedule keeps its saved position")
            self.scheduler = build_scheduler(self.optimizer, self.warmup_steps, self.total_steps)
            self.scheduler.last_epoch = saved["step"]
            lrs = [base * fn(saved["step"]) for base, fn in zip(self.scheduler.base_lrs, self.scheduler.lr_lambdas)]
            for group, lr in zip(self.optimizer.param_groups, lrs):
                group["lr"] = lr
            self.scheduler._last_lr = list(lrs)
        if "best_cider" in saved:  # a state written before best/ could follow another metric
            saved = {**saved, "best_score": saved.pop("best_cider")}
        self.progress = Progress(**saved)
        rng = state.training["rng"]
        if len(rng) == self.dist.world_size:
            set_rng_state(rng[self.dist.rank])
        else:
            print_main(self.dist, f"warning: the state has RNG states of {len(rng)} processes, this run has "
                              f"{self.dist.world_size}: random streams restart from rank 0's")
            set_rng_state(rng[0])
        self.log.truncate_after(self.progress.step)

    def _run_signature(self) -> dict[str, Any]:
        return {"task": self.task.name, "global_batch": self.global_batch, "seed": self.args.seed,
                "num_items": self.task.num_items, "total_steps": self.total_steps, "best_metric": self.best_metric,
                "world_size": self.dist.world_size}

    # ------------------------------------------------------------------ saving
    def _info(self, val: Mapping[str, Any] | None) -> dict[str, Any]:
        p = self.progress
        return {"task": self.task.name, "step": p.step, "epoch": p.epoch, "validation": dict(val or {}),
                **self.extra_info}

    def save(self, val: Mapping[str, Any] | None) -> None:
        """last/ then state/ (each atomic); every rank contributes its RNG state."""
        rngs = all_gather_objects(rng_state(), self.dist)
        if self.dist.is_main:
            def write_model(path: Path) -> None:
                self.model.save_pretrained(path)
                write_json(path / INFO_FILE, self._info(val))

            atomic_write_dir(self.out / "last", write_model)

            def write_state(path: Path) -> None:
                write_model(path / "model")
                torch.save({
                    "progress": dataclasses.asdict(self.progress),
                    "run": self._run_signature(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "rng": rngs,
                    "args": vars(self.args),
                }, path / STATE_FILE)
                progress = dataclasses.asdict(self.progress)
                if not math.isfinite(progress["best_score"]):
                    progress["best_score"] = None
                progress["best_metric"] = self.best_metric
                write_json(path / PROGRESS_FILE, {**progress, **self._run_signature()})

            atomic_write_dir(self.out / STATE_DIR, write_state)
            self.log.write({"type": "save", "step": self.progress.step, "epoch": self.progress.epoch,
                            "dirs": ["last", STATE_DIR]})
        barrier(self.dist)

    def save_best(self, val: Mapping[str, Any]) -> None:
        if self.dist.is_main:
            def write(path: Path) -> None:
                self.model.save_pretrained(path)
                write_json(path / INFO_FILE, self._info(val))

            atomic_write_dir(self.out / "best", write)
            self.log.write({"type": "save", "step": self.progress.step, "epoch": self.progress.epoch,
                            "dirs": ["best"], self.best_metric: val[self.best_metric]})
        barrier(self.dist)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, Any] | None:
        if self.validator is None:
            return None
        start = time.perf_counter()
        val = self.validator(self.model)
        p = self.progress
        record = {"type": "val", "step": p.step, "epoch": p.epoch, **val,
                  **({"cider_df": "validation references"} if "val_cider" in val else {}),
                  "seconds": round(time.perf_counter() - start, 3)}
        self.log.write(record)
        if self.dist.is_main:
            from tqdm.auto import tqdm

            shown = [f"{name} {val[name]:.4f}" for name in ("val_loss", "val_cider", "val_qa_accuracy") if name in val]
            if "examples" in val:
                shown.append(f"e.g. {val['examples'][0]['video_id']}: {val['examples'][0]['caption']!r}")
            if "qa_examples" in val:
                example = val["qa_examples"][0]
                shown.append(f"e.g. {example['question']!r} -> {example['answer']!r}")
            tqdm.write(f"[step {p.step}] " + "  ".join(shown))
        score = -val[self.best_metric] if self.best_metric.endswith("loss") else val[self.best_metric]
        if score > p.best_score:
            p.best_score, p.best_step = score, p.step
            self.save_best(val)
        return val

    # ------------------------------------------------------------------ training
    def fit(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        args, dist, task, p = self.args, self.dist, self.task, self.progress
        resumed = p.step > 0
        self.log.write({"type": "start", "step": p.step, "epoch": p.epoch, "resumed": resumed, "task": task.name,
                        "world_size": dist.world_size, "device": str(dist.device), "num_items": task.num_items,
                        "unit": task.unit, "global_batch": self.global_batch,
                        "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                        "warmup_steps": self.warmup_steps, "qformer_lr": self.qformer_lr, "args": vars(args)})
        print_main(dist, f"{task.name}: {task.num_items} {task.unit}, global batch {self.global_batch}, "
                     f"{self.steps_per_epoch} steps/epoch, {self.total_steps} steps, {dist.world_size} process(es) "
                     f"on {dist.device}" + (f"; resuming at step {p.step}" if resumed else ""))
        last_val = None
        if args.eval_first and not resumed:
            last_val = self.evaluate()
        if p.step >= self.total_steps:
            print_main(dist, f"{self.out}: already trained for {p.step} steps; nothing to do")
        bar = tqdm(total=self.total_steps, initial=p.step, disable=args.no_progress or not dist.is_main,
                   desc=task.name, unit="step", dynamic_ncols=True)
        per_rank = args.batch_size * args.grad_accum
        # gradient clipping: how often --max-grad-norm was hit (since the last train record, and in this session)
        clipped_since_log = steps_since_log = clipped_total = steps_total = 0
        while p.step < self.total_steps:
            if p.batch_in_epoch >= self.steps_per_epoch:
                p.epoch, p.batch_in_epoch = p.epoch + 1, 0
            order = np.random.default_rng([args.seed, p.epoch]).permutation(task.num_items)
            while p.batch_in_epoch < self.steps_per_epoch and p.step < self.total_steps:
                b = p.batch_in_epoch
                tick = time.perf_counter()
                global_indices = order[b * self.global_batch: (b + 1) * self.global_batch]
                local = global_indices[dist.rank * per_rank: (dist.rank + 1) * per_rank]
                scale = dist.world_size / task.normalizer(global_indices)
                sums: dict[str, list[float]] = {}
                self.optimizer.zero_grad(set_to_none=True)
                for m in range(args.grad_accum):
                    micro = local[m * args.batch_size: (m + 1) * args.batch_size]
                    sync = (m == args.grad_accum - 1) or not dist.distributed
                    with contextlib.nullcontext() if sync else self.module.no_sync():
                        with autocast(dist.device, args.precision):
                            out = task.micro_step(self.module, self.model, micro)
                        (out.loss_sum * scale).backward()
                    for key, (value, weight) in out.metrics.items():
                        acc = sums.setdefault(key, [0.0, 0.0])
                        acc[0] += value
                        acc[1] += weight
                grad_norm = (torch.nn.utils.clip_grad_norm_(self.params, args.max_grad_norm)
                             if args.max_grad_norm > 0 else total_grad_norm(self.params))
                clipped = bool(args.max_grad_norm > 0 and float(grad_norm) > args.max_grad_norm)
                clipped_since_log += clipped
                clipped_total += clipped
                steps_since_log += 1
                steps_total += 1
                lrs = group_lrs(self.optimizer)
                lr = lrs["lr"]
                self.optimizer.step()
                self.scheduler.step()
                p.step += 1
                p.batch_in_epoch += 1
                rate = self.global_batch / max(time.perf_counter() - tick, 1e-9)
                end_of_epoch = p.batch_in_epoch == self.steps_per_epoch
                final = p.step == self.total_steps
                if p.step % args.log_every == 0 or p.step == 1 or final:
                    keys = sorted(sums)
                    reduced = all_reduce_sum(np.array([v for k in keys for v in sums[k]]), dist)
                    metrics = {k: float(reduced[2 * i] / reduced[2 * i + 1]) if reduced[2 * i + 1] else float("nan")
                               for i, k in enumerate(keys)}
                    metrics = task.finalize_metrics(metrics)
                    record = {"type": "train", "step": p.step, "epoch": p.epoch, **metrics, **lrs,
                              "grad_norm": float(grad_norm), "clipped_frac": clipped_since_log / steps_since_log,
                              f"{task.unit}_per_s": round(rate, 2)}
                    clipped_since_log = steps_since_log = 0
                    self.log.write(record)
                    bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4f}", lr=f"{lr:.2e}",
                                    **{f"{task.unit}/s": f"{rate:.1f}"})
                bar.update(1)
                val = None
                if (args.eval_every and p.step % args.eval_every == 0) or end_of_epoch or final:
                    val = last_val = self.evaluate()
                if (args.save_every and p.step % args.save_every == 0) or end_of_epoch or final:
                    self.save(val if val is not None else last_val)
                if (end_of_epoch or final) and dist.is_main and self.plotting:
                    self.plotting = try_plot_log(self.out / LOG_NAME, self.out / PLOT_NAME, task.plot_keys)
        bar.close()
        if steps_total and args.max_grad_norm > 0:
            print_main(dist, f"gradient clipped (norm > --max-grad-norm {args.max_grad_norm:g}) in {clipped_total} of "
                             f"{steps_total} steps ({clipped_total / steps_total:.0%})")
        best = -p.best_score if self.best_metric.endswith("loss") else p.best_score
        summary = {"out": str(self.out), "step": p.step, "epoch": p.epoch, "clipped_steps": clipped_total,
                   f"best_{self.best_metric}": best,
                   "best_metric": self.best_metric, "best_step": p.best_step, "last_validation": last_val}
        print_main(dist, self._summary_line())
        return summary


    def _summary_line(self) -> str:
        """The final line; it names only the model directories that exist (no validation: no best/)."""
        p = self.progress
        saved = [str(self.out / name) for name in ("best", "last") if (self.out / name).is_dir()]
        text = f"done: step {p.step}"
        if math.isfinite(p.best_score):
            best = -p.best_score if self.best_metric.endswith("loss") else p.best_score
            text += f", best {self.best_metric} {best:.4f} at step {p.best_step}"
        return text + (f"; models in {' and '.join(saved)}" if saved else "; no model saved")


def total_grad_norm(params: Sequence[nn.Parameter]) -> torch.Tensor:
    norms = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.tensor(0.0)
