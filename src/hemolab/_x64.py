"""Turn on float64 in JAX, once, before any array is made (hemolab's engine is float64).

Clinical counts span 1e-4..1e3 and tolerances reach 1e-8: float32 cannot carry them.
"""

import jax

jax.config.update("jax_enable_x64", True)
