"""Stored Responses in the billing database (SQLite and PostgreSQL): per tenant, one read per continuation."""

from __future__ import annotations

import pytest

from billing.database import open_database
from billing.response_store import ResponseStore
from tests.test_billing_support import db_url, pg_url, sqlite_url  # noqa: F401  (fixtures)


@pytest.fixture
async def db(db_url):
    database = await open_database(db_url)
    yield database
    await database.close()


def _response(response_id: str, text: str) -> dict:
    message = {"id": f"msg_{response_id}", "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}
    return {"id": response_id, "object": "response", "created_at": 1_700_000_000, "model": "m", "output": [message]}


def _user(text: str) -> dict:
    return {"id": f"msg_in_{text}", "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": text}]}


async def test_a_stored_response_is_read_back_whole_by_its_tenant(db):
    await db.responses.save("acme", "key-1", _response("resp_1", "hello"), [_user("hi")], [])
    stored = await db.responses.get("acme", "resp_1")
    assert stored is not None
    assert stored.response == _response("resp_1", "hello")
    assert stored.input_items == [_user("hi")] and stored.context_items == []
    assert (stored.tenant, stored.key_id, stored.model) == ("acme", "key-1", "m")


async def test_another_tenant_cannot_read_or_delete_it(db):
    await db.responses.save("acme", None, _response("resp_2", "secret"), [_user("hi")], [])
    assert await db.responses.get("globex", "resp_2") is None
    assert await db.responses.delete("globex", "resp_2") is False
    assert await db.responses.get("acme", "resp_2") is not None


async def test_deleting_removes_it_once(db):
    await db.responses.save("acme", None, _response("resp_3", "bye"), [_user("hi")], [])
    assert await db.responses.delete("acme", "resp_3") is True
    assert await db.responses.get("acme", "resp_3") is None
    assert await db.responses.delete("acme", "resp_3") is False


async def test_the_conversation_is_context_then_input_then_output_and_survives_deleting_its_start(db):
    first = _response("resp_a", "one")
    await db.responses.save("acme", None, first, [_user("q1")], [])
    context = (await db.responses.get("acme", "resp_a")).conversation()
    await db.responses.save("acme", None, _response("resp_b", "two"), [_user("q2")], context)
    await db.responses.delete("acme", "resp_a")
    second = await db.responses.get("acme", "resp_b")
    assert [item["id"] for item in second.conversation()] == [
        "msg_in_q1", "msg_resp_a", "msg_in_q2", "msg_resp_b"
    ]


async def test_a_tenant_pages_through_its_own_responses_newest_first(db):
    stored_at = iter([100.0, 300.0, 200.0, 300.0, 400.0])  # the store's clock at each save
    responses = ResponseStore(db.store, clock=lambda: next(stored_at))
    for i in range(4):
        await responses.save("acme", None, _response(f"resp_p{i}", str(i)), [_user("q")], [])
    await responses.save("globex", None, _response("resp_other", "theirs"), [_user("q")], [])

    first, more = await responses.page("acme", limit=2)
    assert [r["id"] for r in first] == ["resp_p3", "resp_p1"] and more  # stored in the same instant: by id
    rest, more = await responses.page("acme", limit=2, after="resp_p1")
    assert [r["id"] for r in rest] == ["resp_p2", "resp_p0"] and not more
    oldest_first, more = await responses.page("acme", limit=10, ascending=True)
    assert [r["id"] for r in oldest_first] == ["resp_p0", "resp_p2", "resp_p1", "resp_p3"] and not more
    assert oldest_first[0]["output"][0]["content"][0]["text"] == "0"
    # a cursor must be one of the tenant's own responses
    assert await responses.page("acme", limit=2, after="resp_other") is None
    assert await responses.page("acme", limit=2, after="resp_unknown") is None
    assert [r["id"] for r in (await responses.page("globex", limit=5))[0]] == ["resp_other"]
