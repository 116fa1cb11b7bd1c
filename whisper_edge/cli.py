"""whisper-edge command line: a thin layer over library functions (each command calls one).

The parser is here; the commands are in whisper_edge/commands.py. Heavy imports (torch, transformers) happen inside
the command that needs them, so the torch-free commands work with the base dependencies alone.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__
from .commands import (_cmd_bench, _cmd_bundle, _cmd_compare, _cmd_demo, _cmd_distill, _cmd_eval, _cmd_experiment,
                       _cmd_export, _cmd_fit, _cmd_inspect, _cmd_model_import, _cmd_normalize, _cmd_profiles, _cmd_prune,
                       _cmd_train)
from .data_commands import _cmd_data_build, _cmd_data_clips, _cmd_data_long, _cmd_data_text
from .device_commands import _cmd_transcribe
from .exporter.quantize import MODES as QUANT_MODES  # torch-free: the registry of quantization modes

SCORES = ("activation", "obs", "rms")  # training/pruning.py SCORES, which imports torch (a test keeps the two equal)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="whisper-edge", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"whisper-edge {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("normalize", help="normalize Hindi text lines from stdin to stdout")
    s.add_argument("--preset", default="default", help="default | fold-chandrabindu | no-nukta | lenient")
    s.set_defaults(func=_cmd_normalize)

    m = sub.add_parser("model", help="model management").add_subparsers(dest="model_command", required=True)
    s = m.add_parser("import", help="import a Whisper checkpoint as a Hugging Face folder ready for Hindi")
    s.add_argument("--source", default="bundled-base", help="bundled-base (default) | CT2_DIR | HF_PATH_OR_ID")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--force", action="store_true", help="convert again even if cached")
    s.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint in --out that whisper-edge made (a folder it did not make is never replaced)")
    s.set_defaults(func=_cmd_model_import)

    d = sub.add_parser("data", help="speech data").add_subparsers(dest="data_command", required=True)
    s = d.add_parser("build", help="synthesize a Hindi speech corpus (train/validation/test DatasetDict)")
    s.add_argument("--out", required=True, help="output folder (a build there resumes)")
    s.add_argument("--utterances", type=int, help="number of utterances (default 3600; --small: 240)")
    s.add_argument("--engines", help="comma list of kokoro,espeak (default both)")
    s.add_argument("--kokoro-share", type=float, help="share of utterances spoken by Kokoro (default 0.2; --small: 0.15)")
    s.add_argument("--test-share", type=float, help="share of the sentences held out for test (default 0.08; --small: 0.2); "
                   "more test clips narrow a WER difference's interval (docs/data.md)")
    s.add_argument("--validation-share", type=float, help="share of the sentences held out for validation (default 0.06; --small: 0.1)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--augment", default="light", help="none | light | heavy (test_clean is always kept clean)")
    s.add_argument("--small", action="store_true", help="a small, mostly espeak-ng build for tests and the demo")
    s.add_argument("--jobs", type=int, default=0, help="worker processes (default: all cores)")
    s.add_argument("--text", type=Path, help="extra Hindi sentences, one a line (digits spelled out; Latin lines dropped)")
    s.add_argument("--exclude-corpus", type=Path, action="append", default=[], metavar="DIR",
                   help="never speak a sentence of this earlier build (repeatable): with --test-only or --validation-only, an extra test or validation set")
    s.add_argument("--test-only", action="store_true", help="every sentence held out (test, test_clean, test_noisy, "
                   "test_long; no train or validation): more test clips for a model trained on another corpus")
    s.add_argument("--validation-only", action="store_true", help="every sentence a validation clip (seen voices, "
                   "train's augmentation; no train or test): a larger validation set for choosing between recipes")
    s.add_argument("--long-seconds", type=float, help="test_long's windows at most this long (default 10: a 10-s model "
                   "window; give the window of a model trained with a shorter audio_ctx)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing finished corpus in --out that whisper-edge made (a folder it did not make is never replaced)")
    s.set_defaults(func=_cmd_data_build)

    s = d.add_parser("text", help="natural Hindi sentences from installable text (a folder, a .deb, a zip) for 'data build --text'")
    s.add_argument("--from", dest="sources", nargs="+", type=Path, required=True,
                   help="folders, Debian package files (apt-get download libreoffice-help-hi), zip/xpi files or pages")
    s.add_argument("--out", required=True, type=Path, help="the text file to write, one sentence a line")
    s.add_argument("--limit", type=int, help="at most this many sentences (in the order found)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    s.set_defaults(func=_cmd_data_text)

    s = d.add_parser("long", help="join clean test utterances into minute-long recordings (an audiofolder for the bench)")
    s.add_argument("--corpus", help="a corpus from 'data build' (not needed with --nonspeech)")
    s.add_argument("--out", required=True)
    s.add_argument("--count", type=int, default=6)
    s.add_argument("--seconds", type=float, default=60.0)
    s.add_argument("--max-gap", type=float, default=0.9, help="longest pause between utterances (s); they are 0.3 s or more")
    s.add_argument("--nonspeech", action="store_true",
                   help="instead: silence, room noise, loud noise and hum, --seconds each, empty transcripts (hallucination check)")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=_cmd_data_long)

    s = d.add_parser("clips", help="the first N utterances of a corpus split as an audiofolder (for a machine without 'datasets')")
    s.add_argument("--corpus", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--split", default="test")
    s.add_argument("--limit", type=int, default=24)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=_cmd_data_clips)

    s = sub.add_parser("eval", help="WER/CER of a model on a speech dataset (PyTorch generate)")
    s.add_argument("--model", required=True, help="model folder (from 'model import', 'train' or 'prune')")
    s.add_argument("--data", required=True, help="saved dataset, audiofolder, Common Voice folder, CSV/TSV manifest or hub id")
    s.add_argument("--split", default="test")
    s.add_argument("--language", default="hi")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--limit", type=int, help="evaluate only the first N utterances")
    s.add_argument("--beams", type=int, default=1, help="beam size (1 = greedy)")
    s.add_argument("--max-new-tokens", type=int, default=200)
    s.add_argument("--noisy", action="store_true", help="the split's clips under the corpus's test_noisy effects (0–10 dB "
                   "SNR, reverb, telephone band; one seeded draw per clip): e.g. a noisy validation set, so that choices "
                   "that must hold under noise leave the test splits unread")
    s.add_argument("--dereverb", action="store_true", help="each clip through WPE dereverberation before its features "
                   "(runtime/dereverb.py)")
    s.add_argument("--long", action="store_true", help="the split's clips joined 2–4 to a window with pauses, as the "
                   "corpus's test_long (seeded; --limit counts the clips joined): a long-window validation set")
    s.add_argument("--out", help="write the full report (JSON) here")
    s.add_argument("--against", help="an earlier eval report (--out) of the same split: print the WER difference with "
                   "its paired bootstrap 95 %% interval")
    s.set_defaults(func=_cmd_eval)
    s = sub.add_parser("train", help="fine-tune (dense, SGL or IMP recipe) through Accelerate; resumes in --out")
    s.add_argument("--model", required=True, help="model folder (from 'model import' or an earlier run)")
    s.add_argument("--data", required=True, help="speech data with train and validation splits")
    s.add_argument("--recipe", default="dense", help="dense | sgl | imp | path to a YAML recipe")
    s.add_argument("--out", required=True, help="run folder (model/, checkpoints/, log.csv); an existing run resumes")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe field (e.g. max_steps=50, sgl.alpha=0.2)")
    s.add_argument("--max-train", type=int, help="use only the first N training clips")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("prune", help="remove heads and FFN channels (adaptive two-pass, IMP baseline, or zeros only)")
    s.add_argument("--model", required=True)
    s.add_argument("--out", required=True, help="output folder (model/ holds the pruned checkpoint)")
    s.add_argument("--method", default="adaptive", choices=["adaptive", "imp", "zeros"])
    s.add_argument("--data", help="speech data (for --wer-budget, --recover-steps, imp, and the validation WER)")
    s.add_argument("--wer-budget", type=float, help="largest strength whose validation WER rises at most this much (absolute)")
    s.add_argument("--strength", type=float, default=1.0, help="scales both passes (0 = remove exact zeros only)")
    s.add_argument("--score", default="obs", choices=SCORES,
                   help="group score: obs (default): what removing the group costs once the rest is re-fitted, "
                        "activation: its activation-aware contribution (both measured on a few training batches of "
                        "--data), or rms: its weight RMS (no data)")
    s.add_argument("--k1", type=float, default=0.5, help="pass 1: remove groups below k1 × the layer's median score")
    s.add_argument("--k2", type=float, default=2.0, help="pass 2: remove survivors below mean − k2 × std")
    s.add_argument("--passes", type=int, default=2, choices=[1, 2])
    s.add_argument("--scope", default="layer", choices=["layer", "global"], help="statistics per layer (default) or pooled")
    s.add_argument("--no-compensate", action="store_true", help="do not re-fit out_proj/fc2 of pruned sublayers by least "
                   "squares (then only the removed groups' constant output is folded into the biases)")
    s.add_argument("--ridge", type=float, default=1e-2, help="compensation: ridge toward the original weights (relative)")
    s.add_argument("--calib-batches", type=int, default=8, help="training batches of 8 for the activation score and the compensation")
    s.add_argument("--recover-steps", type=int, default=0, help="short dense fine-tune after pruning")
    s.add_argument("--ablation", action="store_true", help="compare one/two passes and per-layer/global statistics "
                   "(validation WER and size; writes OUT/ablation.json, no checkpoint)")
    s.add_argument("--calib-augment", action="store_true", help="the calibration clips hear the dense recipe's "
                   "augmentation (noise, reverb, telephone …) instead of clean speech only")
    s.add_argument("--calib-concat", type=float, default=0.0, metavar="SHARE", help="that share of the calibration "
                   "windows holds 2–3 clips joined (windows full of speech, as long recordings give); with "
                   "--removal-ablation: a variant")
    s.add_argument("--long-validation", action="store_true", help="--removal-ablation: also the validation clips joined "
                   "2–4 to a window, as test_long (eval --long)")
    s.add_argument("--removal-ablation", type=float, metavar="SHARE", help="compare the ways to remove SHARE of attention "
                   "+ FFN from --model: without / with compensation, with --calib-augment also calibrated on augmented "
                   "audio, with --sgl SGL's groups; validation WER (with --noisy-validation also under the test_noisy "
                   "effects); writes OUT/rows.json and OUT/ablation.json, no checkpoint")
    s.add_argument("--sgl", help="--removal-ablation: an SGL-trained checkpoint whose choice of groups is compared")
    s.add_argument("--compare-score", choices=SCORES,
                   help="--removal-ablation: also the compensated removal with groups judged by this score")
    s.add_argument("--noisy-validation", action="store_true", help="--removal-ablation: also the validation clips at "
                   "0–10 dB SNR with reverb and telephone band (the corpus's test_noisy effects)")
    s.add_argument("--eval-limit", type=int, default=48, help="validation utterances (0 = skip the validation WER)")
    s.add_argument("--target-sparsity", type=float, default=0.35, help="imp: share of attention/FFN weights at zero")
    s.add_argument("--rounds", type=int, default=4, help="imp: pruning rounds")
    s.add_argument("--steps", type=int, help="imp: total fine-tuning steps (default: the recipe's)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe field of the IMP or recovery run")
    s.set_defaults(func=_cmd_prune)

    s = sub.add_parser("distill", help="cache a teacher's top-k logits on a corpus's train split (recipes' distill.teacher)")
    s.add_argument("--teacher", required=True, help="the teacher checkpoint (the dense fine-tuned model)")
    s.add_argument("--data", required=True, help="corpus whose train split the students train on")
    s.add_argument("--out", required=True, help="the cache file (.npz)")
    s.add_argument("--top-k", type=int, default=16)
    s.add_argument("--max-label-tokens", type=int, default=200)
    s.set_defaults(func=_cmd_distill)

    s = sub.add_parser("inspect", help="parameters, FLOPs, weight memory and the per-layer record of a checkpoint")
    s.add_argument("model")
    s.add_argument("--token-ctx", type=int, default=64, help="self-attention context for the per-token decoder FLOPs")
    s.add_argument("--json", action="store_true")
    s.add_argument("--importance", metavar="DATA", help="also the activation-aware importance of every group, measured on "
                   "training batches of DATA, against the weight RMS (what the adaptive SGL and the pruning score read)")
    s.add_argument("--calib-batches", type=int, default=8)
    s.set_defaults(func=_cmd_inspect)

    s = sub.add_parser("export", help="a checkpoint → a verified ONNX bundle (pruned groups physically removed)")
    s.add_argument("--model", required=True)
    s.add_argument("--out", required=True, help="bundle folder (written whole or not at all)")
    s.add_argument("--quantize", default=None, choices=list(QUANT_MODES),
                   help="exporter/quantize.py's modes (default none, or the --profile's quantization)")
    s.add_argument("--vocab", choices=["hi"], help="keep only the tokens Hindi needs (needs --data)")
    s.add_argument("--audio-ctx", type=int, help="encoder positions of the exported graphs (default: the --profile's, "
                   "else the model's; 500 = 10-s windows)")
    s.add_argument("--data", help="speech data: validation clips for the token check, train transcripts for --vocab")
    s.add_argument("--samples", type=int, default=4, help="clips for the greedy-token check")
    s.add_argument("--sample-split", default="validation")
    s.add_argument("--wer-clips", type=int, default=16, help="validation clips for the WER of fp32 and the quantized variant (0 = skip)")
    s.add_argument("--max-wer-increase", type=float, default=1.0, help="a quantized variant may raise the validation WER this much")
    s.add_argument("--int8-encoder", action="store_true", help="int8 for the encoder too (off: it costs accuracy on Whisper)")
    s.add_argument("--smooth-alpha", type=float, help="with --int8-encoder: SmoothQuant's migration strength (0.5 is the "
                   "paper's), statistics from the --data clips (exporter/smooth.py)")
    s.add_argument("--encoder-fp32", type=int, default=0, help="with --int8-encoder: keep the K weight groups a "
                   "sensitivity scan ranks most harmful in fp32 (exporter/sensitivity.py)")
    s.add_argument("--language", default="hi")
    s.add_argument("--profile", help="device profile the bundle is meant for (recorded in the manifest)")
    s.add_argument("--no-verify", action="store_true", help="skip validation against PyTorch")
    s.add_argument("--baseline", choices=["optimum"], help="export the dense model through optimum-onnx instead")
    s.add_argument("--overwrite", action="store_true", help="replace an existing bundle in --out that whisper-edge made (a folder it did not make is never replaced)")
    s.set_defaults(func=_cmd_export)

    b = sub.add_parser("bundle", help="check or pack a bundle").add_subparsers(dest="bundle_command", required=True)
    s = b.add_parser("verify", help="check every file's size and sha256 against the manifest")
    s.add_argument("bundle")
    s.set_defaults(func=_cmd_bundle)
    s = b.add_parser("pack", help="write a bundle folder as one archive")
    s.add_argument("bundle")
    s.add_argument("archive")
    s.set_defaults(func=_cmd_bundle)
    s = b.add_parser("unpack", help="unpack an archive (refuses absolute paths, '..' and links)")
    s.add_argument("archive")
    s.add_argument("out")
    s.add_argument("--overwrite", action="store_true", help="replace an existing bundle in OUT that whisper-edge made (a folder it did not make is never replaced)")
    s.set_defaults(func=_cmd_bundle)
    s = b.add_parser("tokens", help="decode an audiofolder's clips and record every clip's tokens and this machine (for 'bundle parity')")
    s.add_argument("bundle")
    s.add_argument("--data", required=True, help="an audiofolder (WAV files + metadata.csv; 'data clips' makes one)")
    s.add_argument("--limit", type=int)
    s.add_argument("--threads", type=int)
    s.add_argument("--out", required=True, help="the record (JSON)")
    s.set_defaults(func=_cmd_bundle)
    s = b.add_parser("parity", help="one bundle's records from two machines: fp32 tokens identical, quantized WER within a bound")
    s.add_argument("reference", help="record from the reference machine")
    s.add_argument("other", help="record from the machine under test")
    s.add_argument("--max-wer-diff", type=float, default=0.5, help="a quantized bundle's allowed WER increase (points)")
    s.add_argument("--out", help="write the comparison as JSON")
    s.set_defaults(func=_cmd_bundle)

    s = sub.add_parser("transcribe", help="transcribe audio files with a bundle (no torch needed)")
    s.add_argument("--bundle", required=True, help="bundle folder or archive")
    s.add_argument("audio", nargs="+")
    s.add_argument("--profile", help="device profile (threads, execution providers)")
    s.add_argument("--threads", type=int)
    s.add_argument("--audio-window", choices=["auto", "fixed", "dynamic"],
                   help="auto (default): each clip in a window sized to it when the bundle's model was trained for that "
                        "(manifest dynamic_ctx), else the full window; fixed: always the full window; dynamic: sized "
                        "windows even for a model not trained for them (costs WER)")
    s.add_argument("--beam", type=int, default=1)
    s.add_argument("--language")
    s.add_argument("--max-new-tokens", type=int, default=200)
    s.add_argument("--repetition-guard", type=int, default=4, help="stop a loop of the same n-gram repeated N times (0 = off)")
    s.add_argument("--restart-guard", type=int, default=0,
                   help="greedy: end a window whose text starts over once N tokens of the copy match (0 = off; 16 "
                        "removed a sentence said twice, runtime/decoding.py)")
    s.add_argument("--temperatures", default="0,0.2,0.4,0.6,0.8,1.0",
                   help="temperature fallback: decode again at the next one while a window's text loops or is unsure "
                        "(runtime/decoding.py); 0 alone = plain greedy/beam")
    s.add_argument("--compression-ratio-threshold", type=float, default=2.4, help="a text that gzips better is a loop (0 = off)")
    s.add_argument("--logprob-threshold", type=float, default=-1.0, help="mean token log-probability below it is unsure")
    s.add_argument("--no-speech-threshold", type=float, default=0.6,
                   help="<|nocaptions|> probability above it, with an unsure text, is silence: no text (0 = off)")
    s.add_argument("--model-timestamps", action="store_true",
                   help="decode Whisper's timestamp tokens: a segment per sentence at the model's own times inside each "
                        "speech region (default: one segment per region, timed by the voice activity)")
    s.add_argument("--vad", default="auto", choices=["auto", "silero", "energy", "off"],
                   help="voice activity: decode only speech, cut long audio in pauses (auto: Silero if the [vad] extra "
                        "is installed, else energy); off: consecutive fixed windows")
    s.add_argument("--vad-pack", action="store_true", help="join consecutive speech regions into one window (faster, "
                   "but a model trained on single sentences may stop after the first)")
    s.add_argument("--stream", action="store_true",
                   help="read each input (a path, or - for standard input) as a stream: bounded memory, each segment "
                        "printed as soon as it is final (runtime/stream.py); json is then JSON Lines")
    s.add_argument("--raw", choices=["s16le", "f32le"], help="--stream input is raw PCM of this format (needs --rate, --channels)")
    s.add_argument("--rate", type=int, help="sample rate of raw PCM")
    s.add_argument("--channels", type=int, help="channel count of raw PCM")
    s.add_argument("--format", default="txt", help="txt, json, srt, vtt, tsv; comma-separated for several")
    s.add_argument("--output-dir", help="write FILE_STEM.FORMAT here (default: standard output)")
    s.set_defaults(func=_cmd_transcribe)

    s = sub.add_parser("bench", help="latency, memory and WER of bundles side by side with PyTorch, optimum, CTranslate2")
    s.add_argument("--bundle", nargs="*", help="our bundles (folders or archives)")
    s.add_argument("--data", required=True, help="clips with references (saved dataset, audiofolder, manifest …)")
    s.add_argument("--split", default="test")
    s.add_argument("--limit", type=int, default=20, help="clips (0 = all)")
    s.add_argument("--compare", help="comma list of pytorch,optimum,ctranslate2")
    s.add_argument("--model", help="dense checkpoint for the peers (optimum and CTranslate2 exports are made from it)")
    s.add_argument("--optimum", help="an existing optimum export folder")
    s.add_argument("--ct2", help="an existing CTranslate2 folder (default: converted from --model, else the bundled base)")
    s.add_argument("--profile", help="device profile (threads, providers, beam)")
    s.add_argument("--threads", type=int, help="intra-op threads per backend (default 2, or the profile's)")
    s.add_argument("--beam", type=int)
    s.add_argument("--repeats", type=int, default=2, help="timed runs per clip (the best counts) after one warm-up")
    s.add_argument("--max-new-tokens", type=int, default=200)
    s.add_argument("--vad", default="off", choices=["off", "energy", "silero", "auto"],
                   help="our bundles only: decode speech regions (off: fixed windows, as the peers do)")
    s.add_argument("--model-timestamps", action="store_true", help="our bundles only: decode timestamp tokens (segment "
                   "times from the model; with data from 'data long' the bench reports the boundary error)")
    s.add_argument("--audio-window", help="our bundles only: auto | fixed | dynamic, or a comma list (each bundle is "
                   "then benched once per window rule, e.g. fixed,dynamic)")
    s.add_argument("--exact-int8", help="our bundles only: on | off, or on,off (each bundle benched once per setting): "
                   "exact int8 MatMuls on x86 CPUs without VNNI (on by default; docs/bench.md)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_bench)

    s = sub.add_parser("profiles", help="the shipped device profiles, one line each (a YAML path works wherever a name does)")
    s.set_defaults(func=_cmd_profiles)

    s = sub.add_parser("fit", help="the most accurate bundle within a device profile's memory and speed budget, measured here")
    s.add_argument("--profile", required=True, help="device profile name or YAML path (memory_budget_mb, target_rtf, threads)")
    s.add_argument("--model", required=True, nargs="+", help="checkpoints to choose from (dense, pruned …)")
    s.add_argument("--data", required=True, help="corpus: validation clips for WER, test clips for the bench")
    s.add_argument("--out", required=True, help="OUT/bundle (the chosen one), OUT/fit.md, OUT/candidates/")
    s.add_argument("--quantize", nargs="+", choices=list(QUANT_MODES), help="modes to try (default: the profile's, int8, int4)")
    s.add_argument("--shares", nargs="*", type=float, default=[],
                   help="also prune each model to these shares of attention + FFN (compensated, not retrained)")
    s.add_argument("--vocab", choices=["hi"], help="export every candidate with the Hindi vocabulary")
    s.add_argument("--clips", type=int, default=24, help="test clips for the bench")
    s.add_argument("--wer-clips", type=int, default=48, help="validation clips for WER")
    s.set_defaults(func=_cmd_fit)

    s = sub.add_parser("experiment", help="the paper's comparison end to end (dense, SGL+adaptive, IMP; export; bench); resumable")
    s.add_argument("--config", default="recipes/paper.yaml")
    s.add_argument("--out", required=True)
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting of the config (e.g. imp.rounds=4, prune.round_steps=[40,140], bench=null); "
                        "the run's OUT/experiment.yaml records the result")
    s.add_argument("--reuse", metavar="RUN",
                   help="another experiment's folder: its finished stages (base, dense, SGL, teacher logits) whose "
                        "settings are this run's too are linked in instead of computed again (OUT/reused.json says which)")
    s.add_argument("--validation-only", action="store_true",
                   help="stop after training and pruning, before any test split is read (OUT/validation.md); "
                        "for comparing recipes on the validation split. The same command without it continues")
    s.set_defaults(func=_cmd_experiment)

    s = sub.add_parser("compare", help="several experiment runs pooled: each compressed model's WER difference from its "
                                       "own dense model, per run and their mean with a bootstrap interval")
    s.add_argument("runs", nargs="+", help="experiment --out folders (or their results.json)")
    s.add_argument("--splits", nargs="+", help="splits to pool (default: test, test_long, test_noisy, test+extra_test)")
    s.add_argument("--against", default="dense", choices=["dense", "imp"],
                   help="the reference in each run: its dense model, or IMP (structured against unstructured)")
    s.add_argument("--by", metavar="COLUMN", help="one row per value of a column of the corpora the runs were tested "
                   "on (engine, voice_group, voice, augment): where the compressed model loses; reads the corpora the "
                   "runs' configs name (data, eval.extra_test), so run it from the folder the experiments ran in")
    s.add_argument("--out", help="also write the table (Markdown) and the figures (OUT.json) here")
    s.set_defaults(func=_cmd_compare)

    s = sub.add_parser("demo", help="short end-to-end run on small data (what `make demo` runs)")
    s.add_argument("--out", default="demo-out")
    s.add_argument("--limit", type=int, default=24, help="test utterances to evaluate (0 = all)")
    s.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "datasets", "accelerate", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        # Library errors carry a message that says what was wrong and what to do.
        print(f"whisper-edge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("whisper-edge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
