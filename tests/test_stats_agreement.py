"""Agreement between raters (ratings.stats.agreement) against hand computations from the textbook
formulas, themselves checked on the textbooks' worked examples."""

import itertools
from fractions import Fraction

import pytest

from ratings.models import Rating
from ratings.stats.agreement import fleiss_kappa, krippendorff_alpha
from ratings.stats.results import study_results
from tests.results_data import GRADE, GRADES_BY_PARTICIPANT, SCORE, frame_of


def hand_krippendorff_ordinal(units):
    """Krippendorff's alpha, ordinal, from the coincidence matrix (Krippendorff 2011,
    "Computing Krippendorff's alpha-reliability"). units: lists of the values each unit got."""
    units = [[Fraction(v) for v in unit] for unit in units if len(unit) >= 2]
    values = sorted({v for unit in units for v in unit})
    coincidences = {(c, k): Fraction(0) for c in values for k in values}
    for unit in units:
        for i, j in itertools.permutations(range(len(unit)), 2):
            coincidences[unit[i], unit[j]] += Fraction(1, len(unit) - 1)
    totals = {c: sum(coincidences[c, k] for k in values) for c in values}
    n = sum(totals.values())

    def delta(c, k):
        low, high = sorted((c, k))
        between = sum(totals[g] for g in values if low <= g <= high)
        return (between - (totals[c] + totals[k]) / 2) ** 2

    observed = sum(coincidences[c, k] * delta(c, k) for c in values for k in values)
    expected = sum(totals[c] * totals[k] * delta(c, k) for c in values for k in values)
    return 1 - (n - 1) * observed / expected


def hand_fleiss_kappa(table):
    """Fleiss (1971): table[i][j] = raters who put item i in category j, the same n for every item."""
    n = sum(table[0])
    items = len(table)
    agreement = sum(Fraction(sum(c * c for c in counts) - n, n * (n - 1)) for counts in table) / items
    shares = [Fraction(sum(counts[j] for counts in table), items * n) for j in range(len(table[0]))]
    chance = sum(p * p for p in shares)
    return (agreement - chance) / (1 - chance)


def test_hand_krippendorff_matches_the_textbook_example():
    # Krippendorff (2011), 4 coders x 12 units with missing values: ordinal alpha = 0.815.
    coders = ["1 2 3 3 2 1 4 1 2 . . .", "1 2 3 3 2 2 4 1 2 5 . 3", ". 3 3 3 2 3 4 2 2 5 1 .",
              "1 2 3 3 2 4 4 1 2 5 1 ."]
    units = [[int(v) for v in column if v != "."] for column in zip(*(c.split() for c in coders))]
    assert float(hand_krippendorff_ordinal(units)) == pytest.approx(0.815, abs=5e-4)


def test_hand_fleiss_matches_the_textbook_example():
    # The worked example on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters, kappa = 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert float(hand_fleiss_kappa(table)) == pytest.approx(0.210, abs=5e-4)


def test_agreement_on_a_tiny_example_worked_by_hand():
    # Items (columns) x raters: i1 RRR, i2 PPP, i3 RPF, i4 PFF.
    ratings = frame_of({"a": dict(i1="R", i2="P", i3="R", i4="P"), "b": dict(i1="R", i2="P", i3="P", i4="F"),
                        "c": dict(i1="R", i2="P", i3="F", i4="F")})
    # By hand: coincidences o01=1.5, o02=.5, o12=.5; n0=3, n1=5, n2=4; ordinal deltas 16, 72.25,
    # 20.25; alpha = 1 - 11 * 70.25 / 1512.
    assert krippendorff_alpha(ratings) == {"alpha": pytest.approx(2957 / 6048), "raters": 3, "items": 4}
    # By hand: P_i = 1, 1, 0, 1/3 -> P = 7/12; p = 4/12, 5/12, 3/12 -> Pe = 25/72; kappa = 17/47.
    assert fleiss_kappa(ratings) == {"kappa": pytest.approx(17 / 47), "items": 4, "ratings_per_item": 3,
                                          "items_left_out": 0}


def test_fleiss_kappa_keeps_the_items_with_the_most_common_number_of_ratings():
    ratings = frame_of({"a": dict(i1="R", i2="P", i3="R", i4="P", i5="F"),
                        "b": dict(i1="R", i2="P", i3="P", i4="F"),
                        "c": dict(i1="R", i2="P", i3="F")})
    # i1..i3 have 3 ratings (kept), i4 has 2 and i5 one (left out).
    expected = hand_fleiss_kappa([[3, 0, 0], [0, 3, 0], [1, 1, 1]])
    assert fleiss_kappa(ratings) == {"kappa": pytest.approx(float(expected)), "items": 3,
                                          "ratings_per_item": 3, "items_left_out": 2}


def test_agreement_is_none_when_undefined():
    unanimous = frame_of({"a": dict(i1="R", i2="R"), "b": dict(i1="R", i2="R")})
    assert krippendorff_alpha(unanimous)["alpha"] is None
    assert fleiss_kappa(unanimous)["kappa"] is None
    unpaired = frame_of({"a": dict(i1="R"), "b": dict(i2="F")})
    assert krippendorff_alpha(unpaired) == {"alpha": None, "raters": 2, "items": 0}
    assert fleiss_kappa(unpaired)["kappa"] is None


def test_agreement_of_the_rated_study_matches_hand_computation(rated_study):
    results = study_results(rated_study, bootstrap=50)
    grades = {name: grades.replace(" ", "")[:8] for name, grades in GRADES_BY_PARTICIPANT.items() if name != "F"}
    units = [[SCORE[g[i]] for g in grades.values()] for i in range(8)]
    table = [[sum(GRADE[g[i]] == grade for g in grades.values()) for grade in Rating.Grade.values] for i in range(8)]
    alpha, kappa = float(hand_krippendorff_ordinal(units)), float(hand_fleiss_kappa(table))
    assert results.agreement["krippendorff"] == {"alpha": pytest.approx(alpha), "raters": 4, "items": 8,
                                                 "sentence": f"Krippendorff's alpha (ordinal): {alpha:.3f} "
                                                             "(4 raters, 8 items graded by at least two)."}
    assert results.agreement["fleiss"] == {"kappa": pytest.approx(kappa), "items": 8, "ratings_per_item": 4,
                                           "items_left_out": 0, "sentence": f"Fleiss' kappa: {kappa:.3f} over the 8 "
                                           "items with 4 ratings each, the most common number (0 items with other "
                                           "numbers left out)."}
