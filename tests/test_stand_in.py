"""`make try` (devtools/stand_in.py): the service against a stand-in upstream answers chats without a Groq key,
and the stand-in follows a json_schema response format, so that the SDKs' structured outputs parse."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import openai
import pydantic

from accounts.api_keys import api_key_create
from tests.support import ROOT, free_port, wait_for


class Answer(pydantic.BaseModel):
    class Step(pydantic.BaseModel):
        explanation: str
        count: int

    summary: str
    steps: list[Step]
    confident: bool


def _stand_in_help() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tests.fake_groq", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    return result.stdout


def test_the_stand_ins_help_describes_every_option():
    text = " ".join(_stand_in_help().split())

    assert "make try" in text
    for option in ("--host", "--port", "--base-path", "--api-key", "--latency", "--chunk-delay"):
        described = re.search(rf"{option} [A-Z_]+ ([A-Z][^(]+)\(default: ", text)
        assert described, f"{option} has no description in --help"


def test_make_try_answers_chats_and_structured_outputs_without_a_groq_key(tmp_path, alice):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"GROQ_API_KEY", "GROQ_BASE_URL", "DJANGO_SETTINGS_MODULE"}}
    log = tmp_path / "try.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.stand_in", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"{url}/health", timeout=1).json()["llm_healthy"]
        except httpx.TransportError:
            return False

    try:
        wait_for(serving, timeout=30, what="make try's service")
        key = api_key_create(admin_id=alice.id)[1]
        with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
            chat = client.chat.completions.create(
                model="openai/gpt-oss-20b", messages=[{"role": "user", "content": "Hello!"}]
            )
            parsed = client.chat.completions.parse(
                model="openai/gpt-oss-20b",
                messages=[{"role": "user", "content": "Count the steps"}],
                response_format=Answer,
            )

        assert chat.choices[0].message.content == "Echo: Hello!"
        answer = parsed.choices[0].message.parsed
        assert isinstance(answer, Answer) and answer.steps and answer.summary == "Count the steps"
        assert "stand-in upstream answers at http://127.0.0.1:" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=45)
