"""What the receiver answers: its error objects and its Prometheus metrics text."""

from __future__ import annotations

from typing import Any


def assert_error(response: Any, status: int, error: str) -> dict[str, Any]:
    """A Flask test response carrying the contract's error object with this status."""
    assert response.status_code == status, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], list)
    return body


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    for line in metrics_text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        found = set(label_text.rstrip("}").split(",")) if label_text else set()
        if metric == name and wanted <= found:
            return float(value)
    return 0.0
