"""`platform/` is a folder of runtime files, never a package shadowing the standard library."""

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_platform_from_repo_root_is_the_standard_library():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import platform; print(platform.__file__); print(platform.python_version())",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert Path(out[0]).resolve().parent == Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert out[1].startswith("3.11")
    assert not (ROOT / "platform" / "__init__.py").exists()
