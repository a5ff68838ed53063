"""Benchmark-only start-up hook: loads every llama.cpp model without its "extra" CPU buffer types.

On CPUs with AMX (Intel Xeon 4th generation and later) llama.cpp moves quantized weights (Q4_K_M, Q8_0) into
an AMX buffer, and on the benchmark machine the first decode then crashes with SIGSEGV (F16 models, which
stay in ordinary buffers, run). ``bench/run_all.py`` puts this folder on ``PYTHONPATH`` for its workers and
``captioneer tag`` when the CPU and the llama.cpp build both have AMX, so that Captioneer's own code path
runs unchanged: every ``llama_model_default_params()`` it gets has ``use_extra_bufts`` off. This also turns
off llama.cpp's AVX2/AVX-512 weight repacking, so prefill is somewhat slower than on a machine without the
crash. The results table says when this was in force.
"""

import importlib.util

if importlib.util.find_spec("llama_cpp") is not None:
    import llama_cpp.llama_cpp as _bindings

    _default_params = _bindings.llama_model_default_params

    def _params_without_extra_buffers():
        params = _default_params()
        params.use_extra_bufts = False
        return params

    _bindings.llama_model_default_params = _params_without_extra_buffers
