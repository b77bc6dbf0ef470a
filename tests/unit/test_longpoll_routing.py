"""Long-poll routing (transport/longpoll_routing.py) is wired only on a cross-node pub/sub; tokens name the owner."""

from __future__ import annotations

from tornado_phoenix.app import make_app
from tornado_phoenix.config import Settings
from tornado_phoenix.transport.longpoll import LongPollSessions


def test_local_pubsub_has_no_router_and_keeps_the_one_process_token():
    _app, endpoint = make_app(Settings())
    assert endpoint.longpoll_router is None
    sessions = LongPollSessions(endpoint, "k" * 64)
    assert sessions.router is None
    assert sessions.verify(sessions.signer.sign(["v1", "phx:lp:abc"])) == ("phx:lp:abc", "")


def test_redis_pubsub_routes_both_long_poll_mounts_and_tokens_name_the_owner():
    _app, endpoint = make_app(Settings(pubsub="redis://127.0.0.1:1/0", secret_key_base="k" * 64))
    router = endpoint.longpoll_router
    assert router is not None and router.node_id == endpoint.pubsub.node_id
    assert len(router.registries) == 2  # /socket/longpoll and /realtime/v1/longpoll
    sessions = router.registries[0]
    assert sessions.verify(sessions.signer.sign(["v1", "phx:lp:abc", "host:1:aa"])) == ("phx:lp:abc", "host:1:aa")
    for data in (["v2", "phx:lp:abc"], ["v1", "phx:lp:abc", 7], ["v1"], {"v1": 1}, "v1"):
        assert sessions.verify(sessions.signer.sign(data)) is None, data
    assert sessions.verify("SFMyNTY.forged.token") is None
    assert router.health() == {"sessions": 0, "forwarding": 0, "held": 0, "forwarded": 0, "served": 0}
