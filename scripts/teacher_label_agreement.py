"""How often the shipped CNN teacher's hard label differs from the true label on MNIST's 60,000
training digits, as they are and as the training recipes move them (``RandomAffineBatch``).

    python scripts/teacher_label_agreement.py > results/distilled_best/teacher_labels.json

Hard-label distillation trains the distillation head on these labels: where they equal the true
labels, the teacher teaches nothing the true labels do not. Prints one JSON object.
"""

import json

import torch

from vitlib import load_pretrained
from vitlib.data import RandomAffineBatch, mnist_tensors, normalize


def main() -> None:
    torch.manual_seed(0)
    teacher = load_pretrained("mnist_teacher").eval()
    images, labels = mnist_tensors(train=True).tensors  # (60000, 1, 28, 28) in [0, 1], (60000,)
    move = RandomAffineBatch()
    differ = {"as_they_are": 0, "moved": 0}
    with torch.no_grad():
        for start in range(0, len(images), 1000):
            batch, truth = images[start : start + 1000], labels[start : start + 1000]
            differ["as_they_are"] += (teacher(normalize(batch)).argmax(-1) != truth).sum().item()
            differ["moved"] += (teacher(normalize(move(batch))).argmax(-1) != truth).sum().item()
    print(json.dumps({"training_digits": len(images), "teacher_label_differs": differ,
                      "moved_by": "RandomAffineBatch() defaults, seed 0"}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
