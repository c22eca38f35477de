"""One process of the distributed test (tests/test_distributed.py), launched by torchrun.

It adds the test's small recipe to vitlib.train.RECIPES (a recipe is a name on the command line,
and torchrun starts fresh interpreters), keeps each process's final weights beside rank 0's
files, and runs the real command line: ``python -m vitlib.train`` with the arguments given.
"""

import json
import sys

import torch

from vitlib import train

train.RECIPES["ddp_test"] = train.Recipe(**json.loads(sys.argv[1]))
real_fit = train.fit


def fit_and_keep_weights(model, *args, **kwargs):
    history = real_fit(model, *args, **kwargs)
    rank = torch.distributed.get_rank()
    torch.save(model.state_dict(), f"{kwargs['out_dir']}/weights_rank{rank}.pt")
    return history


train.fit = fit_and_keep_weights
sys.exit(train.main(sys.argv[2:]))
