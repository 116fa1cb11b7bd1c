"""What every bench peer shares: the audio is cut into the model's windows, and each window's text,
encoder time and decoder time are added up, so the table compares like with like."""

from __future__ import annotations

from ..runtime.features import HOP

__all__ = ["Peer"]


class Peer:
    """A peer transcribes a clip window by window; ``_window`` returns (text, encoder s, decoder s, tokens)."""

    frames: int
    max_new_tokens: int = 200

    def _window(self, chunk, n: int) -> tuple[str, float, float, int]:
        raise NotImplementedError

    def transcribe(self, wav):
        n = self.frames * HOP
        texts, enc_s, dec_s, tokens, windows = [], 0.0, 0.0, 0, 0
        for start in range(0, len(wav), n):
            text, e, d, t = self._window(wav[start:start + n], n)
            texts.append(text)
            enc_s, dec_s, tokens, windows = enc_s + e, dec_s + d, tokens + t, windows + 1
        return " ".join(texts), {"encoder_s": enc_s, "decoder_s": dec_s, "tokens": tokens, "windows": windows}
