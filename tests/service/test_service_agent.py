"""A prompt task through the service, with the real Claude Code against the scripted
Anthropic API: its diff is the agent's edit, and a follow-up goes on in the same session
(its first request holds the earlier turns) from the same work (its diff holds both
edits). A follow-up counts against the caller's limit of tasks not ended."""

from __future__ import annotations

import json
from pathlib import Path

from fake_anthropic import FakeAnthropic, Reply
from git_repos import FIX_ADD
from git_server import GitServer

from conftest import Service, wait_done

FIX = [FIX_ADD, Reply.say("Fixed add(); remember the word PAPAYA.")]
DOCUMENT = [
    Reply.call("Edit", {"file_path": "{cwd}/app.py", "old_string": "def add(a, b):\n",
                        "new_string": 'def add(a, b):\n    """The sum."""\n'}),
    Reply.say("Documented."),
]


def test_a_prompt_task_and_its_follow_up(service: Service, alice: str, bare: Path,
                                         fake_api: FakeAnthropic) -> None:
    fake_api.script = list(FIX)
    with GitServer(bare.parents[1], None) as git, service.client(alice) as client:
        repo = f"{git.url}/o/app.git"
        first = client.post("/v1/tasks", json={"prompt": "Fix add() in app.py",
                                               "repo": repo}).json()
        done = wait_done(client, first["id"], timeout=180)
        assert done["status"] == "SUCCEEDED", done["reason"]
        assert "+    return a + b" in client.get(f"/v1/tasks/{first['id']}/diff").text
        result = client.get(f"/v1/tasks/{first['id']}/result").json()
        session = result["agent"]["session_id"]
        assert session and result["agent"]["usage"]

        fake_api.rescript(DOCUMENT)
        follow = client.post(f"/v1/tasks/{first['id']}/follow-up",
                             json={"prompt": "Now document it."})
        assert follow.status_code == 201, follow.text
        second = follow.json()
        done = wait_done(client, second["id"], timeout=180)
        assert done["status"] == "SUCCEEDED", done["reason"]
        opening = json.dumps(fake_api.turns[0].body.get("messages", []))
        assert "Fix add() in app.py" in opening and "PAPAYA" in opening
        assert "Now document it." in opening
        diff = client.get(f"/v1/tasks/{second['id']}/diff").text
        assert '+    """The sum."""' in diff and "+    return a + b" in diff
        assert client.get(f"/v1/tasks/{second['id']}/result").json()["agent"][
            "session_id"] == session


def test_a_follow_up_counts_against_the_limit(service: Service, alice: str,
                                              fake_api: FakeAnthropic) -> None:
    fake_api.script = [Reply.say("Done.")]
    with service.client(alice) as client:
        first = client.post("/v1/tasks", json={"prompt": "say done"}).json()
        assert wait_done(client, first["id"], timeout=180)["status"] == "SUCCEEDED"
        busy = [client.post("/v1/tasks", json={"command": "sleep 60"}).json()["id"]
                for _ in range(3)]  # the limit the fixture set
        over = client.post(f"/v1/tasks/{first['id']}/follow-up", json={"prompt": "more"})
        for task_id in busy:
            client.post(f"/v1/tasks/{task_id}/cancel")
    assert over.status_code == 429 and int(over.headers["retry-after"]) > 0
