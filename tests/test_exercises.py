"""Exercise checks whose verdict depends on measured numbers (the lessons' own runs check the rest)."""
import pytest

from workshop_utils import exercises


def test_largest_rise_is_the_largest_increase_from_one_epoch_to_the_next():
    assert exercises.largest_rise([0.5, 0.3, 0.45, 0.2, 0.25]) == pytest.approx(0.15)
    assert exercises.largest_rise([0.5, 0.4, 0.3]) == 0  # falling throughout: no rise


def test_batchnorm_check_compares_the_two_networks_largest_rises(capsys):
    lesson = [0.6, 0.4, 0.3, 0.301, 0.25]
    assert exercises.check_batchnorm_jumps(None, lesson) is False  # unanswered: says what to do, no error
    assert "my_val_losses" in capsys.readouterr().out
    with pytest.raises(exercises.NotYet, match="3 epochs, but the lesson trained 5"):
        exercises.check_batchnorm_jumps([0.5, 0.4, 0.3], lesson)
    with pytest.raises(exercises.NotYet, match="list of validation losses"):
        exercises.check_batchnorm_jumps("0.5", lesson)
    assert exercises.check_batchnorm_jumps([0.6, 0.3, 0.5, 0.3, 0.28], lesson) is True
    out = capsys.readouterr().out
    assert "BatchNormalization 0.200, GroupNormalization 0.001" in out
    assert exercises.check_batchnorm_jumps([0.6, 0.5], [0.6, 0.55]) is True  # quick mode: right, but says little
    assert "says little" in capsys.readouterr().out
