"""The engine stays UI-free: importing every engine module loads no textual, rich or typer."""

import subprocess
import sys


def test_engine_imports_no_ui_library():
    code = (
        "import sys, importlib, pkgutil, tokentui.engine as e\n"
        "for m in pkgutil.walk_packages(e.__path__, 'tokentui.engine.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in {'textual', 'rich', 'typer'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"engine pulled in UI modules: {out.stdout}"
