"""`recagent chat` and `recagent recommend` end to end on the mini stack (offline)."""

from __future__ import annotations

import json

from tests.conftest import Stack


def _home(stack: Stack) -> list[str]:
    return ["--home", str(stack.workspace.root)]


def test_recommend_json_is_a_validated_ranked_list(cli, mini_stack: Stack) -> None:
    result = cli(
        *_home(mini_stack), "recommend", "--user", "3", "a sci-fi film", "--k", "4", "--json"
    )
    assert result.exit_code == 0, result.output
    ranked = json.loads(result.stdout)
    assert ranked["mode"] == "planner" and len(ranked["items"]) == 4
    history = set(mini_stack.dataset.user_history("3"))
    for item in ranked["items"]:
        assert "Sci-Fi" in item["genres"] and item["item_id"] not in history
        assert item["explanation"] and item["evidence"]


def test_recommend_table_and_logs(cli, mini_stack: Stack) -> None:
    result = cli(*_home(mini_stack), "recommend", "--user", "5", "something like Heat")
    assert result.exit_code == 0, result.output
    assert "rule-based planner" in result.stdout
    logs = cli(*_home(mini_stack), "logs", "--last", "1", "--json")
    record = json.loads(logs.stdout)[0]
    assert record["message"] == "something like Heat" and record["user_id"] == "5"
    heat = next(i for i in mini_stack.dataset.catalog if i.title == "Heat").item_id
    similar = [c["args"] for c in record["tool_calls"] if c["name"] == "similar_items"]
    assert {"item_ids": [heat]}.items() <= similar[0].items()  # "Heat" read as a reference
    assert set(record["prompt_hashes"]) >= {"explanation", "system"}


def test_chat_repl_commands_and_refinements(cli, mini_stack: Stack) -> None:
    script = (
        "\n".join(
            [
                "/help",
                "a comedy",
                "/why 1",
                "/why 99",
                "no romance",
                "/history 2",
                "/profile",
                "/user 999",
                "/reset",
                "/bogus",
                "",
                "/quit",
            ]
        )
        + "\n"
    )
    result = cli(*_home(mini_stack), "chat", "--user", "3", input=script)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "offline (rule-based planner)" in out
    assert "commands:" in out and "usage: /why N" in out and "unknown command /bogus" in out
    assert "not in" in out and "new user" in out
    assert "session reset" in out
    assert out.count("┏") >= 2  # two answers rendered as tables


def test_every_kind_of_answer_in_the_terminal_and_as_json(cli, mini_stack: Stack) -> None:
    home = _home(mini_stack)
    verdict = cli(*home, "recommend", "--user", "3", "is Blade Runner a good pick for me?")
    assert verdict.exit_code == 0, verdict.output
    assert "Blade Runner" in verdict.stdout and "┏" not in verdict.stdout  # a verdict, no table
    as_json = json.loads(
        cli(
            *home, "recommend", "--user", "3", "is Blade Runner a good pick for me?", "--json"
        ).stdout
    )
    assert as_json["kind"] == "judge" and as_json["verdict"]["title"] == "Blade Runner"
    profile = cli(*home, "recommend", "--user", "3", "what do you know about my taste?")
    assert "Your taste" in profile.stdout and "items in the history" in profile.stdout
    ranked = json.loads(
        cli(*home, "recommend", "rank these for me: Heat, Alien, Toy Story", "--json").stdout
    )
    assert ranked["kind"] == "rank"
    assert sorted(i["title"] for i in ranked["items"]) == ["Alien", "Heat", "Toy Story"]
    chat = cli(*home, "chat", input="a comedy\n/why\n/quit\n")
    assert "the plan that ran" in chat.stdout and "rules: filter_items" in chat.stdout
    logs = cli(*home, "logs", "--last", "1", "--plan")
    assert "rules: score_candidates" in logs.stdout or "rules: filter_items" in logs.stdout


def test_chat_ends_on_end_of_input(cli, mini_stack: Stack) -> None:
    result = cli(*_home(mini_stack), "chat", input="")
    assert result.exit_code == 0


def test_recommend_bad_llm_spec_is_exit_2(cli, mini_stack: Stack) -> None:
    result = cli(*_home(mini_stack), "recommend", "--llm", "anthropic:x", "hi")
    assert result.exit_code == 2 and "offline" in result.stderr
