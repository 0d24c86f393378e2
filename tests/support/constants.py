"""Who the tests are: the device, its neighbour, their tokens, the operator and the
dashboard user that every receiver the tests start knows by default."""

from __future__ import annotations

DEVICE = "beamrider-0001"
OTHER_DEVICE = "beamrider-0002"
DEVICE_TOKEN = "device-token-0001"
OTHER_DEVICE_TOKEN = "device-token-0002"
OPERATOR = "ops"
OPERATOR_TOKEN = "operator-token-ops"
TOKENS = {DEVICE: DEVICE_TOKEN, OTHER_DEVICE: OTHER_DEVICE_TOKEN, OPERATOR: OPERATOR_TOKEN}
USER, PASSWORD = "admin", "correct horse battery staple"
