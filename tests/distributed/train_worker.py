"""One process of the distributed test (tests/test_distributed.py), launched by torchrun.

It adds the test's small recipe to vitlib.train.RECIPES (a recipe is a name on the command line,
and torchrun starts fresh interpreters), keeps each process's final weights beside rank 0's
files, notes which rank writes each checkpoint and history, stops after epoch STOP_AFTER_EPOCH
when that is set (an interruption), and runs the real command line: ``python -m vitlib.train``
with the arguments given.
"""

import json
import os
import sys
from pathlib import Path

import torch

from vitlib import train

train.RECIPES["ddp_test"] = train.Recipe(**json.loads(sys.argv[1]))
real_fit, real_save, real_write, real_epoch = train.fit, train.save_checkpoint, train.write_json, train.train_one_epoch
epochs_run = []


def note_writer(path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(Path(path).parent / "writers.txt", "a") as log:
        log.write(f"{torch.distributed.get_rank()} {Path(path).name}\n")


def save_and_note(path, state):
    note_writer(path)
    return real_save(path, state)


def write_and_note(path, payload):
    note_writer(path)
    return real_write(path, payload)


def epoch_or_stop(*args, **kwargs):
    if len(epochs_run) == int(os.environ.get("STOP_AFTER_EPOCH", "0")) > 0:
        raise KeyboardInterrupt  # killed during the next epoch
    epochs_run.append(1)
    return real_epoch(*args, **kwargs)


def fit_and_keep_weights(model, *args, **kwargs):
    history = real_fit(model, *args, **kwargs)
    rank = torch.distributed.get_rank()
    torch.save(model.state_dict(), f"{kwargs['out_dir']}/weights_rank{rank}.pt")
    return history


train.fit, train.save_checkpoint, train.write_json = fit_and_keep_weights, save_and_note, write_and_note
train.train_one_epoch = epoch_or_stop
sys.exit(train.main(sys.argv[2:]))
