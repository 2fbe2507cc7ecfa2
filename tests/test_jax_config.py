"""hemolab's XLA settings (``hemolab._jax_config``): the classic CPU emitters by default
(faster compiles, design note 020), a user's own ``XLA_FLAGS`` choice respected, and the same
numbers either way to rounding. Each side runs in a fresh process: XLA reads its flags once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = r"""
import json, os
import numpy as np
import hemolab as hl
m = hl.get_model("friberg_docetaxel")
rng = np.random.default_rng(3)
mtt = m.parameter("MTT").value * rng.uniform(0.7, 1.3, 40)
events = hl.library.typical_run("friberg_docetaxel").events()
res = hl.simulate(m, events, params={"MTT": mtt}, grid=np.arange(0.0, 505.0, 8.0),
                  outputs=["ANC"], rtol=1e-8, atol=1e-10)
print(json.dumps({"flags": os.environ.get("XLA_FLAGS", ""), "anc": res.variable("ANC").tolist(),
                  "status": res.status.tolist()}))
"""


def _run(xla_flags: str | None) -> dict:
    env = {**os.environ, "HEMOLAB_HOST_DEVICES": "1"}
    env.pop("XLA_FLAGS", None)
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_classic_emitters_by_default_a_users_flag_wins_and_numbers_agree():
    default = _run(None)
    own = _run("--xla_cpu_use_fusion_emitters=true")
    assert default["flags"] == "--xla_cpu_use_fusion_emitters=false"
    assert own["flags"] == "--xla_cpu_use_fusion_emitters=true"
    assert default["status"] == own["status"] == [0] * 40
    a, b = np.array(default["anc"]), np.array(own["anc"])
    assert np.isfinite(a).all() and a.shape == (40, 64)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=0)
