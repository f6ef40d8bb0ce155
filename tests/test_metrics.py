"""Liveness metrics against tables computed by hand (no scikit-learn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveness import metrics as M

# Hand table. Reals (label 1): 0.9, 0.7, 0.7, 0.4; fakes (label 0): 0.8, 0.7, 0.3, 0.2.
# Sorted: 0.9R 0.8F 0.7R 0.7R 0.7F 0.4R 0.3F 0.2F
#   threshold  inf  0.9  0.8  0.7  0.4  0.3  0.2
#   APCER      0    0    1/4  2/4  2/4  3/4  1
#   BPCER      1    3/4  3/4  1/4  0    0    0
SCORES = np.array([0.9, 0.7, 0.7, 0.4, 0.8, 0.7, 0.3, 0.2])
LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0])


def test_roc_curve_matches_the_hand_table_with_tied_scores_moving_together():
    roc = M.roc_curve(SCORES, LABELS)
    np.testing.assert_array_equal(roc.thresholds, [np.inf, 0.9, 0.8, 0.7, 0.4, 0.3, 0.2])
    np.testing.assert_allclose(roc.apcer, [0, 0, .25, .5, .5, .75, 1])
    np.testing.assert_allclose(roc.bpcer, [1, .75, .75, .25, 0, 0, 0])
    np.testing.assert_allclose(roc.tpr, [0, .25, .25, .75, 1, 1, 1])


def test_auc_counts_ties_as_half():
    # Mann-Whitney by hand: 0.9 beats 4 fakes; each 0.7 beats 2, ties 1 (0.5); 0.4 beats 2.
    assert M.auc(SCORES, LABELS) == pytest.approx((4 + 2.5 + 2.5 + 2) / 16)


def test_iso_rates_at_a_threshold():
    # At 0.5: fakes 0.8, 0.7 accepted (2 of 4); real 0.4 rejected (1 of 4).
    assert M.apcer(SCORES, LABELS, 0.5) == 0.5
    assert M.bpcer(SCORES, LABELS, 0.5) == 0.25
    assert M.acer(SCORES, LABELS, 0.5) == 0.375
    # The threshold itself counts as accepted: at 0.7 the fake 0.7 is accepted, the reals too.
    assert M.apcer(SCORES, LABELS, 0.7) == 0.5 and M.bpcer(SCORES, LABELS, 0.7) == 0.25


def test_eer_is_where_apcer_and_bpcer_are_closest():
    # |APCER - BPCER| per finite threshold: .75 .5 .25 .5 .75 1 -> 0.7, EER = (.5 + .25) / 2.
    assert M.eer(SCORES, LABELS) == (0.375, 0.7)


def test_eer_tie_on_the_gap_goes_to_the_lower_mean():
    # reals 0.8, 0.6; fakes 0.7, 0.2. thresholds 0.8: A0 B.5 | 0.7: A.5 B.5 | 0.6: A.5 B0
    # gaps .5, 0, .5 -> 0.7 with EER .5
    assert M.eer([0.8, 0.6, 0.7, 0.2], [1, 1, 0, 0]) == (0.5, 0.7)
    # reals 0.9, 0.3; fakes 0.6, 0.1: 0.9: A0 B.5 (gap .5, mean .25); 0.6: A.5 B.5 (gap 0)
    assert M.eer([0.9, 0.3, 0.6, 0.1], [1, 1, 0, 0]) == (0.5, 0.6)


def test_threshold_and_apcer_at_a_bpcer_budget():
    # BPCER must be 0 -> highest such threshold is 0.4, where APCER = 1/2.
    assert M.threshold_at_bpcer(SCORES, LABELS, 0.05) == 0.4
    assert M.apcer_at_bpcer(SCORES, LABELS, 0.01) == 0.5
    # A 75% budget allows 0.9, where no fake is accepted.
    assert M.threshold_at_bpcer(SCORES, LABELS, 0.75) == 0.9
    assert M.apcer_at_bpcer(SCORES, LABELS, 0.75) == 0.0


def test_select_threshold_rules():
    assert M.select_threshold(SCORES, LABELS, "eer") == 0.7
    assert M.select_threshold(SCORES, LABELS, "bpcer=0.25") == 0.7
    assert M.select_threshold(SCORES, LABELS, "bpcer=0") == 0.4
    assert M.select_threshold(SCORES, LABELS, "0.5") == 0.5
    for bad in ("bpcer=abc", "bpcer=1.5", "median", "apcer=0.1", "nan"):
        with pytest.raises(ValueError, match="threshold rule"):
            M.select_threshold(SCORES, LABELS, bad)


def test_perfect_and_reversed_rankings():
    labels = np.array([1, 1, 0, 0])
    assert M.auc([0.9, 0.8, 0.2, 0.1], labels) == 1.0
    assert M.eer([0.9, 0.8, 0.2, 0.1], labels) == (0.0, 0.8)
    assert M.auc([0.1, 0.2, 0.8, 0.9], labels) == 0.0


def test_one_class_only_gives_nan_where_undefined():
    reals = np.array([0.9, 0.2, 0.6])
    ones = np.ones(3, dtype=int)
    assert M.bpcer(reals, ones, 0.5) == pytest.approx(1 / 3)
    assert math.isnan(M.apcer(reals, ones, 0.5))
    assert math.isnan(M.auc(reals, ones)) and math.isnan(M.apcer_at_bpcer(reals, ones, 0.05))
    with pytest.raises(ValueError, match="both classes"):
        M.eer(reals, ones)


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(ValueError, match="differ in length"):
        M.apcer([0.1, 0.2], [1], 0.5)
    with pytest.raises(ValueError, match="0 \\(fake\\) or 1 \\(real\\)"):
        M.bpcer([0.1, 0.2], [1, 2], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        M.auc([np.nan, 0.2], [1, 0])


def test_classification_report_equal_support():
    # Predictions at 0.5: reals [1 1 1 0], fakes [1 1 0 0] -> m = [[2, 2], [1, 3]]
    predictions = M.predict(SCORES, 0.5)
    np.testing.assert_array_equal(M.confusion_matrix(LABELS, predictions), [[2, 2], [1, 3]])
    r = M.classification_report(LABELS, predictions)
    assert r["fake"] == pytest.approx({"precision": 2 / 3, "recall": 1 / 2, "f1": 4 / 7,
                                       "support": 4})
    assert r["real"] == pytest.approx({"precision": 3 / 5, "recall": 3 / 4, "f1": 2 / 3,
                                       "support": 4})
    assert r["accuracy"] == 5 / 8
    assert r["macro avg"] == pytest.approx({"precision": 19 / 30, "recall": 5 / 8,
                                            "f1": 13 / 21, "support": 8})
    assert r["weighted avg"] == pytest.approx(r["macro avg"])


def test_classification_report_weighted_differs_from_macro_with_unequal_support():
    # m = [[2, 1], [0, 1]]: fake p 1, r 2/3, f1 .8; real p 1/2, r 1, f1 2/3; weights 3/4, 1/4
    r = M.classification_report([0, 0, 0, 1], [0, 1, 0, 1])
    assert r["macro avg"] == pytest.approx({"precision": 3 / 4, "recall": 5 / 6,
                                            "f1": (0.8 + 2 / 3) / 2, "support": 4})
    assert r["weighted avg"] == pytest.approx({"precision": 7 / 8, "recall": 3 / 4,
                                               "f1": 0.6 + 1 / 6, "support": 4})


def test_classification_report_empty_denominators_are_zero():
    r = M.classification_report([1, 1], [1, 1])  # no fake anywhere
    assert r["fake"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["real"]["f1"] == 1.0 and r["accuracy"] == 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1)), min_size=2, max_size=30))
def test_auc_equals_the_pairwise_count_and_roc_is_monotone(pairs):
    scores = np.array([s / 5 for s, _ in pairs])
    labels = np.array([y for _, y in pairs])
    if labels.min() == labels.max():
        return
    reals, fakes = scores[labels == 1], scores[labels == 0]
    diff = reals[:, None] - fakes[None, :]
    expected = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert M.auc(scores, labels) == pytest.approx(expected)
    roc = M.roc_curve(scores, labels)
    assert (np.diff(roc.apcer) >= 0).all() and (np.diff(roc.bpcer) <= 0).all()
    for t, a, b in zip(roc.thresholds[1:], roc.apcer[1:], roc.bpcer[1:], strict=True):
        assert (M.apcer(scores, labels, t), M.bpcer(scores, labels, t)) == (a, b)


def test_eer_midpoint_threshold_by_hand():
    scores = [0.9, 0.6, 0.2, 0.8, 0.3, 0.1]
    labels = [1, 1, 1, 0, 0, 0]
    # at t = .6: reals accepted .9 .6 (BPCER 1/3), fakes accepted .8 (APCER 1/3)
    assert M.eer(scores, labels) == (pytest.approx(1 / 3), 0.6)
    assert M.eer_midpoint_threshold(scores, labels) == pytest.approx((0.6 + 0.3) / 2)
    # EER at .5 (APCER 1, BPCER 1): midway to .1
    assert M.eer_midpoint_threshold([0.5, 0.1], [0, 1]) == pytest.approx(0.3)
    # one distinct score: nothing lies below it, it is returned as it is
    assert M.eer_midpoint_threshold([0.5, 0.5], [0, 1]) == 0.5
