"""Hindi sentences for synthesis: hand-written everyday sentences, template sentences over names,
places, days, months, colours and spelled-out numbers, and optionally a user's text file.

Every sentence is NFC, has its digits spelled out (so text and audio agree), no Latin letters, and a
length between MIN_CHARS and MAX_CHARS. Duplicates (after normalization) are removed.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ...runtime.normalize import hindi_number_words, normalize, spell_digits

__all__ = ["MAX_CHARS", "MIN_CHARS", "TextPool", "build_sentences", "clean_line", "corpus_sentences"]

MIN_CHARS, MAX_CHARS = 8, 160
_LATIN = re.compile(r"[A-Za-z]")

_DAYS = "सोमवार मंगलवार बुधवार गुरुवार शुक्रवार शनिवार रविवार".split()
_MONTHS = "जनवरी फ़रवरी मार्च अप्रैल मई जून जुलाई अगस्त सितंबर अक्टूबर नवंबर दिसंबर".split()
_COLOURS = "लाल नीला हरा पीला काला सफ़ेद गुलाबी नारंगी बैंगनी भूरा".split()
_FRUITS = "केले आम अंडे टमाटर संतरे नींबू आलू प्याज़ अमरूद".split()
_THINGS = "थैला पेन गिलास छाता तौलिया कंबल".split()
_CITIES = ("दिल्ली मुंबई कोलकाता चेन्नई बेंगलुरु हैदराबाद पुणे जयपुर लखनऊ पटना भोपाल इंदौर "
           "कानपुर नागपुर आगरा वाराणसी अमृतसर चंडीगढ़ देहरादून शिमला रांची रायपुर गुवाहाटी "
           "अहमदाबाद सूरत उदयपुर जोधपुर अजमेर ग्वालियर मेरठ प्रयागराज गोरखपुर").split()

# Templates: slots in braces. Verb forms agree with the plural or honorific subject they take.
_TEMPLATES = [
    "{name} {city} में रहते हैं।",
    "{day} को {city} में बारिश होने की संभावना है।",
    "मेरी ट्रेन {hour} बजे {city} से निकलेगी।",
    "{first} ने बाज़ार से {n_small} {fruit} ख़रीदे।",
    "कृपया {first} को {day} शाम तक फ़ोन कर दीजिए।",
    "{month} में हम {city} घूमने जाएँगे।",
    "इस कक्षा में {n_small} छात्र पढ़ते हैं।",
    "{first} का जन्म {month} महीने में हुआ था।",
    "{city} से {city2} की दूरी लगभग {n_big} किलोमीटर है।",
    "क्या आप {city} का मौसम बता सकते हैं?",
    "आज {first} के घर पर {n_small} मेहमान आए।",
    "मुझे {n_big} रुपये का एक {thing} चाहिए।",
    "हमारी बैठक {day} सुबह {hour} बजे होगी।",
    "{state} में इस साल अच्छी फ़सल हुई है।",
    "{first} और {first2} एक ही दफ़्तर में काम करते हैं।",
    "पिछले {month} में {city} में बहुत ठंड थी।",
    "उस दुकान में {n_small} तरह की मिठाइयाँ मिलती हैं।",
    "बस अड्डे से {city} के लिए हर घंटे बस चलती है।",
    "{first} को {colour} रंग बहुत पसंद है।",
    "इस किताब में {n_big} पन्ने हैं।",
    "{first} रोज़ सुबह {n_tiny} किलोमीटर दौड़ते हैं।",
    "{city} रेलवे स्टेशन पर बहुत भीड़ थी।",
    "{name} ने {year} में कॉलेज की पढ़ाई पूरी की।",
    "हमारा दफ़्तर {city} के पुराने बाज़ार के पास है।",
    "{first} की शादी {month} में {city} में होगी।",
    "टिकट की कीमत {n_big} रुपये है।",
    "इस गाँव में लगभग {n_big} परिवार रहते हैं।",
    "{day} से {day2} तक स्कूल बंद रहेगा।",
    "{name} {state} के मुख्यमंत्री से मिले।",
    "मेरे पास {n_small} रुपये कम हैं।",
    "{city} में आज तापमान {n_tiny} डिग्री था।",
    "{first} ने {n_tiny} घंटे तक इंतज़ार किया।",
    "मैं {month} के आख़िरी हफ़्ते में {city} पहुँचूँगा।",
    "{first} {city} के अस्पताल में डॉक्टर हैं।",
    "इस मैच में {first} ने {n_small} रन बनाए।",
    "हमें {hour} बजे तक {city} पहुँचना है।",
    "{first} के पास {colour} रंग की गाड़ी है।",
    "दुकानदार ने {fruit} {n_small} रुपये किलो बेचे।",
    "{state} की राजधानी के बारे में बताइए।",
    "{year} में {city} में बड़ी बाढ़ आई थी।",
]


def clean_line(line: str) -> tuple[str | None, str | None]:
    """Prepare one line of text for synthesis: (sentence, None) or (None, reason it was dropped)."""
    text = unicodedata.normalize("NFC", line).strip()
    text = " ".join(spell_digits(text).split())
    if not text:
        return None, "empty"
    if _LATIN.search(text):
        return None, "latin"  # Hindi voices read Latin as English; the transcript would not match
    if not any("\u0900" <= c <= "\u097f" and unicodedata.category(c) == "Lo" for c in text):
        return None, "no devanagari letters"  # e.g. a line of dandas: nothing to speak
    if not MIN_CHARS <= len(text) <= MAX_CHARS:
        return None, "length"
    return text, None


def _faker_names(seed: int):
    try:
        from faker import Faker
    except ImportError:  # the data extra is optional; fall back to a short built-in list
        first = "राहुल प्रिया अमित सुनीता विकास अनीता रोहित पूजा संजय नेहा".split()
        last = "शर्मा वर्मा गुप्ता सिंह यादव पटेल".split()
        states = "राजस्थान बिहार केरल पंजाब असम गुजरात".split()
        return first, last, states
    fake = Faker("hi_IN")
    fake.seed_instance(seed)
    # repaired after sorting: each name keeps its place in the list, so a seed draws the same sentences as before
    first = [repair_word(w) for w in sorted({fake.first_name() for _ in range(400)})]
    last = [repair_word(w) for w in sorted({fake.last_name() for _ in range(200)})]
    states = [repair_word(w) for w in sorted({fake.state() for _ in range(200)})]
    keep = lambda w: w and not _LATIN.search(w) and len(w) <= 20  # noqa: E731
    return [w for w in first if keep(w)], [w for w in last if keep(w)], [w for w in states if keep(w)]


_CONSONANT = re.compile(r"[\u0915-\u0939\u0958-\u095f]\u093c?")
_SIGN = re.compile(r"[\u0900-\u0903\u093a-\u094f\u0955-\u0957\u0962\u0963]")


def repair_word(word: str) -> str:
    """A Devanagari word as it is spoken and written: Faker's hi_IN names include some typed in visual order, the
    i-vowel sign before its consonant (``िनशा`` for निशा, ``िकशोरी`` for किशोरी) — a voice cannot read them and a
    transcript never matches them. That sign is moved after its consonant; a word that still starts with a vowel sign
    or virama is dropped (returned empty)."""
    if word.startswith("\u093f") and (m := _CONSONANT.match(word, 1)):
        word = m.group(0) + "\u093f" + word[m.end():]
    return "" if _SIGN.match(word) else word


def _template_sentences(rng: random.Random, count: int, seed: int) -> list[str]:
    first, last, states = _faker_names(seed)
    out = []
    for _ in range(count):
        tpl = rng.choice(_TEMPLATES)
        c1, c2 = rng.sample(_CITIES, 2)
        d1, d2 = rng.sample(_DAYS, 2)
        f1, f2 = rng.sample(first, 2)
        out.append(tpl.format(
            name=f"{rng.choice(first)} {rng.choice(last)}", first=f1, first2=f2, city=c1, city2=c2,
            state=rng.choice(states), day=d1, day2=d2, month=rng.choice(_MONTHS), colour=rng.choice(_COLOURS),
            fruit=rng.choice(_FRUITS), thing=rng.choice(_THINGS), hour=hindi_number_words(rng.randint(1, 12)),
            n_tiny=hindi_number_words(rng.randint(2, 40)), n_small=hindi_number_words(rng.randint(2, 99)),
            n_big=hindi_number_words(rng.choice([rng.randint(100, 999), rng.randint(1000, 99999)])),
            year=hindi_number_words(rng.randint(1950, 2025)),
        ))
    return out


@dataclass
class TextPool:
    sentences: list[str]
    sources: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)


def _bundled_sentences() -> list[str]:
    text = resources.files(__package__).joinpath("sentences_hi.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def build_sentences(count: int, seed: int, extra_text: Path | None = None, exclude: frozenset[str] = frozenset()) -> TextPool:
    """``count`` unique sentences (fewer only if the sources run dry), shuffled by ``seed``; none whose normalized
    form is in ``exclude`` (another corpus's sentences: a held-out set that no model trained on it has heard)."""
    rng = random.Random(seed)
    pool = TextPool([])
    seen: set[str] = set()

    def add(lines, source):
        for line in lines:
            if len(pool.sentences) >= count:
                return
            text, reason = clean_line(line)
            if reason:
                pool.dropped[f"{source}: {reason}"] += 1
                continue
            key = normalize(text)
            if key in exclude:
                pool.dropped[f"{source}: in an excluded corpus"] += 1
                continue
            if key in seen:
                pool.dropped[f"{source}: duplicate"] += 1
                continue
            seen.add(key)
            pool.sentences.append(text)
            pool.sources[source] += 1

    if extra_text is not None:
        try:
            lines = Path(extra_text).read_text(encoding="utf-8").splitlines()
            add([line for line in lines if not line.startswith("#")], f"user:{Path(extra_text).name}")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read --text {extra_text}: {exc}") from None
    add(_bundled_sentences(), "handwritten")
    attempts = 0
    while len(pool.sentences) < count and attempts < 20:
        add(_template_sentences(rng, 2 * (count - len(pool.sentences)) + 50, seed + attempts), "templates")
        attempts += 1
    rng.shuffle(pool.sentences)
    return pool


def corpus_sentences(corpora: tuple[Path, ...]) -> frozenset[str]:
    """The normalized sentences of every split of earlier builds (``--exclude-corpus``)."""
    import datasets

    keys: set[str] = set()
    for path in corpora:
        try:
            dd = datasets.load_from_disk(str(path))
            keys.update(normalize(s) for split in dd.values() for s in split["sentence"])
        except (FileNotFoundError, KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"--exclude-corpus {path}: not a corpus of 'whisper-edge data build' ({type(exc).__name__}: "
                             f"{exc}); give the folder of an earlier build") from None
    return frozenset(keys)
