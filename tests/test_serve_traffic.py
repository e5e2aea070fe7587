"""Challenger traffic policies on a real server: canary answers a share of requests with the
challenger (and says so), shadow scores every request with it in the background and logs those
predictions with the shadow flag without ever returning them."""

from __future__ import annotations

from collections import Counter

import httpx
import pandas as pd
import pytest
from test_serve_app import MODEL, running, shipped, train_version, wait_for

from serein.errors import UsageError
from serein.serve.app import create_app
from serein.workspace import Workspace


@pytest.fixture(scope="module")
def challenged(tmp_path_factory: pytest.TempPathFactory, credit_df: pd.DataFrame) -> tuple[Workspace, list[dict]]:
    """``credit`` v1 (champion) and v2 (challenger)."""
    ws = Workspace.init(tmp_path_factory.mktemp("traffic") / "ws")
    frame = credit_df.iloc[:1500]
    assert train_version(ws, frame, max_iter=20, promote=True) == 1
    assert train_version(ws, frame, max_iter=40, promote=False) == 2
    if ws.registry.list_models()[0]["challenger"] != 2:  # the gate may not have made it challenger
        ws.registry.client.set_registered_model_alias(MODEL, "challenger", "2")
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
            for r in frame.drop(columns=["default", "applied_at"]).iloc[:5].to_dict("records")]
    return ws, rows


def app_with(ws: Workspace, **challenger: object):
    policy = Workspace(ws.root)
    policy.config["serve"].update(reload_interval=0.2, challenger=challenger)
    return create_app(policy)


def test_canary_answers_a_share_with_the_challenger(challenged) -> None:
    ws, rows = challenged
    with running(app_with(ws, mode="canary", share=0.5)) as url, httpx.Client(base_url=url) as client:
        wait_for(lambda: "challenger" in client.get(f"/v1/models/{MODEL}").json(), timeout=60)
        assert client.get(f"/v1/models/{MODEL}").json()["challenger"] == {"version": 2, "mode": "canary", "share": 0.5}
        answers = [client.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:2]}).json()
                   for _ in range(120)]
        by_version = Counter(a["version"] for a in answers)
        assert 20 <= by_version[2] <= 100, by_version  # binomial(120, 0.5): far inside these bounds
        assert all(a.get("challenger") is True for a in answers if a["version"] == 2)
        assert all("challenger" not in a for a in answers if a["version"] == 1)
        assert client.get(f"/v1/models/{MODEL}").json()["version"] == 1  # the champion is what is described

        ws.registry.client.delete_registered_model_alias(MODEL, "challenger")
        try:
            wait_for(lambda: all(client.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:1]})
                                 .json()["version"] == 1 for _ in range(20)), timeout=5)
        finally:
            ws.registry.client.set_registered_model_alias(MODEL, "challenger", "2")
    logged = shipped(ws, MODEL, [a["request_id"] for a in answers])
    assert {(r["request_id"], r["version"]) for r in logged} == {(a["request_id"], a["version"]) for a in answers}


def test_shadow_scores_every_request_but_never_answers(challenged) -> None:
    ws, rows = challenged
    with running(app_with(ws, mode="shadow")) as url, httpx.Client(base_url=url) as client:
        wait_for(lambda: "challenger" in client.get(f"/v1/models/{MODEL}").json(), timeout=60)
        answers = [client.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:3]}).json()
                   for _ in range(30)]
        assert {a["version"] for a in answers} == {1} and not any("challenger" in a for a in answers)
        ids = [a["request_id"] for a in answers]

        def shadow_rows() -> list[dict] | None:
            found = [r for r in ws.store.prediction_rows(MODEL, include_shadow=True)
                     if r["request_id"] in ids and r["shadow"]]
            return found if len(found) == 3 * len(ids) else None

        shadows = wait_for(shadow_rows, timeout=5)
        assert {r["version"] for r in shadows} == {2}
        served = shipped(ws, MODEL, ids)  # monitoring's default view leaves shadow rows out
        assert {r["version"] for r in served} == {1} and len(served) == 3 * len(ids)
        feedback = client.post(f"/v1/models/{MODEL}/feedback", json={"request_id": ids[0], "label": [0, 1, 0]})
        assert feedback.json() == {"stored": 3}  # the shadow rows do not make the request ambiguous


@pytest.mark.parametrize("challenger, problem", [({"mode": "blue-green"}, "serve.challenger.mode must be one of"),
                                                 ({"mode": "canary", "share": 1.5}, "serve.challenger.share must be")])
def test_a_bad_challenger_policy_is_named(workspace: Workspace, challenger: dict, problem: str) -> None:
    workspace.config["serve"]["challenger"] = challenger
    with pytest.raises(UsageError, match=problem):
        create_app(workspace)


def test_settling_the_heap_frees_a_swapped_out_versions_cycles_and_freezes_the_rest() -> None:
    """After a swap the heap is collected and frozen again: garbage frozen by the previous
    settle (a cycle, as a swapped-out version may leave) is freed, and what lives stays frozen."""
    import gc
    import weakref

    from serein.serve.models import settle_heap

    class Node:
        pass

    cycle = Node()
    cycle.me = cycle  # type: ignore[attr-defined]
    alive = weakref.ref(cycle)
    try:
        gc.freeze()  # the previous settle froze it while it was live
        del cycle
        assert alive() is not None  # frozen: no collection reaches it
        gc.collect()
        assert alive() is not None
        settle_heap()
        assert alive() is None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
