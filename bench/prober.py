"""`GET /health/live` on a fresh connection every `--every` seconds for `--seconds`, in a process of its own so
that the load generator's busy event loop does not delay it; prints each answer's seconds (or null) as JSON.

    python -m bench.prober --port 8000 --seconds 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import time


def probe(port: int, timeout: float) -> float | None:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/health/live")
        response = connection.getresponse()
        response.read()
        return time.monotonic() - started if response.status == 200 else None
    except OSError:
        return None
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--every", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    end = time.monotonic() + args.seconds
    samples: list[float | None] = []
    while time.monotonic() < end:
        samples.append(probe(args.port, args.timeout))
        time.sleep(args.every)
    print(json.dumps(samples))


if __name__ == "__main__":
    main()
