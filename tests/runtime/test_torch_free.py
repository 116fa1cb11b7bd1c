"""The runtime must work where torch, transformers and optimum cannot be imported (a Raspberry Pi)."""

import pkgutil
import subprocess
import sys

import whisper_edge.runtime as runtime

BLOCKER = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'optimum', 'datasets'):
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
"""


def test_every_runtime_module_imports_without_torch():
    modules = [m.name for m in pkgutil.iter_modules(runtime.__path__)]
    assert "normalize" in modules and "audio" in modules
    code = BLOCKER + "".join(f"import whisper_edge.runtime.{m}\n" for m in modules) + (
        "from whisper_edge.runtime.normalize import normalize\n"
        "assert normalize('हाँ, 2') == 'हाँ दो'\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_transcribe_from_a_bundle_without_torch(tiny_bundle, clips):
    """The whole transcription path (CLI included) with torch, transformers and optimum unimportable."""
    code = BLOCKER + (
        "from whisper_edge.cli import main\n"
        f"rc = main(['transcribe', '--bundle', {str(tiny_bundle)!r}, {str(clips[0]['path'])!r}, '--max-new-tokens', '5'])\n"
        "assert rc == 0, rc\n"
        "assert not any(m.split('.')[0] in ('torch', 'transformers', 'optimum') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
