"""A forked process never reuses the shared adapters of its parent: it opens its own at first lookup.

A pre-forking server (or Spark's Python daemon) forks workers from a process that may already
have looked features up. Each child must open its own adapter (its own connection pool, lock and
monitoring thread), and the parent's adapter must keep working after a child used and left.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pandas as pd
import pytest

from fs_augment import FeatureStoreAugmenter, connections
from fs_augment.connections import close_all, get_adapter
from fs_augment.keys import encode_value, feature_key

RECIPE = {"augmenter": {"features": [{"feature_namespace": "user_demographics", "features": ["age"]}]}}

# os.fork is POSIX only; in CI (Linux) a missing fork is a failure, not a skip
pytestmark = pytest.mark.skipif(not hasattr(os, "fork") and not os.environ.get("CI"), reason="os.fork is POSIX only")


def in_child(work) -> dict:
    """Run ``work()`` in a forked child; its JSON answer (the child is killed after 30 s)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os.close(read)
        try:
            answer = {"ok": True, **work()}
        except BaseException as exc:  # reported to the parent, which fails the test
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(answer).encode())
        os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 30
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child did not finish in 30 s (a lock inherited from the parent?)")
        time.sleep(0.02)
    with os.fdopen(read, "rb") as fh:
        answer = json.loads(fh.read() or b'{"ok": false, "error": "no answer"}')
    assert answer.pop("ok"), answer.get("error")
    return answer


@pytest.fixture
def fitted(redis_client, redis_config_dir, monkeypatch):
    for i in range(5):
        redis_client.set(feature_key("user_demographics", "age", f"u{i}"), encode_value(20 + i))
    monkeypatch.setenv("FS_AUGMENT_ENV", "test")
    monkeypatch.setenv("FS_AUGMENT_CONFIG_DIR", str(redis_config_dir))
    close_all()
    aug = FeatureStoreAugmenter(RECIPE, mode="online").fit(pd.DataFrame({"user_id": ["u0", "u1"]}))
    yield aug
    close_all()


def test_a_forked_child_opens_its_own_adapter_and_leaves_the_parents_working(fitted, redis_client):
    spine = pd.DataFrame({"user_id": ["u3", "nobody", "u1"]})
    expected = fitted.transform(spine)  # the parent has an adapter with a live connection now
    parent = get_adapter()
    parent_client = parent.online.client
    parent_connection = parent_client.client_id()

    def work() -> dict:
        child = get_adapter()
        ages = fitted.transform(spine)["user_demographics__age"].tolist()
        return {"same_adapter": child is parent, "same_client": child.online.client is parent_client,
                "connection": child.online.client.client_id(), "ages": ages, "pid": os.getpid()}

    answer = in_child(work)
    assert answer["pid"] != os.getpid()
    assert answer["same_adapter"] is False and answer["same_client"] is False
    assert answer["connection"] != parent_connection
    assert answer["ages"] == pytest.approx([23.0, float("nan"), 21.0], nan_ok=True)
    # the child's exit closed nothing of the parent's: same adapter, same connection, same answers
    assert get_adapter() is parent and parent_client.client_id() == parent_connection
    pd.testing.assert_frame_equal(fitted.transform(spine), expected)


def test_a_fork_while_another_thread_holds_the_adapters_lock_does_not_deadlock_the_child(fitted):
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with connections._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        answer = in_child(lambda: {"age": fitted.transform(pd.DataFrame({"user_id": ["u2"]}))
                                   ["user_demographics__age"].tolist()})
    finally:
        release.set()
        holder.join(10)
    assert answer["age"] == [22.0]
