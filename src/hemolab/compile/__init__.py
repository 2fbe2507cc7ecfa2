"""Compilation of models into per-patient JAX functions."""

from hemolab.compile._compiled import (
    CompiledModel as CompiledModel,
    compile_model as compile_model,
    model_hash as model_hash,
)
