"""The shipped checkpoint: it loads, it is the `best` recipe's model, and its accuracy is real."""

import pytest
import torch

from vitlib.cnn import SmallCNN
from vitlib.data import DigitBatch, mnist_tensors
from vitlib.pretrained import load_pretrained, pretrained_info
from vitlib.train import RECIPES, Recipe, evaluate


def test_shipped_model_is_the_best_recipes():
    model = load_pretrained()
    info = pretrained_info()
    assert not model.training
    assert model.config == RECIPES["best"].model_config()
    assert Recipe(**info["recipe"]) == RECIPES["best"]  # fields added since it was trained take their defaults
    assert len(info["history"]) == info["summary"]["epochs"] == RECIPES["best"].epochs
    assert info["summary"]["command"].startswith("python -m vitlib.train --preset best")


def test_shipped_accuracy_is_what_the_model_scores(data_root):
    model = load_pretrained()
    loader = torch.utils.data.DataLoader(mnist_tensors(False, data_root), batch_size=1000, collate_fn=DigitBatch())
    result = evaluate(model, loader)
    assert result["acc"] == pytest.approx(pretrained_info()["summary"]["test_acc"], abs=1e-4)
    assert result["acc"] >= 0.99


def test_shipped_teacher_is_the_teacher_recipes_cnn_and_scores_what_it_says(data_root):
    teacher = load_pretrained("mnist_teacher")
    info = pretrained_info("mnist_teacher")
    assert isinstance(teacher, SmallCNN) and not teacher.training
    assert Recipe(**info["recipe"]) == RECIPES["teacher"]
    assert len(info["history"]) == info["summary"]["epochs"] == RECIPES["teacher"].epochs
    loader = torch.utils.data.DataLoader(mnist_tensors(False, data_root), batch_size=1000, collate_fn=DigitBatch())
    result = evaluate(teacher, loader)
    assert result["acc"] == pytest.approx(info["summary"]["test_acc"], abs=1e-4)


def test_unknown_pretrained_name_is_refused():
    with pytest.raises(ValueError, match="unknown pretrained model 'imagenet'"):
        load_pretrained("imagenet")
