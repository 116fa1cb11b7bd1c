"""espeak-ng through ctypes, from the PyPI package espeakng-loader (library + data, Hindi included).

No system package is needed. The library is process-global: one voice at a time per process,
so parallel synthesis uses processes, not threads.
"""

from __future__ import annotations

import ctypes
import threading
import unicodedata

import numpy as np

__all__ = ["ESPEAK_RATE", "EspeakError", "espeak_synthesize", "espeak_to_ipa"]

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_PHONEMES_IPA = 0x02

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_lib = None
_rate = 0
_chunks: list[np.ndarray] = []
_lock = threading.Lock()


class EspeakError(RuntimeError):
    pass


@_CALLBACK
def _on_audio(wav, n, _events):
    if n > 0 and wav:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
    return 0


def _library():
    global _lib, _rate
    if _lib is not None:
        return _lib
    try:
        import espeakng_loader
    except ImportError:
        raise EspeakError("espeak-ng synthesis needs the package espeakng-loader: pip install espeakng-loader") from None
    lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
    data = str(espeakng_loader.get_data_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), 0)
    if rate <= 0:
        raise EspeakError(f"espeak-ng failed to initialize with data at {data}")
    lib.espeak_SetSynthCallback(_on_audio)
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
        ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    _lib, _rate = lib, rate
    return lib


def ESPEAK_RATE() -> int:  # noqa: N802 - a constant known only after initialization
    _library()
    return _rate


def _set_voice(lib, voice: str) -> None:
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise EspeakError(f"espeak-ng has no voice {voice!r} (try 'hi', 'hi+m3', 'hi+f2', 'en-us')")


def espeak_synthesize(text: str, voice: str = "hi", *, rate: int = 160, pitch: int = 50, pitch_range: int = 50) -> tuple[np.ndarray, int]:
    """Speak ``text``; returns (float32 samples in [-1, 1], sample rate). ``rate`` in words per minute."""
    with _lock:
        lib = _library()
        _set_voice(lib, voice)
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range), (_VOLUME, 100)):
            lib.espeak_SetParameter(param, int(value), 0)
        _chunks.clear()
        data = text.encode("utf-8") + b"\0"
        if lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None) != 0:
            raise EspeakError(f"espeak-ng could not synthesize {text[:40]!r}")
        lib.espeak_Synchronize()
        pcm = np.concatenate(_chunks) if _chunks else np.zeros(0, np.int16)
        _chunks.clear()
    return pcm.astype(np.float32) / 32768.0, _rate


def espeak_to_ipa(text: str, voice: str = "hi") -> str:
    """IPA phonemes for ``text`` (NFD-normalized, as Kokoro's vocabulary expects)."""
    with _lock:
        lib = _library()
        _set_voice(lib, voice)
        buf = ctypes.c_char_p(text.encode("utf-8"))
        ptr = ctypes.pointer(buf)
        pieces = []
        while ptr.contents.value:
            out = lib.espeak_TextToPhonemes(ptr, _CHARS_UTF8, _PHONEMES_IPA)
            if out:
                pieces.append(out.decode("utf-8"))
    return unicodedata.normalize("NFD", " ".join(p.strip() for p in pieces))
