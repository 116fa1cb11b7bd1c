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


FORBIDDEN = ("torch", "transformers", "optimum", "datasets", "accelerate")


def test_no_runtime_module_imports_the_torch_side_at_any_depth():
    """A static scan of every import in runtime/, function-level ones included (a blocker only sees the paths a
    test happens to run)."""
    import ast
    from pathlib import Path

    bad = []
    for path in sorted(Path(runtime.__path__[0]).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level >= 2 or (node.level == 0 and (node.module or "").startswith("whisper_edge.")
                                       and not node.module.startswith("whisper_edge.runtime")):
                    bad.append(f"{path.name}:{node.lineno} from {'.' * node.level}{node.module or ''}")
                    continue
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            bad += [f"{path.name}:{node.lineno} import {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not bad, "runtime/ reaches into the torch side: " + ", ".join(bad)


def test_torch_free_commands_run_under_an_import_blocker(tiny_bundle, clips, audiofolder, tmp_path):
    """normalize, bundle verify/pack/unpack and a bench of our bundles on an audiofolder, with torch unimportable."""
    code = BLOCKER + (
        "import io\n"
        "from whisper_edge.cli import main\n"
        f"assert main(['bundle', 'verify', {str(tiny_bundle)!r}]) == 0\n"
        f"assert main(['bundle', 'pack', {str(tiny_bundle)!r}, {str(tmp_path / 'b.tar')!r}]) == 0\n"
        f"assert main(['bundle', 'unpack', {str(tmp_path / 'b.tar')!r}, {str(tmp_path / 'u')!r}]) == 0\n"
        "sys.stdin = io.StringIO('हाँ, 2\\n')\n"
        "assert main(['normalize']) == 0\n"
        "from whisper_edge.runtime.bench import load_clips, run_bench\n"
        f"clips = load_clips({str(audiofolder)!r}, limit=1)\n"
        f"rep = run_bench([('t', 'ours', {str(tiny_bundle)!r})], clips, {str(tmp_path / 'bench')!r}, repeats=1, max_new_tokens=3)\n"
        "assert 'error' not in rep['rows'][0], rep['rows'][0]\n"
        "assert not any(m.split('.')[0] in ('torch', 'transformers', 'optimum') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
