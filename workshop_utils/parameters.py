"""The settings the runner passes to the lessons: their names, as written in each notebook's ``parameters`` cell.

Declared once here; ``python -m workshop_utils run`` maps its options onto these names, and a test checks
every lesson's tagged cell against this declaration. A lesson's own settings (``DROPOUT``, ``AUGMENTED_PASSES``,
...) sit in the same tagged cell, after these.
"""
from __future__ import annotations

#: name -> what it means. A lesson declares those it uses, with its own default.
RUNNER_PARAMETERS: dict[str, str] = {
    "DATA_DIR": 'the dataset: None (fetched on first use), the folder of your own copy, or "synthetic"',
    "QUICK": "True: a small subset, small images and 2 epochs; a smoke test of the code, not a result",
    "IMAGE_SIZE": "images are resized to IMAGE_SIZE x IMAGE_SIZE pixels",
    "EPOCHS": "the most epochs to train; early stopping on validation usually ends sooner",
    "WEIGHTS": '"imagenet", the path of a local VGG16 weights file, or None (random weights)',
    "PRECISION": '"float32", or "mixed_float16" / "mixed_bfloat16" on GPUs with 16-bit units',
    "SEED": "one seed for the split, the initial weights, the augmentation and the shuffling",
    "RUN_DIR": "the run folder: every lesson records its test metrics in RUN_DIR/results.json and saves its "
               "model in RUN_DIR/models/ (for `python -m workshop_utils predict`)",
}

#: What QUICK = True changes: a smoke test of every line of a lesson in about a minute on a laptop CPU.
#: The subsets keep whole patients and the class ratio of the full splits.
QUICK_PRESET: dict[str, int] = {"IMAGE_SIZE": 64, "EPOCHS": 2, "TRAIN_IMAGES": 320, "TEST_IMAGES": 160}
