"""`make try`: the service as `make run` starts it, against a stand-in upstream on this machine instead of Groq, so
that it answers chats without a Groq key. The stand-in (tests/fake_groq.py) echoes each message back, streams word
by word, and answers a `json_schema` response format with JSON that follows it.

Run as `python -m devtools.stand_in [--port 8000]` (the dev requirements installed: `make try` does that)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from dotenv import dotenv_values

from tests.fake_groq import MODELS, FakeGroq

STAND_IN_KEY = "stand-in-key"


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Serve the API against a stand-in upstream on this machine (no Groq key needed): chats answer "
        "'Echo: <your message>'. Stop with Ctrl-C.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "8000")),
        help="Port the service listens on (default: PORT, else %(default)s).",
    )
    parser.add_argument(
        "--chunk-delay",
        type=float,
        default=0.05,
        help="Seconds between the words of a streamed answer, so that streaming shows (default: %(default)s).",
    )
    args = parser.parse_args()

    model = os.environ.get("GROQ_MODEL_NAME") or dotenv_values(".env").get("GROQ_MODEL_NAME") or MODELS[0]
    models = list(dict.fromkeys([*MODELS, model]))
    with FakeGroq(port=0, api_key=STAND_IN_KEY, chunk_delay=args.chunk_delay, models=models) as upstream:
        env = {**os.environ, "GROQ_BASE_URL": upstream.url, "GROQ_API_KEY": STAND_IN_KEY, "PORT": str(args.port)}
        print(
            f"A stand-in upstream answers at {upstream.url} in place of Groq (it echoes what you send).\n"
            f"The service: http://127.0.0.1:{args.port}/ (log in as in the README's quick start). Ctrl-C stops both.",
            flush=True,
        )
        gunicorn = Path(sys.executable).with_name("gunicorn")
        server = subprocess.Popen([str(gunicorn), "-c", "gunicorn.conf.py", "chatbot_project.wsgi"], env=env)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda number, _frame: server.send_signal(number))
        return server.wait()


if __name__ == "__main__":
    sys.exit(main())
