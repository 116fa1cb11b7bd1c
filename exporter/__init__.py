"""Exporter (torch + onnx): surgery, ONNX wrappers, validation, quantization, bundles."""
