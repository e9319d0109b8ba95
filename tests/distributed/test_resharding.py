"""Which Redis errors are a reshard (temporary: retried) and which are not."""

from __future__ import annotations

import coredis.exceptions as ce
import pytest

from crawlmesh._state._redis import resharding

NON_LOCAL = (
    "Script attempted to access a non local key in a cluster node script: "
    "16f862e62bca91b7650501307f739dcd90bc7bcc, on @user_script:58."
)


@pytest.mark.parametrize(
    "exc",
    [
        ce.TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
        ce.AskError("850 127.0.0.1:7001"),
        ce.ClusterDownError("CLUSTERDOWN The cluster is down"),
        ce.ClusterError("Maximum retries exhausted."),
        ce.ResponseError(NON_LOCAL),
    ],
)
def test_a_reshard_is_temporary(exc: Exception) -> None:
    assert resharding(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ce.MovedError("850 127.0.0.1:7001"),  # (a plain client: the slot is elsewhere for good)
        ce.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ce.ResponseError("ERR Error running script: crawlmesh: unknown op z"),
        ce.ConnectionError("Connection lost"),
    ],
)
def test_other_errors_are_not_a_reshard(exc: Exception) -> None:
    assert not resharding(exc)
