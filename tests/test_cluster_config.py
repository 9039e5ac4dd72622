"""Settings of dispatchers sharing a database: the lease, and where the others reach this one."""

from __future__ import annotations

from opendispatch.config import DEFAULT_LEASE_S, Config


def test_defaults_and_fly_private_address() -> None:
    config = Config.from_env({}, dotenv=None)
    assert (config.lease_s, config.peer_url) == (DEFAULT_LEASE_S, None) == (10.0, None)
    on_fly = Config.from_env({"FLY_PRIVATE_IP": "fdaa:0:1::3", "WEBHOOK_PORT": "8080"}, dotenv=None)
    assert on_fly.peer_url == "http://[fdaa:0:1::3]:8080"
    set_ = Config.from_env({"OPENDISPATCH_PEER_URL": "http://10.0.0.2:8080/", "OPENDISPATCH_LEASE_S": "3"}, dotenv=None)
    assert (set_.peer_url, set_.lease_s) == ("http://10.0.0.2:8080", 3.0)


def test_bad_values_are_named() -> None:
    for environ in (
        {"OPENDISPATCH_LEASE_S": "0.5"},
        {"OPENDISPATCH_LEASE_S": "soon"},
        {"OPENDISPATCH_PEER_URL": "https://u:p@10.0.0.2"},
        {"OPENDISPATCH_PEER_URL": "http://10.0.0.2:8080/webhooks"},
    ):
        [problem] = Config.problems(environ)
        assert problem.message.startswith(next(iter(environ))), problem.message
