"""What every bench peer shares: the audio is cut into the model's windows, and each window's text,
encoder time and decoder time are added up, so the table compares like with like."""

from __future__ import annotations

from ..runtime.features import HOP

__all__ = ["Peer"]


class Peer:
    """A peer transcribes a clip window by window; ``_window`` returns (text, encoder s, decoder s, tokens), the
    times None for a peer that cannot time its stages (its row then shows the end-to-end time only)."""

    frames: int
    max_new_tokens: int = 200

    def _window(self, chunk, n: int) -> tuple[str, float, float, int]:
        raise NotImplementedError

    def transcribe(self, wav):
        n = self.frames * HOP
        texts, enc_s, dec_s, tokens, windows, timed = [], 0.0, 0.0, 0, 0, True
        for start in range(0, len(wav), n):
            text, e, d, t = self._window(wav[start:start + n], n)
            texts.append(text)
            timed = timed and e is not None and d is not None
            enc_s, dec_s = (enc_s + e, dec_s + d) if timed else (enc_s, dec_s)
            tokens, windows = tokens + t, windows + 1
        stages = {"encoder_s": enc_s, "decoder_s": dec_s, "tokens": tokens} if timed else {}
        return " ".join(t for t in texts if t), stages | {"windows": windows}
