"""The benchmark's table (Markdown) and chart (PNG) from its JSON results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGETS = {
    "overhead": "p50 ≤ 2 ms at c1",
    "c16": "≥ 400/s at c16",
    "cpu": "≤ 2.5 ms of service CPU per chat",
    "inflight128": "≥ 90%, 0 errors, p99 ≤ 450 ms",
    "inflight256": "≥ 70%, 0 errors",
    "held1000": "≥ 90% of direct, 0 errors, health p99 ≤ 100 ms, < 100 KiB per chat",
    "held4000": "the excess 503 at once, 0 errors, health p99 ≤ 100 ms",
    "stream": "≤ 5 ms",
    "memory": "≤ 10 MiB",
    "burst": "≤ 2x normal",
    "flood": "≤ 2x alone; CPU per request ≤ a chat's",
    "soak": "no steady growth",
}


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _overhead(results: dict[str, Any], backend: dict[str, Any], level: str, rate: bool = False) -> str:
    direct, through = _get(results, "direct", level), _get(backend, "overhead", level)
    if not direct or not through:
        return "-"
    cell = f"+{through['p50_ms'] - direct['p50_ms']:.2f} / +{through['p99_ms'] - direct['p99_ms']:.2f} ms"
    return f"{cell}, {through['rate']:.0f}/s" if rate else cell


def _rate(backend: dict[str, Any], name: str) -> str:
    row = _get(backend, "cpu_ceiling", name)
    if not row:
        return "-"
    cores = row.get("cores_used", {}).get("service", 0)
    per_chat = f" = {1000 * cores / row['rate']:.1f} ms per chat" if row["rate"] else ""
    return f"{row['rate']:.0f}/s (service {cores:.2f} cores{per_chat})"


def _in_flight(backend: dict[str, Any], level: str) -> str:
    row = _get(backend, "in_flight", level)
    if not row:
        return "-"
    cell = f"{row['rate']:.0f}/s = {row['share_of_limit']:.0%}, p99 {row['p99_ms']:.0f} ms, {row['errors']} errors"
    cores = row.get("cores_used")
    if not cores or not row["rate"]:
        return cell
    per_chat = 1000 * cores["service"] / row["rate"]
    busy = f"machine {cores['machine']:.1f} cores busy, service {cores['service']:.2f} = {per_chat:.1f} ms per chat"
    return f"{cell}; {busy}"


def _held(results: dict[str, Any], backend: dict[str, Any], level: str) -> str:
    direct, row = _get(results, "direct_held_streams", level), _get(backend, "held_streams", level)
    if not direct or not row:
        return "-"
    share = f" = {row['rate'] / direct['rate']:.0%}" if direct["rate"] else ""
    refused = f", {row['refused']} refused (p99 {row['refusal_p99_ms']} ms)" if row["refused"] else ""
    memory = f", {row['kib_per_stream']:.0f} KiB per chat" if "kib_per_stream" in row else ""
    return (
        f"{row['rate']:.0f}/s{share}, {row['errors']} errors{refused}, health p99 {row.get('health_p99_ms')} ms{memory}"
    )


def _stream(results: dict[str, Any], backend: dict[str, Any]) -> str:
    direct, through = results.get("direct_streaming"), backend.get("streaming")
    if not direct or not through:
        return "-"
    return f"+{through['p50_ms'] - direct['p50_ms']:.2f} ms (p50)"


def _memory(backend: dict[str, Any]) -> str:
    row = backend.get("memory")
    if not row:
        return "-"
    if _get(backend, "settings", "HISTORY_BACKEND") == "redis":
        return f"{row['redis_mib_per_1000']:.1f} MiB in Redis (+{row['service_rss_mib_per_1000']:.1f} service RSS)"
    return f"{row['service_rss_mib_per_1000']:.1f} MiB service RSS"


def _burst(backend: dict[str, Any]) -> str:
    row = backend.get("login_burst")
    if not row:
        return "-"
    statuses = ", ".join(f"{n}x{s}" for s, n in sorted(row["login_statuses"].items()))
    return (
        f"{row['normal']['p50_ms']:.1f} → {row['during_burst']['p50_ms']:.1f} ms = {row['p50_ratio']:.1f}x "
        f"(logins: {statuses} in {row['burst_seconds']:.1f} s)"
    )


def _flood(backend: dict[str, Any], name: str) -> str:
    row = _get(backend, "anonymous_flood", name)
    if not row:
        return "-"
    flood = row["flood"]
    statuses = ", ".join(f"{flood[s]}x{s}" for s in sorted(flood) if s.isdigit() or s.startswith("connection"))
    return (
        f"{row['alone']['p50_ms']:.1f} → {row['during_flood']['p50_ms']:.1f} ms = {row['p50_ratio']:.1f}x "
        f"(flood {flood['rate']:.0f}/s: {statuses}; service CPU {row['service_cpu_ms_per_anonymous_request']:.2f} ms "
        f"per anonymous request, {row['service_cpu_ms_per_chat']:.2f} ms per chat)"
    )


def _soak(backend: dict[str, Any]) -> str:
    row = _get(backend, "soak")
    if not row:
        return "-"
    workers = "; ".join(
        f"{w['start_mib']:.0f} → {w['end_mib']:.0f} MiB (peak {w['peak_mib']:.0f}, "
        f"{w['growth_mib_per_hour']:+.1f} MiB/h)"
        for w in row["rss"].values()
    )
    requests = sum(sum(counts.values()) for counts in row["requests"].values())
    return f"{workers} ({requests} requests at {row['rate']:.0f}/s)"


def _column_name(name: str, backend: dict[str, Any]) -> str:
    workers = backend.get("workers_started") or _get(backend, "gunicorn", "workers")
    threads = _get(backend, "gunicorn", "threads")
    each = f" x {threads} threads" if threads else ", gevent"
    return f"{name} ({workers} worker{'s' if workers != 1 else ''}{each})"


def columns(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each backend's service, then the floor measured with its workers and threads."""
    out = []
    for name, backend in results.get("backends", {}).items():
        out.append((name, backend))
        floor = _get(results, "floor", name)
        if floor:
            out.append((f"floor for {name}", floor))
    return out


def _in_flight_label(results: dict[str, Any], level: str, delay_ms: int) -> str:
    threads = sorted({_get(b, "in_flight", level, "threads") for _, b in columns(results)} - {None})
    raised = f", {'/'.join(map(str, threads))} threads" if threads else ""
    direct = _get(results, "direct_in_flight", level)
    # What the load generator and the fake reach on their own: the ceiling of the share on this machine.
    note = f" (direct {direct['share_of_limit']:.0%})" if direct else ""
    return f"3. in flight, {delay_ms} ms upstream, {level}{raised}{note}"


def render_table(results: dict[str, Any]) -> str:
    cols = columns(results)
    header = ["", *(_column_name(n, b) for n, b in cols), "target"]
    delay_ms = int(results.get("upstream_delay_s", 0.3) * 1000)
    direct = results.get("direct", {})
    rows: list[list[str]] = []

    def row(label: str, cell, target: str) -> None:
        rows.append([label, *(cell(b) for _, b in cols), target])

    if direct:
        c1, c16 = direct.get("c1", {}), direct.get("c16", {})
        note = f"direct p50/p99: {c1.get('p50_ms', 0):.2f}/{c1.get('p99_ms', 0):.2f} ms"
        row(f"1. overhead p50 / p99, c1 ({note})", lambda b: _overhead(results, b, "c1"), TARGETS["overhead"])
        note = f"direct {c16.get('p50_ms', 0):.2f}/{c16.get('p99_ms', 0):.2f} ms, {c16.get('rate', 0):.0f}/s"
        row(
            f"1. overhead p50 / p99 and chats/s, c16 ({note})",
            lambda b: _overhead(results, b, "c16", True),
            TARGETS["c16"],
        )
    row("2. CPU ceiling, new session per chat, c32", lambda b: _rate(b, "new_session"), TARGETS["cpu"])
    row("2. CPU ceiling, 20-turn sessions, c32", lambda b: _rate(b, "session_20_turns"), TARGETS["cpu"])
    for level in ("c128", "c256"):
        label, target = _in_flight_label(results, level, delay_ms), TARGETS[f"inflight{level[1:]}"]
        row(label, lambda b, level=level: _in_flight(b, level), target)
    for level in ("s1000", "s4000"):
        direct_row = _get(results, "direct_held_streams", level) or {}
        row(
            f"3b. {level[1:]} streamed chats held (5 s each; direct {direct_row.get('rate', 0):.0f}/s)",
            lambda b, level=level: _held(results, b, level),
            TARGETS[f"held{level[1:]}"],
        )
    streaming = results.get("direct_streaming") or {}
    row(
        f"4. streaming, first event (direct p50 {streaming.get('p50_ms', 0):.2f} ms)",
        lambda b: _stream(results, b),
        TARGETS["stream"],
    )
    row("5. memory per 1,000 sessions x 20 messages", _memory, TARGETS["memory"])
    row(f"6. chat p50 (c8) alone → during {200} bad logins", _burst, TARGETS["burst"])
    for name, label in (
        ("one_address_c8", "one address, c8"),
        ("one_address_c64", "one address, c64"),
        ("many_addresses_c64", "many addresses, c64"),
    ):
        row(
            f"7. chat p50 (c1) alone → during an anonymous flood from {label}",
            lambda b, name=name: _flood(b, name),
            TARGETS["flood"],
        )

    if any(_get(b, "soak") for _, b in cols):
        minutes = next(_get(b, "soak", "minutes") for _, b in cols if _get(b, "soak"))
        row(f"8. worker RSS over {minutes:.0f} minutes of mixed traffic", _soak, TARGETS["soak"])

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(r) + " |" for r in rows)
    floor_lines = render_floor_table(results)
    if floor_lines:
        lines.extend(["", *floor_lines])
    machine = results.get("machine", {})
    lines.append("")
    lines.append(
        f"{machine.get('cores', '?')} cores ({cpu_name(machine)}), shared by the service, the fake upstream, "
        f"the load generator and Redis; Python {machine.get('python', '?')}, commit {machine.get('commit', '?')}, "
        f"{machine.get('date', '')}. Latency differences are of medians (p50) and of 99th percentiles."
    )
    return "\n".join(lines)


def cpu_name(machine: dict[str, Any]) -> str:
    """`AMD EPYC, family 23 model 1, 1996 MHz` (a run before these were recorded: the name alone)."""
    parts = [machine.get("cpu", "?")]
    if machine.get("cpu_family"):
        parts.append(f"family {machine['cpu_family']} model {machine.get('cpu_model', '?')}")
    if machine.get("cpu_mhz"):
        parts.append(f"{machine['cpu_mhz']} MHz")
    return ", ".join(parts)


def _against(service: float | None, floor: float | None, unit: str) -> str:
    if not service or not floor:
        return "-"
    digits = 1 if unit == " ms" else 0
    return f"{service:.{digits}f}{unit} vs {floor:.{digits}f}{unit} = {service / floor:.2f}x"


def render_floor_table(results: dict[str, Any]) -> list[str]:
    """Service against the floor measured in the same run with the same workers and threads."""
    names = [n for n in results.get("backends", {}) if _get(results, "floor", n)]
    if not names:
        return []
    checks = [
        ("chat p50, c1", ("overhead", "c1", "p50_ms"), " ms"),
        ("chats/s, c16", ("overhead", "c16", "rate"), "/s"),
        ("chats/s, CPU ceiling (new session per chat), c32", ("cpu_ceiling", "new_session", "rate"), "/s"),
        ("chats/s, 128 in flight", ("in_flight", "c128", "rate"), "/s"),
        ("chats/s, 256 in flight", ("in_flight", "c256", "rate"), "/s"),
    ]
    lines = ["| service vs floor (same run) | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for label, path, unit in checks:
        cells = [_against(_get(results, "backends", n, *path), _get(results, "floor", n, *path), unit) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def write_chart(results: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no chart)")
        return False
    backends = results.get("backends", {})
    names = list(backends)
    colors = ["#4C72B0", "#DD8452", "#55A868"]
    # Each service, then its floor in a paler shade of the same colour, hatched.
    series = columns(results)
    styles = []
    for name, _ in series:
        base = name.removeprefix("floor for ")
        color = colors[names.index(base) % len(colors)]
        styles.append({"color": color, "alpha": 0.45, "hatch": "//"} if name != base else {"color": color})
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))

    ax = axes[0][0]
    levels = ["c1", "c16"]
    width = 0.8 / (len(series) + 1)
    ax.bar(
        range(len(levels)),
        [_get(results, "direct", lv, "p50_ms") or 0 for lv in levels],
        width,
        label="direct",
        color="#999999",
    )
    for i, (name, data) in enumerate(series, start=1):
        values = [_get(data, "overhead", level, "p50_ms") or 0 for level in levels]
        ax.bar([x + i * width for x in range(len(levels))], values, width, label=name, **styles[i - 1])
    ax.set_xticks([x + width * len(series) / 2 for x in range(len(levels))], ["concurrency 1", "concurrency 16"])
    ax.set_ylabel("ms")
    ax.set_title("Chat latency p50, upstream delay 0")
    ax.legend(fontsize=8)

    ax = axes[0][1]
    kinds = [("new_session", "new session"), ("session_20_turns", "20-turn session")]
    width = 0.8 / max(len(series), 1)
    for i, (name, data) in enumerate(series):
        values = [_get(data, "cpu_ceiling", k, "rate") or 0 for k, _ in kinds]
        ax.bar([x + i * width for x in range(len(kinds))], values, width, label=name, **styles[i])
    ax.axhline(400, color="red", linestyle="--", linewidth=1, label="400/s (the c16 target)")
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(kinds))], [label for _, label in kinds])
    ax.set_ylabel("chats per second")
    ax.set_title("CPU ceiling, c32, upstream delay 0 (the floor keeps no sessions)")
    ax.legend(fontsize=8)

    ax = axes[1][0]
    levels = ["c128", "c256"]
    width = 0.8 / (len(series) + 1)
    ax.bar(
        range(len(levels)),
        [100 * (_get(results, "direct_in_flight", lv, "share_of_limit") or 0) for lv in levels],
        width,
        label="direct",
        color="#999999",
    )
    for i, (name, data) in enumerate(series, start=1):
        values = [100 * (_get(data, "in_flight", level, "share_of_limit") or 0) for level in levels]
        ax.bar([x + i * width for x in range(len(levels))], values, width, label=name, **styles[i - 1])
    ax.axhline(90, color="red", linestyle="--", linewidth=1, label="targets 90% / 70%")
    ax.axhline(70, color="red", linestyle=":", linewidth=1)
    ax.set_ylim(0, 130)  # room above the bars for the legend
    ax.set_xticks([x + width * len(series) / 2 for x in range(len(levels))], ["128 in flight", "256 in flight"])
    ax.set_ylabel("% of concurrency ÷ 0.3 s")
    ax.set_title("Chats in flight, upstream delay 300 ms")
    ax.legend(loc="upper center", fontsize=8, ncol=3)

    ax = axes[1][1]
    labels, values = [], []
    for name in names:
        memory = backends[name].get("memory")
        if memory:
            labels.append(name)
            key = "redis_mib_per_1000" if name == "redis" else "service_rss_mib_per_1000"
            values.append(memory[key])
    ax.bar(labels, values, color=colors[: len(values)])
    ax.axhline(10, color="red", linestyle="--", linewidth=1, label="target 10 MiB")
    ax.set_ylabel("MiB per 1,000 sessions")
    ax.set_title("Memory, sessions of 20 messages")
    ax.legend()

    machine = results.get("machine", {})
    fig.suptitle(
        f"ChatGroq API benchmark: {machine.get('cores', '?')} cores shared by service, fake upstream, load generator "
        f"and Redis ({machine.get('date', '')[:10]}, {machine.get('commit', '')})",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
