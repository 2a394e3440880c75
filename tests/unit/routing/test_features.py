"""What the router reads of a text (gateway/routing/features.py, signals.py): its words, the
hand signals, and only the head and tail of a long text."""

from __future__ import annotations

from gateway.routing.features import clip, extract
from gateway.routing.signals import NAMES


def test_words_are_lower_cased_split_on_punctuation_with_digits_as_zero() -> None:
    features = extract("Half-life of C-14: 5730 years, half_life!", 4096)
    assert set(features.words) == {b"half", b"life", b"of", b"c", b"00", b"0000", b"years"}


def test_typographic_punctuation_separates_words() -> None:
    features = extract("\u201cquoted\u201d\u2014dash\u2026", 4096)
    assert set(features.words) == {b"quoted", b"dash"}


def test_each_distinct_word_counts_once_and_norm_shares_one_unit() -> None:
    features = extract("the cat the cat the dog", 4096)
    assert set(features.words) == {b"the", b"cat", b"dog"}
    assert features.norm == 2**-0.5  # 'the' is not weighed: it takes no share
    assert extract("", 4096).norm == 0.0


def test_function_words_and_single_letters_do_not_dilute_the_norm() -> None:
    wordy = extract("What is the entropy of a gas at x and y, and is it in a box?", 4096)
    bare = extract("entropy gas box", 4096)
    assert wordy.norm == bare.norm == 3**-0.5
    assert extract("a the of x", 4096).norm == 0.0


def test_signals_name_each_value() -> None:
    signals = extract("Solve x^2 + 3x = 10 and explain.", 4096).signals
    assert len(signals.values) == len(NAMES) == len(set(NAMES))
    assert signals.values[NAMES.index("equations")] > 0
    assert signals.domain == "math"
    assert "math notation" in signals.reasons
    assert 0.0 <= signals.difficulty <= 1.0


def test_a_long_text_is_read_at_its_head_and_tail() -> None:
    text = (
        "alpha " + "middle " * 10_000 + "words only in the middle " + "middle " * 10_000 + "omega"
    )
    assert clip(text, 100) == text[:100] + "\n" + text[-100:]
    assert clip("short", 100) == "short"
    features = extract(text, 100)
    assert b"alpha" in features.words and b"omega" in features.words
    assert b"only" not in features.words
    assert features == extract(clip(text, 100), 1_000_000)
