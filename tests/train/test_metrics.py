"""VQA accuracy and CIDEr-D against worked examples from their papers' definitions and the official scorers."""

from __future__ import annotations

import math

import pytest

from train.metrics import cider_d, normalize_answer, process_punctuation, ptb_tokenize, vqa_accuracy


@pytest.mark.parametrize("humans, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_accuracy_is_min_humans_over_3_averaged_over_the_ten_leave_one_out_sets(humans, expected):
    # Antol et al.: Acc(ans) = min(#humans that said ans / 3, 1), averaged over all 10-choose-9 annotator sets.
    # 3 of 10 said it: the 3 sets without one of them see 2 (2/3), the 7 others see 3 (1) → (3·2/3 + 7)/10 = 0.9
    answers = ["yes"] * humans + ["no"] * (10 - humans)
    assert vqa_accuracy("yes", answers) == pytest.approx(expected)


def test_official_normalisation_cases():
    # vqaEval.py: number words → digits, articles dropped, contractions restored, punctuation rules
    assert normalize_answer("Two dogs.") == "2 dogs"
    assert normalize_answer("The cat") == "cat"
    assert normalize_answer("dont know") == "don't know"
    assert normalize_answer("3.5") == "3.5"  # a period before a digit stays
    assert process_punctuation("1,000") == "1000"  # a digit comma: marks are deleted, not spaced
    assert process_punctuation("yes/no") == "yes no"  # a mark without a space next to it becomes a space
    assert process_punctuation("red, white") == "red white"
    # the prediction is normalised only when the humans disagree (the official scorer's behaviour)
    mixed = ["2"] * 9 + ["3"]
    assert vqa_accuracy("two", mixed) == pytest.approx(1.0)
    assert vqa_accuracy("two", ["2"] * 10) == 0.0
    assert vqa_accuracy(" 2\n", ["2"] * 10) == 1.0


def test_cider_d_worked_examples():
    # CIDEr-D (Vedantam et al.; pycocoevalcap): tf-idf n-gram vectors, n = 1..4, idf = log(#images) - log(df),
    # cosine with clipped counts, length penalty exp(-Δ²/2σ²), mean over n, × 10.
    # A caption equal to its only reference has cosine 1 for every n it has n-grams of: 3 words → n = 1..3
    # count, n = 4 is empty → 10 · 3/4 = 7.5; 4 words → 10.
    score, per = cider_d({1: "a b c", 2: "w x y z"}, {1: ["a b c"], 2: ["w x y z"]})
    assert per == {1: pytest.approx(7.5), 2: pytest.approx(10.0)} and score == pytest.approx(8.75)
    # "a" is in the references of both images: idf = log 2 - log 2 = 0, it weighs nothing. Image 1: "cat" and
    # "a cat" match (n = 1, 2 → cosine 1) → 10 · 2/4 = 5; image 2: only the weightless "a" is shared → 0.
    score, per = cider_d({1: "A cat.", 2: "a cat"}, {1: ["a cat"], 2: ["a dog"]})
    assert per == {1: pytest.approx(5.0), 2: pytest.approx(0.0)} and score == pytest.approx(2.5)
    # length penalty: one extra word (Δ = 1) on a 4-word reference; n = 1: tf·idf vectors (log 2 each) with a
    # repeated "z" → clipped overlap 4·log²2 over |h|·|r| = sqrt(3+4)·2·log²2 → 4/(2·sqrt 7) (the other image has
    # no shared n-gram, so every idf is log 2)
    score, per = cider_d({1: "w x y z z", 2: "p"}, {1: ["w x y z"], 2: ["q"]})
    pen = math.exp(-1 / (2 * 36))
    n1 = 4 / (2 * math.sqrt(7))  # hyp counts w,x,y:1 z:2 → |h| = sqrt(1+1+1+4)·log 2; |r| = 2·log 2
    n2 = 3 / (math.sqrt(4) * math.sqrt(3))  # hyp bigrams wx,xy,yz,zz; ref wx,xy,yz
    n3 = 2 / (math.sqrt(3) * math.sqrt(2))
    n4 = 1 / (math.sqrt(2) * 1)
    assert per[1] == pytest.approx(10 * pen * (n1 + n2 + n3 + n4) / 4, rel=1e-6)


def test_ptb_tokenization_as_the_coco_evaluation():
    assert ptb_tokenize("A man's dog isn't here, (really).") == "a man 's dog is n't here really"
    assert ptb_tokenize("Two cats...\non a mat!") == "two cats on a mat"
