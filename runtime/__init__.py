"""Torch-free runtime: audio, log-mel, tokenizer, decoding, ONNX Runtime sessions, bundles, metrics."""
