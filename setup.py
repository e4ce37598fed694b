"""Build the native parts (the commP core, multiformats encodings, tiny-file leaves, local reads and folder listing); everything else is in pyproject.toml."""

from setuptools import Extension, setup

# No -march=native: it made SHA-NI code ~100x slower on these machines (see shared perf notes).
# SHA-NI functions get their own target attribute and are chosen at run time after a CPUID check.
CFLAGS = ["-O3", "-std=c11", "-Wall", "-Wextra"]

setup(
    ext_modules=[
        Extension(
            "dataset_worker.content._commp",
            sources=["src/dataset_worker/content/_commp.c"],
            libraries=["crypto"],
            extra_compile_args=CFLAGS,
        ),
        Extension(
            "dataset_worker.content._leaves",
            sources=["src/dataset_worker/content/_leaves.c"],
            depends=["src/dataset_worker/content/_uvarint.h"],
            libraries=["crypto"],
            extra_compile_args=CFLAGS,
        ),
        Extension(
            "dataset_worker.storage._localread",
            sources=["src/dataset_worker/storage/_localread.c"],
            extra_compile_args=CFLAGS,
        ),
        Extension(
            "dataset_worker.content._multiformats",
            sources=["src/dataset_worker/content/_multiformats.c"],
            depends=["src/dataset_worker/content/_uvarint.h"],
            extra_compile_args=CFLAGS,
        ),
    ]
)
