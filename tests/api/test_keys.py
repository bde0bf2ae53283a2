"""API keys (api/auth.py): the keys file, 401 without/with a bad or revoked key, 429 with
Retry-After over the per-key rate, 403 for non-admin keys on /admin, keys never logged; and the
same through a real node's HTTP server with the official openai client."""

from __future__ import annotations

import json
import logging
import stat
from functools import partial

import httpx
import openai
import pytest
import trio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from wwwserve_p2p import EchoExecutor, NodeConfig, open_node
from wwwserve_p2p.api.auth import ApiKeyMiddleware, KeyRing, KeysFile, hash_key, key_id_of
from wwwserve_p2p.cli import main as cli_main
from wwwserve_p2p.errors import ConfigError


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_app(ring: KeyRing, outcomes: list[tuple[str, str]]) -> Starlette:
    async def ok(request):
        return JSONResponse({"ok": True, "key": request.scope.get("state", {}).get("api_key_id")})

    return Starlette(routes=[Route("/v1/models", ok), Route("/admin/x", ok, methods=["POST"]), Route("/status", ok)],
                     middleware=[Middleware(ApiKeyMiddleware, ring=ring,
                                            on_request=lambda k, o: outcomes.append((k, o)))])


def client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_keys_file_stores_only_hashes_with_mode_0600(tmp_path):
    kf = KeysFile(tmp_path / "keys.json")
    key, rec = kf.add("alice", rate_per_min=30)
    assert key.startswith("wws_") and key_id_of(key) == rec.id
    text = (tmp_path / "keys.json").read_text()
    assert key not in text and key.split("_", 2)[2] not in text
    assert json.loads(text)["keys"][0]["hash"] == hash_key(key)
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert [k.public() for k in kf.load()] == [rec.public()] and "hash" not in rec.public()
    with pytest.raises(ConfigError, match="no key"):
        kf.revoke("bob")
    with pytest.raises(ConfigError, match="> 0"):
        kf.add("x", rate_per_min=0)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="malformed"):
        KeysFile(tmp_path / "bad.json").load()


async def test_missing_invalid_revoked_keys_get_401_and_open_paths_stay_open(tmp_path):
    kf = KeysFile(tmp_path / "keys.json")
    key, rec = kf.add("alice")
    other, _ = kf.add("bob")
    clock = FakeClock()
    ring = KeyRing(kf.path, clock=clock)
    outcomes: list[tuple[str, str]] = []
    async with client(make_app(ring, outcomes)) as http:
        r = await http.get("/v1/models")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "invalid_api_key" and "missing API key" in r.json()["error"]["message"]
        forged = f"wws_{rec.id}_{'A' * 43}"  # right id, wrong secret
        for bad in (forged, "sk-not-ours", key + "x"):
            r = await http.get("/v1/models", headers=bearer(bad))
            assert r.status_code == 401 and r.json()["error"]["message"] == "invalid or revoked API key", bad
        r = await http.get("/v1/models", headers=bearer(key))
        assert r.status_code == 200 and r.json()["key"] == rec.id
        assert (await http.get("/status")).status_code == 200  # operator views need no key
        kf.revoke(rec.id)
        clock.t += 1.5  # the ring re-reads the file at most once a second
        assert (await http.get("/v1/models", headers=bearer(key))).status_code == 401
        assert (await http.get("/v1/models", headers=bearer(other))).status_code == 200
    assert ("", "missing") in outcomes and (rec.id, "ok") in outcomes and ("", "invalid") in outcomes


async def test_over_the_rate_429_with_retry_after_then_allowed_again(tmp_path):
    kf = KeysFile(tmp_path / "keys.json")
    key, rec = kf.add("alice", rate_per_min=2)
    clock = FakeClock()
    outcomes: list[tuple[str, str]] = []
    async with client(make_app(KeyRing(kf.path, clock=clock), outcomes)) as http:
        assert [(await http.get("/v1/models", headers=bearer(key))).status_code for _ in range(2)] == [200, 200]
        r = await http.get("/v1/models", headers=bearer(key))
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
        assert r.headers["retry-after"] == "30"  # 2/min: one request every 30 s
        clock.t += 29
        r = await http.get("/v1/models", headers=bearer(key))
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        clock.t += 1
        assert (await http.get("/v1/models", headers=bearer(key))).status_code == 200
    assert outcomes.count((rec.id, "rate_limited")) == 2 and outcomes.count((rec.id, "ok")) == 3


async def test_admin_paths_need_an_admin_key(tmp_path):
    kf = KeysFile(tmp_path / "keys.json")
    user, _ = kf.add("user")
    admin, _ = kf.add("ops", admin=True)
    async with client(make_app(KeyRing(kf.path), [])) as http:
        assert (await http.post("/admin/x")).status_code == 401
        r = await http.post("/admin/x", headers=bearer(user))
        assert r.status_code == 403 and "not an admin key" in r.json()["error"]["message"]
        assert (await http.post("/admin/x", headers=bearer(admin))).status_code == 200


def test_cli_keys_add_list_revoke(tmp_path, capsys):
    f = str(tmp_path / "k.json")
    assert cli_main(["keys", "--file", f, "--json", "add", "--name", "alice", "--rate", "5", "--admin"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["key"].startswith("wws_") and added["admin"] and added["rate_per_min"] == 5
    assert cli_main(["keys", "--file", f, "list"]) == 0
    listing = capsys.readouterr().out
    assert added["id"] in listing and "alice" in listing and added["key"] not in listing
    assert cli_main(["keys", "--file", f, "revoke", "alice"]) == 0
    capsys.readouterr()
    assert cli_main(["keys", "--file", f, "--json", "list"]) == 0
    assert json.loads(capsys.readouterr().out)["keys"][0]["revoked"] is True
    assert cli_main(["keys", "--file", f, "revoke", "nobody"]) == 2


async def _call(fn, *args, **kwargs):
    return await trio.to_thread.run_sync(partial(fn, *args, **kwargs), abandon_on_cancel=True)


async def test_real_node_with_keys_openai_client_401_429_and_keys_never_logged(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    kf = KeysFile(tmp_path / "keys.json")
    key, rec = kf.add("alice", rate_per_min=3)
    revoked, _ = kf.add("gone")
    kf.revoke("gone")
    config = NodeConfig.embedded(http=True, api={"keys_file": str(kf.path)})
    async with open_node(config, EchoExecutor(models=("echo",))) as node:
        base = node.api_url

        def oai(k: str) -> openai.OpenAI:
            return openai.OpenAI(base_url=base + "/v1", api_key=k, max_retries=0, timeout=10)

        def chat(k: str) -> str:
            r = oai(k).chat.completions.create(model="echo", messages=[{"role": "user", "content": "a b c"}])
            return r.choices[0].message.content

        async with httpx.AsyncClient(base_url=base) as http:  # the openai client always sends a key
            r = await http.post("/v1/chat/completions", json={"model": "echo", "messages": []})
            assert r.status_code == 401
        for bad in ("none", revoked):
            with pytest.raises(openai.AuthenticationError):
                await _call(chat, bad)
        assert await _call(chat, key) == "a b c"
        assert await _call(lambda: [m.id for m in oai(key).models.list().data]) == ["echo"]
        assert await _call(chat, key) == "a b c"
        with pytest.raises(openai.RateLimitError) as err:
            await _call(chat, key)
        assert int(err.value.response.headers["retry-after"]) >= 1
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/health")).json()["status"] == "ok"
            metrics = (await http.get("/metrics")).text
    assert f'wwwserve_api_key_requests_total{{key="{rec.id}",outcome="ok"}} 3.0' in metrics
    assert f'wwwserve_api_key_requests_total{{key="{rec.id}",outcome="rate_limited"}} 1.0' in metrics
    assert 'wwwserve_api_key_requests_total{key="",outcome="invalid"} 2.0' in metrics
    assert 'wwwserve_api_key_requests_total{key="",outcome="missing"} 1.0' in metrics
    # two chat answers of 3 completion tokens each were counted for alice's key
    assert f'wwwserve_api_key_tokens_total{{key="{rec.id}",kind="completion"}} 6.0' in metrics
    logged = caplog.text + metrics
    assert caplog.records and key not in logged and revoked not in logged
    assert key.split("_", 2)[2] not in logged


def test_usage_is_read_from_json_bodies_and_sse_usage_events():
    from wwwserve_p2p.api.auth import _count_usage
    seen: list[tuple[str, int, int]] = []
    on = lambda k, p, c: seen.append((k, p, c))  # noqa: E731
    _count_usage(b'{"id": "x", "usage": {"prompt_tokens": 4, "completion_tokens": 2}}', "k1", on)
    _count_usage(b'data: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}}\n\n', "k1", on)
    _count_usage(b'data: {"choices": [{"delta": {"content": "hi"}}], "usage": null}\n\n', "k1", on)
    _count_usage(b"data: [DONE]\n\n", "k1", on)
    _count_usage(b'{"usage": "not json', "k1", on)
    assert seen == [("k1", 4, 2), ("k1", 5, 7)]
