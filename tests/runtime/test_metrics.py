import pytest

from whisper_edge.runtime.metrics import error_rates, error_rates_by_normalizer, NORMALIZERS


def test_hindi_normalizer_scores_matras_fairly():
    refs = ["मेरा भाई शहर के अस्पताल में काम करता है।"]
    hyps = ["मेरा भाई शहर के अस्पताल में काम करती है"]  # one real word error, punctuation differs
    by = error_rates_by_normalizer(refs, hyps)
    assert by["hindi"]["wer"] == pytest.approx(100 / 9)
    assert by["raw"]["wer"] == pytest.approx(200 / 9)  # "है।" vs "है" counts as an error raw
    assert by["basic"]["ref_words"] > 9  # basic splits words at every matra


def test_exact_match_is_zero_and_counts_add_up():
    m = error_rates(["एक दो तीन"], ["एक तीन चार पाँच"], NORMALIZERS["hindi"])
    assert m["substitutions"] + m["deletions"] + m["insertions"] > 0
    assert m["ref_words"] == 3
    assert error_rates(["एक दो"], ["एक दो"], NORMALIZERS["hindi"])["wer"] == 0.0


def test_empty_references_are_skipped_and_counted():
    m = error_rates(["।", "नमस्ते"], ["कुछ", "नमस्ते"], NORMALIZERS["hindi"])
    assert m["empty_refs"] == 1 and m["wer"] == 0.0
    with pytest.raises(ValueError, match="nothing to score"):
        error_rates(["।"], ["x"], NORMALIZERS["hindi"])


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        error_rates(["a", "b"], ["a"], NORMALIZERS["raw"])
