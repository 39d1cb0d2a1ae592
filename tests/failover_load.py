"""A steady chat load on a running instance while its Redis primary is killed: what every chat answered and when,
for the failover tests and `bench/redis_topologies.py`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus

import httpx


@dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic() when the answer came
    status: int
    retry_after: str | None
    worker: int
    session: str
    message: str


@dataclass
class ChatLoad:
    """`sessions` threads, each chatting in a session of its own (as the admin of `headers[i % len(headers)]`) and
    sending its next message as soon as the last one is answered, on a new connection each time (new connections
    must work too)."""

    url: str
    headers: list[dict[str, str]]
    sessions: int = 4
    turns_per_session: int = 25
    pause: float = 0.01
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> ChatLoad:
        for number in range(self.sessions):
            thread = threading.Thread(target=self._chat, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Ends the load (again, harmlessly, when the with-block ends)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _chat(self, worker: int) -> None:
        headers = self.headers[worker % len(self.headers)]
        number = 0
        while not self._stop.is_set():
            # A new session every `turns_per_session` chats: each keeps all its messages (a session keeps 200).
            session = f"load{worker}-{number // self.turns_per_session}"
            message = f"{session} message {number}"
            number += 1
            try:
                response = httpx.post(
                    f"{self.url}/chat/",
                    json={"session_id": session, "message": message},
                    headers=headers,
                    timeout=60,
                )
                answer = Answer(
                    time.monotonic(),
                    response.status_code,
                    response.headers.get("Retry-After"),
                    worker,
                    session,
                    message,
                )
            except httpx.HTTPError:
                answer = Answer(time.monotonic(), 0, None, worker, session, message)
            with self._lock:
                self.answers.append(answer)
            # A steady load rather than a flood, and a client that honours a 503 a little.
            time.sleep(self.pause if answer.status == HTTPStatus.OK else 0.05)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def wait_for_answers(self, condition, timeout: float, what: str) -> None:
        """Fails if `condition(answers so far)` does not hold within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition(self.snapshot()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def acknowledged(self) -> list[tuple[dict[str, str], str, list[str]]]:
        """Every message answered 200, by the headers of its admin and its session."""
        found: dict[tuple[int, str], list[str]] = {}
        for answer in self.snapshot():
            if answer.status == HTTPStatus.OK:
                found.setdefault((answer.worker % len(self.headers), answer.session), []).append(answer.message)
        return [(self.headers[index], session, messages) for (index, session), messages in found.items()]


@dataclass(frozen=True)
class FailoverTimes:
    """Seconds, from the kill of the primary."""

    promoted: float  # the replica took over (as its role or the Sentinels say)
    recovered: float  # the first chat answered 200 after the promotion
    refused: int  # chats that failed, all told
    answered: int  # chats answered 200, all told

    def summary(self) -> str:
        return (
            f"promoted after {self.promoted:.2f} s, chats answered again {self.recovered:.2f} s after the kill "
            f"({self.recovered - self.promoted:.2f} s after the promotion); {self.refused} chats refused, "
            f"{self.answered} answered"
        )


def failover_times(answers: list[Answer], killed_at: float, promoted_at: float) -> FailoverTimes:
    after_kill = [a for a in answers if a.at >= killed_at]
    refused = [a for a in after_kill if a.status != HTTPStatus.OK]
    recovered = next(a.at for a in after_kill if a.at >= promoted_at and a.status == HTTPStatus.OK)
    return FailoverTimes(
        promoted=promoted_at - killed_at,
        recovered=recovered - killed_at,
        refused=len(refused),
        answered=sum(1 for a in answers if a.status == HTTPStatus.OK),
    )
