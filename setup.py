"""Build the native parts (the commP core, base32); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dataset_worker.content._commp",
            sources=["src/dataset_worker/content/_commp.c"],
            libraries=["crypto"],
            # No -march=native: it made SHA-NI code ~100x slower on these machines
            # (see shared perf notes). SHA-NI functions get their own target attribute
            # and are chosen at run time after a CPUID check.
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra"],
        ),
        Extension(
            "dataset_worker.content._base32",
            sources=["src/dataset_worker/content/_base32.c"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra"],
        ),
    ]
)
