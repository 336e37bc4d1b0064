import ast
from pathlib import Path

import pytest

from sarft_ray.data import load_advbench
from sarft_ray.errors import SarftError
from sarft_ray.evaluation.config import EvaluationConfig
from sarft_ray.evaluation.jailbreaks import build_jailbreaks, get_jailbreak, registered_names
from sarft_ray.evaluation.jailbreaks.ciphers import caesar_decode, caesar_encode, morse_decode, morse_encode
from sarft_ray.evaluation.jailbreaks.code_chameleon import CodeChameleonJailbreak
from sarft_ray.paths import data_dir


@pytest.fixture(scope="module")
def goals() -> list[str]:
    table = load_advbench(data_dir() / "advbench" / "harmful_behaviors.csv")
    return table.column("prompt").to_pylist()


def test_all_goals_loaded(goals):
    assert len(goals) == 520


def test_caesar_round_trip(goals):
    for goal in goals:
        encoded = caesar_encode(goal)
        assert encoded != goal
        assert caesar_decode(encoded) == goal
    assert caesar_encode("xyz ABC") == "abc DEF"


def test_morse_round_trip(goals):
    for goal in goals:
        encoded = morse_encode(goal)
        assert set(encoded) <= set(".- /"), goal
        assert morse_decode(encoded) == goal.lower()
    assert morse_encode("SOS") == "... --- ..."


def test_morse_decode_keeps_plain_text_and_lines():
    assert morse_decode(".... .. / there\n-.-- --- ..-") == "hi there\nyou"
    assert morse_decode(".... .. there / -.-- --- ..-") == "hi there you"
    reply = "The code is:\n\n```\ndef f(x):\n    return x\n```"
    assert morse_decode(reply) == reply


@pytest.mark.parametrize("encryption", ["reverse", "length"])
def test_code_chameleon_decryption_function_recovers_every_goal(goals, encryption):
    jailbreak = CodeChameleonJailbreak(encryption)
    namespace: dict = {}
    exec(jailbreak.decryption_source, namespace)  # the very function shown to the model
    for goal in goals:
        prompt = jailbreak.wrap(goal)
        literal = prompt.rsplit("The encrypted task is: ", 1)[1]
        assert literal == jailbreak.encrypted(goal)
        encrypted = ast.literal_eval(literal)
        assert encrypted != goal
        assert namespace["decryption"](encrypted) == goal
        assert jailbreak.decryption_source in prompt


def test_every_registered_jailbreak_carries_the_goal(goals):
    goal = goals[0]
    for name in registered_names():
        jailbreak = get_jailbreak(name)
        assert jailbreak.name == name
        prompt = jailbreak.wrap(goal)
        assert prompt != goal
    assert goal in get_jailbreak("aim").wrap(goal)
    assert get_jailbreak("caesar").decode(caesar_encode("Sure, here it is")) == "Sure, here it is"
    assert get_jailbreak("morse").decode(morse_encode("I cannot help")) == "i cannot help"


def test_unknown_jailbreak_rejected_by_config():
    with pytest.raises(ValueError, match="gcg"):
        EvaluationConfig(jailbreaks=["gcg"])


def test_prompt_file_jailbreak(tmp_path: Path):
    path = tmp_path / "gcg.jsonl"
    path.write_text('{"goal": "do harm", "prompt": "do harm !!adv suffix!!"}\n')
    cfg = EvaluationConfig(jailbreaks=["gcg"], jailbreak_prompt_files={"gcg": path})
    (jailbreak,) = build_jailbreaks(cfg.jailbreaks, cfg.jailbreak_prompt_files)
    assert jailbreak.wrap("do harm") == "do harm !!adv suffix!!"
    with pytest.raises(SarftError, match="no prompt for goal"):
        jailbreak.wrap("something else")
    path.write_text('{"goal": "do harm"}\n')
    with pytest.raises(SarftError, match=r"gcg.jsonl:1: field 'prompt'"):
        build_jailbreaks(["gcg"], {"gcg": path})
