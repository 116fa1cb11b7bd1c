"""whisper-edge: structured pruning, compact ONNX export and a torch-free runtime for Whisper on edge devices.

Import names: whisper_edge.runtime (torch-free), whisper_edge.training, whisper_edge.exporter.
"""

__version__ = "0.1.0"
