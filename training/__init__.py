"""Training loops and the ``dilemmas`` command line.

Importing this package before JAX starts its backends adds
:data:`XLA_CPU_WORKAROUND` to ``XLA_FLAGS`` (unless the flag is set already): XLA's
CPU concurrency-optimised scheduler deadlocks a compiled PPI phase (jaxlib 0.10.2;
with the CPU preset's 5 seeds the phase never returns, every thread idle). The
``dilemmas`` command imports it first.
"""

import os

XLA_CPU_WORKAROUND = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def _apply_xla_cpu_workaround() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if XLA_CPU_WORKAROUND.split("=")[0] in flags:
        return
    import sys

    if "jax" in sys.modules:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return
    os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_WORKAROUND}".strip()


_apply_xla_cpu_workaround()
