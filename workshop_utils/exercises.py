"""The exercises' checks: each takes the attendee's answer and says what is right, or what to look at.

A check prints its feedback and returns True for a right answer; for an answer that is not right yet it raises
:class:`NotYet` with the feedback; for no answer (``None``) it prints how to start and returns False. In the
student copies (``python -m workshop_utils student``) each answer cell starts blank and raises :class:`YourTurn`.
Keras is imported only by the checks that build or run a model.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


class YourTurn(Exception):
    """Raised by a blank answer cell of a student copy: the attendee writes the answer there."""

    def __init__(self, exercise: str) -> None:
        super().__init__(f"Exercise {exercise} is yours: replace this `raise` line with your answer and run the cell, "
                         "then run the check cell below it. (The worked solution is in the same lesson in "
                         "notebooks/, the instructor's copy.)")


class NotYet(AssertionError):
    """An answer that is not right yet; the message says what to look at."""


def _right(exercise: str, message: str) -> bool:
    print(f"Exercise {exercise}: right. {message}")
    return True


def _not_yet(exercise: str, message: str) -> NotYet:
    return NotYet(f"Exercise {exercise}, not yet: {message}")


def _unanswered(exercise: str, what: str) -> bool:
    print(f"Exercise {exercise}: no answer yet. {what}")
    return False


def _number(exercise: str, value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _not_yet(exercise, f"{name} should be a number, not {type(value).__name__} {value!r}.") from None
    if not math.isfinite(number):
        raise _not_yet(exercise, f"{name} is {number}: the computation went wrong somewhere.")
    return number


# --------------------------------------------------------------------------- lesson 1

def check_shared_test_ids(my_fraction, train_groups, test_names: list[str], patient_of: Callable[[str], str]) -> bool:
    """1.1: the fraction of test images whose patient id (by the lesson's rule) also appears in train."""
    if my_fraction is None:
        return _unanswered("1.1", "Set my_fraction to the share of test images whose patient id is also a train id.")
    value = _number("1.1", my_fraction, "my_fraction")
    known = set(train_groups)
    expected = float(np.mean([patient_of(name.split("/")[-1]) in known for name in test_names]))
    if abs(value - expected) > 0.005:
        raise _not_yet("1.1", f"{value:.3f}, expected {expected:.3f}: apply patient_of to the file name of each test "
                       "image (data.test.names hold 'test/CLASS/file.jpeg') and test membership in the set of "
                       "training ids.")
    return _right("1.1", f"{expected:.1%} of the test images carry an id that also occurs in train. The dataset's "
                  "authors report test patients distinct from training ones, so these look like reused numbers, not "
                  "the same children: one more reason why the lessons use the ids only to split within train.")


# --------------------------------------------------------------------------- lesson 2

def check_head(my_head, feature_shape: tuple[int, ...]) -> bool:
    """2.1: Flatten + Dense(2, softmax) on the frozen features."""
    import keras

    if my_head is None:
        return _unanswered("2.1", "Build my_head = keras.Sequential([keras.Input(...), layers.Flatten(), ...]).")
    if not isinstance(my_head, keras.Model):
        raise _not_yet("2.1", f"my_head is a {type(my_head).__name__}; build it with keras.Sequential([...]).")
    wanted = tuple(int(d) for d in feature_shape)
    got = tuple(my_head.input_shape[1:])
    if got != wanted:
        raise _not_yet("2.1", f"the head takes inputs of shape {got}, but the features have shape {wanted}: start "
                       "with keras.Input(feats.train.shape[1:]).")
    outputs = my_head.output_shape[-1]
    if outputs != 2:
        raise _not_yet("2.1", f"the head ends with {outputs} unit(s). The lessons use 2 units with a softmax, one "
                       "probability per class, and integer labels 0/1 (sparse categorical cross-entropy).")
    last = my_head.layers[-1]
    if getattr(last, "activation", None) is not keras.activations.softmax:
        raise _not_yet("2.1", "the last layer should use activation=\"softmax\", so that the two outputs are "
                       "probabilities that sum to 1.")
    n_features = int(np.prod(wanted))
    expected = n_features * 2 + 2
    trainable = sum(int(np.prod(w.shape)) for w in my_head.trainable_weights)
    if trainable != expected:
        raise _not_yet("2.1", f"the head has {trainable:,} trainable parameters, expected {expected:,}: a Flatten "
                       "and one Dense(2), nothing in between.")
    return _right("2.1", f"{trainable:,} trainable parameters = {n_features:,} features x 2 classes + 2 biases. "
                  "VGG16's 14.7 million weights stay frozen.")


_MISSED = {"sensitivity", "recall", "true positive rate", "tpr", "pneumonia recall"}
_OTHER_METRICS = {
    "specificity": "specificity falls with false alarms (a NORMAL image called PNEUMONIA), not with misses.",
    "accuracy": "accuracy mixes both kinds of error, and with 62.5% pneumonia in test a model that misses some "
                "can still score well.",
    "precision": "precision falls with false alarms: of the images called PNEUMONIA, how many were.",
    "f1": "F1 mixes sensitivity and precision; one of them is the answer.",
    "auc": "ROC-AUC measures the ranking over all thresholds, not the misses at the threshold you use.",
}


def check_missed_pneumonia_metric(my_metric, result: dict) -> bool:
    """2.2: the metric that falls when pneumonia is missed."""
    if my_metric is None:
        return _unanswered("2.2", "Set my_metric to the name of a metric, e.g. \"accuracy\".")
    name = str(my_metric).strip().lower()
    if name in _MISSED:
        value = result["sensitivity"]["value"]
        return _right("2.2", f"sensitivity = TP / (TP + FN): each missed pneumonia is a false negative. This model "
                      f"finds {value:.1%} of the pneumonia cases on test; lesson 8 picks a threshold for a target "
                      "sensitivity.")
    hint = _OTHER_METRICS.get(name, f"{my_metric!r} is not one of the metrics printed above.")
    raise _not_yet("2.2", hint)


def check_learning_rates(my_val_losses, lesson_val_loss: float, lesson_rate: float) -> bool:
    """2.3: best validation losses for learning rates 1e-3 and 1e-5."""
    if my_val_losses is None:
        return _unanswered("2.3", "Fill my_val_losses = {1e-3: ..., 1e-5: ...} with each run's best val_loss.")
    if not isinstance(my_val_losses, dict) or set(my_val_losses) != {1e-3, 1e-5}:
        raise _not_yet("2.3", "my_val_losses should be a dict with exactly the keys 1e-3 and 1e-5.")
    losses = {rate: _number("2.3", loss, f"my_val_losses[{rate}]") for rate, loss in my_val_losses.items()}
    losses[lesson_rate] = float(lesson_val_loss)
    best = min(losses, key=losses.get)
    table = ", ".join(f"{rate:g}: {loss:.4f}" for rate, loss in sorted(losses.items()))
    return _right("2.3", f"best validation loss per learning rate: {table}. On validation, {best:g} wins. Too low a "
                  "rate may simply need more epochs; too high a rate makes the validation loss jump. This choice "
                  "is made on validation only: the test split played no part.")


def check_contrast(my_contrast_auc, contrast: dict, contrast_images: int) -> bool:
    """2.4: validation AUC of the same head on loaded and on random features, for 50 and CONTRAST_IMAGES images."""
    if my_contrast_auc is None:
        return _unanswered("2.4", "Fill my_contrast_auc = {50: (loaded_auc, random_auc), CONTRAST_IMAGES: (...)}.")
    if not isinstance(my_contrast_auc, dict) or set(my_contrast_auc) != {50, contrast_images}:
        raise _not_yet("2.4", f"my_contrast_auc should be a dict with exactly the keys 50 and {contrast_images}.")
    pairs = {}
    for n, pair in my_contrast_auc.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise _not_yet("2.4", f"my_contrast_auc[{n}] should be a pair (loaded_auc, random_auc).")
        pairs[n] = tuple(_number("2.4", v, f"my_contrast_auc[{n}]") for v in pair)
        if not all(0 <= v <= 1 for v in pairs[n]):
            raise _not_yet("2.4", f"an AUC is between 0 and 1, not {pairs[n]}.")
    loaded, random = (contrast[k]["auc"] for k in contrast)
    if max(abs(pairs[contrast_images][0] - loaded), abs(pairs[contrast_images][1] - random)) > 0.02:
        raise _not_yet("2.4", f"with {contrast_images} images the lesson measured {loaded:.3f} (loaded) and "
                       f"{random:.3f} (random), you have {pairs[contrast_images]}: train each head as the lesson "
                       "does (same head, learning rate, early stopping, validation split).")
    shown = "; ".join(f"{n} images: loaded {pairs[n][0]:.3f}, random {pairs[n][1]:.3f}" for n in sorted(pairs))
    return _right("2.4", f"validation AUC, {shown}. Pretrained features matter most when labels are few; AUC only "
                  "ranks the images, so compare the validation loss and specificity above too. With random weights "
                  "in WEIGHTS both heads see random features and the difference means nothing.")


# --------------------------------------------------------------------------- lesson 3

def check_class_weight(my_class_weight, n_normal: int, n_pneumonia: int) -> bool:
    """3.1: balanced class weights as the dict Keras applies."""
    if my_class_weight is None:
        return _unanswered("3.1", "Set my_class_weight = {0: ..., 1: ...}.")
    if not isinstance(my_class_weight, dict):
        raise _not_yet("3.1", f"my_class_weight is a {type(my_class_weight).__name__}. Keras applies only a dict "
                       "{class_index: weight}: the original workshop passed scikit-learn's array, which Keras 2.2 "
                       "silently ignored (and Keras 3 refuses).")
    if set(my_class_weight) != {0, 1}:
        raise _not_yet("3.1", f"the keys are {sorted(my_class_weight, key=str)}; use the class indices 0 (NORMAL) "
                       "and 1 (PNEUMONIA), the labels the model is trained on.")
    total = n_normal + n_pneumonia
    expected = {0: total / (2 * n_normal), 1: total / (2 * n_pneumonia)}
    got = {k: _number("3.1", v, f"my_class_weight[{k}]") for k, v in my_class_weight.items()}
    if all(math.isclose(got[k], expected[k], rel_tol=1e-3) for k in (0, 1)):
        return _right("3.1", f"NORMAL {expected[0]:.3f}, PNEUMONIA {expected[1]:.3f}: each class now adds the same "
                      f"total to the loss ({n_normal} x {expected[0]:.3f} = {n_pneumonia} x {expected[1]:.3f} = "
                      f"{total / 2:.0f}).")
    if all(math.isclose(got[k], expected[1 - k], rel_tol=1e-3) for k in (0, 1)):
        raise _not_yet("3.1", "the weights are swapped: the rarer class (NORMAL, index 0) must weigh more.")
    raise _not_yet("3.1", f"expected {{0: {expected[0]:.3f}, 1: {expected[1]:.3f}}}: a class's weight is "
                   "n_images / (2 * n_images_in_class).")


def check_oversampling(my_x, my_y, my_specificity, weighted_specificity: float) -> bool:
    """3.2: NORMAL rows repeated until the classes balance, and the resulting validation specificity."""
    if my_x is None or my_y is None or my_specificity is None:
        return _unanswered("3.2", "Build my_x and my_y (NORMAL rows repeated), train, set my_specificity.")
    my_y = np.asarray(my_y)
    if len(my_x) != len(my_y):
        raise _not_yet("3.2", f"my_x has {len(my_x)} rows but my_y {len(my_y)}: repeat the same rows in both.")
    counts = np.bincount(my_y.astype(int), minlength=2)
    if min(counts) == 0 or not 0.75 <= counts[0] / counts[1] <= 1.33:
        raise _not_yet("3.2", f"the classes are {counts[0]} NORMAL vs {counts[1]} PNEUMONIA; repeat the NORMAL rows "
                       "until the counts are about equal.")
    value = _number("3.2", my_specificity, "my_specificity")
    if not 0 <= value <= 1:
        raise _not_yet("3.2", f"a specificity is between 0 and 1, not {value}.")
    return _right("3.2", f"{counts[0]} NORMAL vs {counts[1]} PNEUMONIA rows. Validation specificity: oversampled "
                  f"{value:.3f}, class-weighted {weighted_specificity:.3f}. Both balance the loss; oversampling "
                  "shows the same NORMAL images several times per epoch, which can overfit them faster.")


# --------------------------------------------------------------------------- lesson 4

def check_parameter_count(my_count, head) -> bool:
    """4.1: the regularised head's parameters, counted by hand."""
    if my_count is None:
        return _unanswered("4.1", "Write my_count as a sum: hidden Dense + BatchNormalization + output Dense.")
    value = int(_number("4.1", my_count, "my_count"))
    expected = head.count_params()
    trainable = sum(int(np.prod(w.shape)) for w in head.trainable_weights)
    if value == expected:
        return _right("4.1", f"{expected:,} parameters, of which {expected - trainable:,} are not trained: "
                      "BatchNormalization's moving mean and variance, updated from batch statistics rather than "
                      "by gradients.")
    if value == trainable:
        raise _not_yet("4.1", f"{value:,} counts the trainable ones only; count_params() also counts "
                       "BatchNormalization's moving mean and variance (4 numbers per unit in all).")
    raise _not_yet("4.1", f"{value:,}, expected {expected:,} (off by {expected - value:+,}). Dense: inputs x units + "
                   "units biases; BatchNormalization: 4 per unit; output: units x 2 + 2.")


def check_dropout_comparison(my_val_loss, lesson_val_losses: list[float]) -> bool:
    """4.2: best validation loss with Dropout(0.2), against the lesson's head."""
    if my_val_loss is None:
        return _unanswered("4.2", "Train the Dropout(0.2) head and set my_val_loss to its best val_loss.")
    value = _number("4.2", my_val_loss, "my_val_loss")
    best = min(lesson_val_losses)
    compared = f"best validation loss: Dropout(0.2) {value:.4f}, this lesson's head {best:.4f} ({value - best:+.4f})."
    if len(lesson_val_losses) < 4:
        return _right("4.2", compared + " With so few epochs (QUICK mode?) the noise between epochs cannot be "
                      "judged: run the full lesson before drawing a conclusion.")
    noise = float(np.median(np.abs(np.diff(lesson_val_losses[-6:]))))
    verdict = "larger than" if abs(value - best) > noise else "within"
    return _right("4.2", compared + f" The difference is {verdict} the epoch-to-epoch noise of the curve above "
                  f"(~{noise:.4f}); a difference inside the noise is not evidence for either rate.")


def check_overfitting_gaps(my_gaps, plain_history: dict | None, regularised_history: dict) -> bool:
    """4.3: validation minus training loss at the kept epoch, for a plain and the regularised head."""
    if my_gaps is None:
        return _unanswered("4.3", "Train the plain head and set my_gaps = {\"plain\": ..., \"regularised\": ...}.")
    if not isinstance(my_gaps, dict) or set(my_gaps) != {"plain", "regularised"}:
        raise _not_yet("4.3", "my_gaps should be a dict with the keys \"plain\" and \"regularised\".")
    expected = {}
    for name, hist in (("plain", plain_history), ("regularised", regularised_history)):
        if hist is None:
            continue
        best = int(np.argmin(hist["val_loss"]))
        expected[name] = hist["val_loss"][best] - hist["loss"][best]
    for name, value in my_gaps.items():
        got = _number("4.3", value, f"my_gaps[{name!r}]")
        if name in expected and not math.isclose(got, expected[name], rel_tol=1e-3, abs_tol=1e-6):
            raise _not_yet("4.3", f"my_gaps[{name!r}] is {got:.4f}, but that head's curves give {expected[name]:.4f}: "
                           "take val_loss - loss at the epoch with the lowest val_loss.")
    larger = max(my_gaps, key=my_gaps.get)
    return _right("4.3", f"gap at the kept epoch: plain {my_gaps['plain']:+.4f}, regularised "
                  f"{my_gaps['regularised']:+.4f}. The {larger} head's validation loss sits further above its "
                  "training loss. Note that Dropout also raises the training loss (it is measured with units "
                  "dropped), so part of a smaller gap is that, not better generalisation: compare the validation "
                  "losses themselves too.")


# --------------------------------------------------------------------------- lesson 5

def _layers_of(pipeline) -> list:
    found = []
    for layer in getattr(pipeline, "layers", []):
        found.append(layer)
        found += _layers_of(layer)
    return found


def check_flip(my_augment, my_explanation, examples: np.ndarray) -> bool:
    """5.1: a pipeline with a horizontal flip, and why a flipped chest X-ray is a doubtful example."""
    import keras

    if my_augment is None or my_explanation is None:
        return _unanswered("5.1", "Build my_augment with layers.RandomFlip(\"horizontal\") and write my_explanation.")
    flips = [layer for layer in _layers_of(my_augment) if isinstance(layer, keras.layers.RandomFlip)]
    if not flips or not any("horizontal" in str(layer.mode) for layer in flips):
        raise _not_yet("5.1", "my_augment has no RandomFlip(\"horizontal\") layer.")
    out = keras.ops.convert_to_numpy(my_augment(examples, training=False))
    if not np.allclose(out, examples):
        raise _not_yet("5.1", "at inference (training=False) the pipeline should leave images unchanged.")
    words = str(my_explanation).lower()
    clues = ("heart", "left", "right", "lateral", "situs", "marker", "anatom", "side")
    if len(words.split()) < 6 or not any(clue in words for clue in clues):
        raise _not_yet("5.1", "say what a flip changes in a chest X-ray: where is the heart, what do the L/R markers "
                       "say?")
    return _right("5.1", "a flip swaps left and right: the heart, the stomach bubble and the side markers move to "
                  "the wrong side. Flips can still act as regularisation, but they teach the model that laterality "
                  "does not matter.")


def check_exposure(my_exposure, examples: np.ndarray) -> bool:
    """5.2: brightness and contrast changes, active in training only, values kept in 0-255."""
    import keras

    if my_exposure is None:
        return _unanswered("5.2", "Build my_exposure = keras.Sequential([layers.RandomBrightness(...), ...]).")
    kinds = {type(layer).__name__ for layer in _layers_of(my_exposure)}
    if "RandomBrightness" not in kinds:
        raise _not_yet("5.2", "my_exposure has no layers.RandomBrightness.")
    calm = keras.ops.convert_to_numpy(my_exposure(examples, training=False))
    if not np.allclose(calm, examples):
        raise _not_yet("5.2", "at inference (training=False) the pipeline should leave images unchanged.")
    busy = keras.ops.convert_to_numpy(my_exposure(examples, training=True))
    if np.allclose(busy, examples):
        raise _not_yet("5.2", "in training (training=True) the images did not change: check the factors.")
    if busy.min() < -1e-3 or busy.max() > 255 + 1e-3:
        raise _not_yet("5.2", f"values went to {busy.min():.0f}...{busy.max():.0f}: give the layers "
                       "value_range=(0, 255), the range of our images.")
    return _right("5.2", "unchanged at inference, new brightness and contrast at every training step, values kept "
                  "in 0-255.")


# --------------------------------------------------------------------------- lesson 6

def check_conv_block_count(my_count, conv_block: Callable) -> bool:
    """6.1: parameters of conv_block(32) after 16 channels."""
    import keras

    if my_count is None:
        return _unanswered("6.1", "Write my_count: the convolution's weights plus the normalisation layer's numbers per channel.")
    value = int(_number("6.1", my_count, "my_count"))
    expected = keras.Sequential([keras.Input((8, 8, 16)), *conv_block(32)]).count_params()
    kernel = 3 * 3 * 16 * 32
    per_channel = (expected - kernel) // 32
    if value == expected:
        return _right("6.1", f"{expected:,} = 3 x 3 x 16 x 32 kernel weights + {per_channel} x 32 for the "
                      "normalisation layer (no bias: the normalisation's offset does that job).")
    raise _not_yet("6.1", f"{value:,}, expected {expected:,}: a 3x3 kernel sees all 16 input channels, for each "
                   f"of the 32 filters; add the normalisation's {per_channel} numbers per filter.")


def check_stem_size(my_size, model) -> bool:
    """6.2: the feature map size after the stem (the model's first pooling layer)."""
    import keras

    if my_size is None:
        return _unanswered("6.2", "Compute my_size with integer division (// and -(-a // b) for rounding up).")
    value = int(_number("6.2", my_size, "my_size"))
    pool = next(layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D))
    expected = int(pool.output.shape[1])
    if value == expected:
        return _right("6.2", f"{expected} x {expected} after the stem: the next convolutions work on "
                      f"{expected * expected:,} positions, a sixteenth of the working size's.")
    raise _not_yet("6.2", f"{value}, but the model's first pooling layer outputs {expected} x {expected}: stride 2 "
                   "with 'same' padding gives ceil(size / 2), then 2x2 pooling floor(... / 2).")


def largest_rise(losses: list[float]) -> float:
    """The largest increase of a loss from one epoch to the next (0 when it never rises)."""
    return max(0.0, float(np.max(np.diff(np.asarray(losses, dtype=float))))) if len(losses) > 1 else 0.0


def check_batchnorm_jumps(my_val_losses, lesson_val_losses: list[float]) -> bool:
    """6.3: the BatchNormalization network's validation losses per epoch, against the lesson's."""
    if my_val_losses is None:
        return _unanswered("6.3", "Train the BatchNormalization version and set my_val_losses to its val_loss list.")
    try:
        losses = [float(v) for v in my_val_losses]
    except (TypeError, ValueError):
        raise _not_yet("6.3", "my_val_losses should be the list of validation losses, one per epoch "
                       "(history.history[\"val_loss\"]).") from None
    if len(losses) != len(lesson_val_losses):
        raise _not_yet("6.3", f"{len(losses)} epochs, but the lesson trained {len(lesson_val_losses)}: use the same "
                       "recipe (epochs=lesson.epochs).")
    mine, lessons = largest_rise(losses), largest_rise(lesson_val_losses)
    compared = (f"largest rise of the validation loss from one epoch to the next: BatchNormalization {mine:.3f}, "
                f"GroupNormalization {lessons:.3f}.")
    if len(losses) < 4:
        return _right("6.3", compared + " With so few epochs (QUICK mode?) this says little: run it at full settings.")
    return _right("6.3", compared + " In inference mode BatchNormalization uses running averages of batch "
                  "statistics that lag behind the weights: the recipe's log traced the first version's jumps (0.18 "
                  "to 3.45 in one epoch) to this, not to the learning rate. Under this recipe, "
                  "moving average of the weights included, the BatchNormalization network's rises stay small too "
                  "(measured at full settings, seed 42, on a 2-core CPU: 0.014 against 0.001): the recipe hides "
                  "most of the effect, GroupNormalization removes its cause.")


# --------------------------------------------------------------------------- lesson 7

def check_unfrozen_blocks(my_trainable, base) -> bool:
    """7.1: parameters that become trainable when blocks 4 and 5 are unfrozen."""
    if my_trainable is None:
        return _unanswered("7.1", "Sum the parameters of block4_conv1..3 and block5_conv1..3.")
    value = int(_number("7.1", my_trainable, "my_trainable"))
    per_block = {b: sum(base.get_layer(f"block{b}_conv{c}").count_params() for c in (1, 2, 3)) for b in (4, 5)}
    expected = per_block[4] + per_block[5]
    if value == expected:
        return _right("7.1", f"{expected:,} parameters (block 4: {per_block[4]:,}, block 5: {per_block[5]:,}), "
                      f"{expected / base.count_params():.0%} of VGG16. More to adapt, more to overfit, and on a CPU "
                      "each epoch also runs block 4 backwards.")
    if value == per_block[5]:
        raise _not_yet("7.1", f"{value:,} is block 5 alone; add block 4's three convolutions.")
    raise _not_yet("7.1", f"{value:,}, expected {expected:,}: block4_conv1..3 and block5_conv1..3, weights and "
                   "biases (layer.count_params()).")


def check_recompile(my_weights_moved) -> bool:
    """7.2: unfreezing without compiling again leaves the weights where they were."""
    if my_weights_moved is None:
        return _unanswered("7.2", "Run the experiment and set my_weights_moved to True or False.")
    if my_weights_moved is False:
        return _right("7.2", "the weights did not move: Keras builds its training step with the variables that were "
                      "trainable at compile(). On TensorFlow the second fit ran and silently trained nothing new; "
                      "on JAX it refused. After changing trainable, always compile again.")
    raise _not_yet("7.2", "Keras 3 trains the variables that were trainable at compile(): without compiling again "
                   "the unfrozen layer should not move. Did the experiment compile after setting trainable = True?")


# --------------------------------------------------------------------------- lesson 8

def check_threshold(my_threshold, labels: np.ndarray, prob: np.ndarray, target: float) -> bool:
    """8.1: the largest threshold that reaches ``target`` sensitivity on validation."""
    from sklearn.metrics import roc_curve

    if my_threshold is None:
        return _unanswered("8.1", "Use roc_curve on the validation split, as for TARGET_SENSITIVITY above.")
    value = _number("8.1", my_threshold, "my_threshold")
    labels, prob = np.asarray(labels), np.asarray(prob)
    _fpr, tpr, thresholds = roc_curve(labels, prob)
    expected = float(thresholds[np.argmax(tpr >= target)])
    found = float(np.mean(prob[labels == 1] >= value))
    specificity = float(np.mean(prob[labels == 0] < value))
    if found < target:
        raise _not_yet("8.1", f"at {value:.4f} the model finds {found:.1%} of the validation pneumonia cases, less than "
                       f"{target:.0%}: lower the threshold.")
    if value < expected - 1e-9:
        raise _not_yet("8.1", f"{value:.4f} reaches the target, but so does the larger {expected:.4f}, which costs "
                       "less specificity: take the largest threshold that reaches it.")
    return _right("8.1", f"threshold {value:.4f}: {found:.1%} of the validation pneumonia cases found, specificity "
                  f"{specificity:.1%} left. Test, with its shift, will not give exactly the same.")


def check_other_base(my_val_auc, vgg16_val_auc: float) -> bool:
    """8.2: the validation ROC-AUC of a head on MobileNetV2 features."""
    if my_val_auc is None:
        return _unanswered("8.2", "Train the head on MobileNetV2 features and set my_val_auc.")
    value = _number("8.2", my_val_auc, "my_val_auc")
    if not 0 <= value <= 1:
        raise _not_yet("8.2", f"a ROC-AUC is between 0 and 1, not {value}.")
    chance = (" That is no better than chance: with random weights (WEIGHTS = None) a base's features may carry "
              "next to nothing, and in QUICK mode there is little to learn from; if you used ImageNet weights, check "
              "that the rows and labels match (data.train_idx / data.val_idx on features of data.pool).")
    return _right("8.2", f"validation ROC-AUC: MobileNetV2 head {value:.3f}, VGG16 head {vgg16_val_auc:.3f}. Each base "
                  "needs its own preprocess_input; the choice between them is made on validation, and the test "
                  "split stays for the one you keep." + (chance if value <= 0.55 else ""))


def check_normal_heatmaps(my_normal_heatmaps, pneumonia_heatmaps: np.ndarray) -> bool:
    """8.3: Grad-CAM heatmaps of the NORMAL class for the same images."""
    if my_normal_heatmaps is None:
        return _unanswered("8.3", "Call wu.gradcam.gradcam(model, images, class_index=0).")
    maps = np.asarray(my_normal_heatmaps, dtype=float)
    if maps.shape != np.shape(pneumonia_heatmaps):
        raise _not_yet("8.3", f"shape {maps.shape}, expected {np.shape(pneumonia_heatmaps)}: one map per image shown.")
    if maps.min() < 0 or maps.max() > 1:
        raise _not_yet("8.3", "Grad-CAM maps from the helper are scaled to 0-1.")
    if np.allclose(maps, pneumonia_heatmaps):
        raise _not_yet("8.3", "these are the PNEUMONIA maps again: pass class_index=0.")
    flat_a, flat_b = maps.reshape(len(maps), -1), np.reshape(pneumonia_heatmaps, (len(maps), -1))
    overlap = np.mean([np.minimum(a, b).sum() / max(np.maximum(a, b).sum(), 1e-12) for a, b in zip(flat_a, flat_b)])
    return _right("8.3", f"the NORMAL and PNEUMONIA maps overlap by {overlap:.0%} on average (shared area / union). "
                  "Each shows the evidence for its own class; regions in both are where the model weighs the two.")


# --------------------------------------------------------------------------- lesson 9

def check_em_prevalence(my_av_prevalence, av_prob: np.ndarray, av_labels: np.ndarray,
                        label_shift_em: Callable) -> bool:
    """9.1: EM's estimate of the pneumonia prevalence of the adversarial validation set, where it is known."""
    if my_av_prevalence is None:
        return _unanswered("9.1", "Call label_shift_em(final[\"av\"]) and keep the estimated prevalence.")
    value = _number("9.1", my_av_prevalence, "my_av_prevalence")
    expected, _ = label_shift_em(np.asarray(av_prob, dtype=float))
    if abs(value - expected) > 1e-3:
        if not 0 <= value <= 1:
            raise _not_yet("9.1", f"{value} is not a prevalence (a share between 0 and 1).")
        raise _not_yet("9.1", f"{value:.3f}, expected {expected:.3f}: label_shift_em returns (prevalence, "
                       "probabilities); pass the adversarial validation set's probabilities, final[\"av\"].")
    truth = float(np.mean(av_labels))
    return _right("9.1", f"EM estimates {expected:.3f} where the truth is {truth:.3f} ({expected - truth:+.3f}), on "
                  "images from the training folder itself. EM trusts the probabilities to be calibrated for the "
                  "prior it is given (0.5, for a head trained with class weights); these are not quite, so even "
                  "without any shift the estimate is off. On the test folder, where NORMAL images look more like "
                  "pneumonia, it is off in the direction of the shift.")


def check_test_like_share(my_normal_share, p_pool: np.ndarray, pool_labels: np.ndarray) -> bool:
    """9.2: the share of NORMAL images among the 10% most test-like training-folder images."""
    if my_normal_share is None:
        return _unanswered("9.2", "Sort p_pool, take the top 10% of the images, and count the NORMAL ones (label 0).")
    value = _number("9.2", my_normal_share, "my_normal_share")
    p_pool, labels = np.asarray(p_pool), np.asarray(pool_labels)
    top = np.argsort(-p_pool)[: max(1, len(p_pool) // 10)]
    expected = float(np.mean(labels[top] == 0))
    overall = float(np.mean(labels == 0))
    if abs(value - expected) > 0.02:
        if abs(value - (1 - expected)) <= 0.02:
            raise _not_yet("9.2", f"{value:.3f} is the share of PNEUMONIA images there: NORMAL is label 0.")
        raise _not_yet("9.2", f"{value:.3f}, expected {expected:.3f}: the images with the highest p_pool (np.argsort "
                       "of -p_pool), the first len(p_pool) // 10 of them.")
    if expected > overall + 0.05:
        meaning = ("more NORMAL images than in the whole folder: the domain classifier has partly learned the class "
                   "mix (the test folder holds more NORMAL images), so importance weights and the adversarial "
                   "validation set lean towards NORMAL. That is why the adversarial validation set is drawn "
                   "within each class.")
    else:
        meaning = ("about the class mix of the whole folder: what makes these images test-like is not their class, "
                   "so it is something about how they look.")
    return _right("9.2", f"{expected:.1%} NORMAL among the most test-like, {overall:.1%} in the whole training "
                  f"folder: {meaning}")


def check_crop_auc(my_crop_auc, domain_auc: float, crop: float) -> bool:
    """9.3: the domain AUC on the features of centre-cropped images, beside the lesson's."""
    if my_crop_auc is None:
        return _unanswered("9.3", "Crop, compute the frozen features, and cross-fit the domain classifier on them.")
    value = _number("9.3", my_crop_auc, "my_crop_auc")
    if not 0 <= value <= 1:
        raise _not_yet("9.3", f"a ROC-AUC is between 0 and 1, not {value}.")
    if value < 0.45 and domain_auc >= 0.6:  # with no shift, AUCs below 0.5 are noise, not a mistake
        raise _not_yet("9.3", f"{value:.3f} is below chance: the folder labels and the scores do not line up "
                       "(features of data.pool first, then data.test, as in `folder`).")
    if max(value, domain_auc) < 0.55:
        verdict = "the folders look alike with and without the crop: there is no shift here for it to remove."
    elif value < domain_auc - 0.02:
        verdict = ("lower: part of what told the folders apart sat in the borders, which the crop removed. A model on "
                   "cropped images may lean less on such shortcuts; whether it does better on the test folder is "
                   "for the adversarial validation set to say, before the test labels.")
    elif value > domain_auc + 0.02:
        verdict = "higher: the shift is in the middle of the images, the lungs themselves, not in the borders."
    else:
        verdict = "about the same: the borders are not where the folders differ."
    return _right("9.3", f"domain AUC {value:.3f} with {crop:.1%} cut off each side, against {domain_auc:.3f} on the "
                  f"whole images: {verdict}")
