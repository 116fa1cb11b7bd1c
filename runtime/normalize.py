"""Hindi text normalization for fair WER.

Common normalizers (transformers' BasicTextNormalizer, Whisper's own) replace every Unicode
mark with a space, which deletes Hindi vowel signs (matras), anusvara and virama, and so
split words into meaningless consonant fragments. This normalizer keeps every mark that
changes a word and removes only what does not: punctuation, invisible joiners, case and
spacing. Each rule is documented with examples in docs/normalizer.md.

Presets (named, so that a reported WER says which one was used):
    default             the rules below
    fold-chandrabindu   default + chandrabindu (ँ) folded into anusvara (ं)
    no-nukta            default + nukta (़) removed (ज़ → ज)
    lenient             both folds
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "HindiNormalizer",
    "PRESETS",
    "basic_normalize",
    "hindi_number_words",
    "normalize",
    "spell_digits",
]

NUKTA = "\u093c"
CHANDRABINDU = "\u0901"
ANUSVARA = "\u0902"

# Characters that only affect rendering; deleted outright (not replaced by a space).
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)

# 0..99 in Hindi are irregular; they are data, not a rule.
_UNITS = (
    "शून्य एक दो तीन चार पाँच छह सात आठ नौ "
    "दस ग्यारह बारह तेरह चौदह पंद्रह सोलह सत्रह अठारह उन्नीस "
    "बीस इक्कीस बाईस तेईस चौबीस पच्चीस छब्बीस सत्ताईस अट्ठाईस उनतीस "
    "तीस इकतीस बत्तीस तैंतीस चौंतीस पैंतीस छत्तीस सैंतीस अड़तीस उनतालीस "
    "चालीस इकतालीस बयालीस तैंतालीस चवालीस पैंतालीस छियालीस सैंतालीस अड़तालीस उनचास "
    "पचास इक्यावन बावन तिरपन चौवन पचपन छप्पन सत्तावन अट्ठावन उनसठ "
    "साठ इकसठ बासठ तिरसठ चौंसठ पैंसठ छियासठ सड़सठ अड़सठ उनहत्तर "
    "सत्तर इकहत्तर बहत्तर तिहत्तर चौहत्तर पचहत्तर छिहत्तर सतहत्तर अठहत्तर उन्यासी "
    "अस्सी इक्यासी बयासी तिरासी चौरासी पचासी छियासी सत्तासी अट्ठासी नवासी "
    "नब्बे इक्यानवे बानवे तिरानवे चौरानवे पचानवे छियानवे सत्तानवे अट्ठानवे निन्यानवे"
).split()
assert len(_UNITS) == 100
_UNITS = tuple(unicodedata.normalize("NFC", w) for w in _UNITS)

# Indian grouping: crore = 10^7, lakh = 10^5, thousand = 10^3, hundred = 10^2.
_SCALES = (
    (10**11, "खरब"),
    (10**9, "अरब"),
    (10**7, "करोड़"),
    (10**5, "लाख"),
    (10**3, "हज़ार"),
    (10**2, "सौ"),
)
_SCALES = tuple((v, unicodedata.normalize("NFC", w)) for v, w in _SCALES)
# Spelling variants of number words in common use (other tools, news text) → our spelling, so
# that "छः" in a reference and "छह" in a hypothesis are not counted as an error.
_NUMBER_VARIANTS = {
    unicodedata.normalize("NFC", k): unicodedata.normalize("NFC", v)
    for k, v in {
        "छः": "छह", "छै": "छह", "अट्ठारह": "अठारह", "चौंतालीस": "चवालीस", "चौवालीस": "चवालीस",
        "तिरेपन": "तिरपन", "तिरेसठ": "तिरसठ", "छयासठ": "छियासठ", "सरसठ": "सड़सठ", "अठासी": "अट्ठासी",
        "उन्नासी": "उन्यासी", "इक्यानबे": "इक्यानवे", "बानबे": "बानवे", "तिरानबे": "तिरानवे",
        "चौरानबे": "चौरानवे", "पचानबे": "पचानवे", "छियानबे": "छियानवे", "सत्तानबे": "सत्तानवे",
        "अट्ठानबे": "अट्ठानवे", "निन्यानबे": "निन्यानवे", "हजार": "हज़ार", "करोड": "करोड़",
    }.items()
}
_NUMBER_VARIANTS_NO_NUKTA = {k.replace(NUKTA, ""): v.replace(NUKTA, "") for k, v in _NUMBER_VARIANTS.items()}
_MAX_SPOKEN = 10**13 - 1  # longer digit strings (ids, phone numbers) are read digit by digit
_POINT = "दशमलव"
_DEVANAGARI_DIGITS = str.maketrans("०१२३४५६७८९", "0123456789")


def hindi_number_words(n: int) -> str:
    """Spell a non-negative integer in Hindi words with Indian grouping (lakh, crore)."""
    if n < 0:
        raise ValueError(f"hindi_number_words takes a non-negative integer, got {n}")
    if n > _MAX_SPOKEN:
        return " ".join(_UNITS[int(d)] for d in str(n))
    if n < 100:
        return _UNITS[n]
    words = []
    for value, name in _SCALES:
        if n >= value:
            count, n = divmod(n, value)
            words += [hindi_number_words(count), name]
    if n:
        words.append(_UNITS[n])
    return " ".join(words)


# A number: digits, optionally grouped by commas (1,00,000 or 100,000), optionally a decimal part.
_NUMBER = re.compile(r"\d+(?:,\d+)*(?:\.\d+)?")


def _spell_number(match: re.Match) -> str:
    text = match.group(0)
    whole, _, frac = text.partition(".")
    whole = whole.replace(",", "")
    if (len(whole) > 1 and whole.startswith("0")) or len(whole) > 15:
        # 007, phone numbers, pin codes; and runs beyond any spoken number (no int() of 4,300 digits)
        spoken = " ".join(_UNITS[int(d)] for d in whole)
    else:
        spoken = hindi_number_words(int(whole))
    if frac:
        spoken += " " + _POINT + " " + " ".join(_UNITS[int(d)] for d in frac)
    return f" {spoken} "


def spell_digits(text: str) -> str:
    """Replace ASCII and Devanagari digit runs by Hindi words ("२५" → "पच्चीस")."""
    text = text.translate(_DEVANAGARI_DIGITS)
    return _NUMBER.sub(_spell_number, text)


@dataclass(frozen=True)
class HindiNormalizer:
    """Callable text normalizer; see the module docstring and docs/normalizer.md."""

    fold_chandrabindu: bool = False
    remove_nukta: bool = False
    spell_numbers: bool = True

    def __call__(self, text: str) -> str:
        # 1. One Unicode form. NFC also decomposes the precomposed nukta letters (क़ U+0958 …
        #    य़ U+095F are composition exclusions), so both spellings of ज़ become ज + ़.
        text = unicodedata.normalize("NFC", text)
        # 2. Invisible joiners change rendering only.
        text = text.translate(_INVISIBLE)
        # 3. Digits (ASCII and Devanagari) become words, as a speaker says them.
        if self.spell_numbers:
            text = spell_digits(text)
        # 4. Punctuation (danda, double danda, quotes, dashes …) and symbols become spaces.
        #    Marks (category M: matras, anusvara, chandrabindu, virama, visarga, nukta) stay.
        text = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in text)
        # 5. Latin (code-mixed words) is lowercased; Devanagari has no case.
        text = text.lower()
        # 6. Optional folds, named by the preset.
        if self.fold_chandrabindu:
            text = text.replace(CHANDRABINDU, ANUSVARA)
        if self.remove_nukta:
            text = text.replace(NUKTA, "")
        # 7. Whitespace collapsed; number-word spelling variants unified (after the folds, so
        #    that a folded variant still matches).
        variants = _NUMBER_VARIANTS_NO_NUKTA if self.remove_nukta else _NUMBER_VARIANTS
        return " ".join(variants.get(w, w) for w in text.split())


PRESETS: dict[str, HindiNormalizer] = {
    "default": HindiNormalizer(),
    "fold-chandrabindu": HindiNormalizer(fold_chandrabindu=True),
    "no-nukta": HindiNormalizer(remove_nukta=True),
    "lenient": HindiNormalizer(fold_chandrabindu=True, remove_nukta=True),
}


def normalize(text: str, preset: str = "default") -> str:
    try:
        normalizer = PRESETS[preset]
    except KeyError:
        raise ValueError(
            f"unknown normalizer preset {preset!r}; choose one of {', '.join(PRESETS)}"
        ) from None
    return normalizer(text)


# --- transformers' BasicTextNormalizer, re-implemented without transformers -------------------
# Kept byte-for-byte equivalent (tests compare against transformers) so that "basic" WER in our
# reports is the figure other tools print. It replaces every mark with a space: unfair to Hindi.
_BRACKETS = re.compile(r"[<\[][^>\]]*[>\]]")
_PARENS = re.compile(r"\(([^)]+?)\)")


def basic_normalize(text: str) -> str:
    text = text.lower()
    text = _BRACKETS.sub("", text)
    text = _PARENS.sub("", text)
    text = "".join(
        " " if unicodedata.category(c)[0] in "MSP" else c for c in unicodedata.normalize("NFKC", text)
    )
    return re.sub(r"\s+", " ", text)
