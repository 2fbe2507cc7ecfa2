"""The engine on two XLA host devices (one ``shard_map`` program, a block of patients per
device) gives the one-device results bit for bit. The main test lanes run one device per
xdist worker, so this test runs the two-device side in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = r"""
import json, sys
import numpy as np
import jax
import hemolab as hl
m = hl.get_model("mackey_glass")
rng = np.random.default_rng(5)
beta = m.parameter("beta").value * rng.uniform(0.9, 1.1, 150)
res = hl.simulate(m, params={"beta": beta}, t_end=60.0, dt=1.0, rtol=1e-8, atol=1e-10)
print(json.dumps({"devices": len(jax.devices()), "x": res.variable("x").tolist(),
                  "status": res.status.tolist()}))
"""


def _run(devices: int) -> dict:
    env = {**os.environ, "HEMOLAB_HOST_DEVICES": str(devices)}
    env.pop("XLA_FLAGS", None)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_host_devices_give_the_one_device_results_bitwise():
    two, one = _run(2), _run(1)
    assert two["devices"] == 2 and one["devices"] == 1
    assert two["status"] == one["status"] == [0] * 150
    np.testing.assert_array_equal(np.array(two["x"]), np.array(one["x"]))
