import subprocess
import sys
import unicodedata

import pytest

from whisper_edge.runtime.normalize import (
    PRESETS,
    basic_normalize,
    hindi_number_words,
    normalize,
    spell_digits,
)

SENTENCE = "मेरा भाई शहर के अस्पताल में काम करता है।"


def test_vowel_signs_survive_where_basic_normalizer_deletes_them():
    assert normalize(SENTENCE) == "मेरा भाई शहर के अस्पताल में काम करता है"
    # The failure our normalizer exists to fix: matras and virama become spaces.
    assert basic_normalize(SENTENCE).split() == "म र भ ई शहर क अस पत ल म क म करत ह".split()


@pytest.mark.parametrize(
    "mark",
    ["\u093e", "\u093f", "\u0940", "\u0941", "\u0947", "\u094b", "\u0902", "\u0901", "\u094d", "\u0903"],
    ids=["aa", "i", "ii", "u", "e", "o", "anusvara", "chandrabindu", "virama", "visarga"],
)
def test_every_mark_is_kept(mark):
    word = "क" + mark + "म"
    assert normalize(word) == unicodedata.normalize("NFC", word)
    assert mark not in basic_normalize(word)


def test_nfc_and_nukta_forms_unified():
    precomposed = "\u095b"  # ज़ as one code point
    decomposed = "\u091c\u093c"  # ज + nukta
    assert normalize(f"{precomposed}रा") == normalize(f"{decomposed}रा")
    assert normalize("क़लम") == normalize("क़लम")


def test_punctuation_removed_including_danda_and_double_danda():
    assert normalize("राम, श्याम! क्या? हाँ। ठीक॥ \"उद्धरण\" - (कोष्ठक)") == "राम श्याम क्या हाँ ठीक उद्धरण कोष्ठक"


def test_zero_width_joiners_removed_without_splitting_words():
    assert normalize("क्\u200dष") == "क्ष"
    assert normalize("हिन्\u200cदी") == "हिन्दी"
    assert normalize("\ufeffनमस्ते\u200b") == "नमस्ते"


def test_whitespace_collapsed_and_latin_lowercased():
    assert normalize("  मैं   WhatsApp\tपर\nहूँ  ") == "मैं whatsapp पर हूँ"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("5", "पाँच"),
        ("२५", "पच्चीस"),
        ("100", "एक सौ"),
        ("1947", "एक हज़ार नौ सौ सैंतालीस"),
        ("1,00,000", "एक लाख"),
        ("3.5", "तीन दशमलव पाँच"),
        ("007", "शून्य शून्य सात"),
        ("उसने 25 किताबें", "उसने पच्चीस किताबें"),
    ],
)
def test_digits_spelled_out(text, expected):
    assert normalize(text) == unicodedata.normalize("NFC", expected)


def test_number_words_agree_with_indic_numtowords():
    num2words = pytest.importorskip("indic_numtowords").num2words
    for n in list(range(0, 101)) + [123, 999, 1000, 1001, 12345, 100000, 123456789]:
        ours = normalize(hindi_number_words(n), "no-nukta")
        theirs = normalize(num2words(n, lang="hi"), "no-nukta")
        assert ours == theirs, n


def test_number_word_spelling_variants_unified():
    assert normalize("छः अट्ठारह सरसठ") == normalize("छह अठारह सड़सठ")
    assert normalize("दो हजार") == normalize("दो हज़ार")


def test_number_words_reject_negative():
    with pytest.raises(ValueError):
        hindi_number_words(-1)


def test_presets_fold_chandrabindu_and_nukta():
    assert PRESETS["fold-chandrabindu"]("हाँ") == "हां"
    assert PRESETS["no-nukta"]("ज़रूर") == "जरूर"
    assert PRESETS["lenient"]("ज़रूर हाँ") == "जरूर हां"
    assert normalize("हाँ") == "हाँ"  # default keeps the distinction


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown normalizer preset 'nope'"):
        normalize("x", "nope")


def test_spell_digits_keeps_text_around_numbers():
    assert spell_digits("कमरा 12") .split() == ["कमरा", "बारह"]


def test_basic_normalize_matches_transformers():
    transformers = pytest.importorskip("transformers")
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    reference = BasicTextNormalizer()
    for text in [SENTENCE, "Hello, World! (aside) [noise] <tag>", "क़लम ज़रूर हाँ।", "naïve café — 3½"]:
        assert basic_normalize(text) == reference(text), text


def test_normalize_cli_reads_stdin():
    out = subprocess.run(
        [sys.executable, "-m", "whisper_edge", "normalize", "--preset", "lenient"],
        input="हाँ, ज़रूर।\n2 बजे\n", capture_output=True, text=True, check=True,
    ).stdout
    assert out.splitlines() == ["हां जरूर", "दो बजे"]
