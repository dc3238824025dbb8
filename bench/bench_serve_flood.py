"""Bench: legitimate socket clients while unauthenticated clients hog ``xnet serve`` (issue 16).

An ``xnet serve`` process runs with its default limits. An attacker opens more idle
connections than there are handshake slots (64), from 127.0.0.2 and from 127.0.0.1 (the
address the legitimate clients use too), and sends nothing. Two attacks: each connection
reopened at once when the server drops it (a tight loop, the hardest case), then reopened
10 s after it is dropped (the attack reported in issue 16). Meanwhile legitimate clients
come one after another, taking turns:

- ``handshake 127.0.0.1``: the authentication alone (connect, HELLO, PROOF, ACCEPT), from
  the attacker's own address;
- ``handshake 127.0.0.3``: the same from an address the attacker does not use;
- ``gateway 127.0.0.1``: ``makegateway`` + ``remote_exec`` + ``exit``, the real client.

Printed: each kind's success rate and connect latency (median, max) without and under the
attack, how many attacker connections the server dropped, and the size of the server's log
(issue 16 defect 7: it logged every refusal). Targets: every legitimate client served under
the attack, and a bounded log.

    python3 bench/bench_serve_flood.py [--quick] [--seconds S] [--attackers N]
                                       [--server-path DIR] [--no-save]

``--server-path`` runs the server from another checkout (e.g. ``--server-path /work/main``
for figures before a change); the clients always come from this one.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import Results, Targets, add_common_args, median, print_table  # noqa: E402
from proc_helpers import IdleFlood  # noqa: E402

import execnet_cli  # noqa: E402
from execnet_cli._remote import handshake as hs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LEGIT_ADDRESS = "127.0.0.1"
OTHER_ADDRESS = "127.0.0.3"
ATTACK_ADDRESS = "127.0.0.2"
#: Seconds between two legitimate clients.
PACE = 0.25
#: Largest log growth per 10 s we accept under the flood.
LOG_TARGET_KB = 16.0


def start_server(secret: Path, log: Path, server_path: Path) -> Tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=str(server_path))
    env.pop("XNET_SECRET", None)
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "execnet_cli", "serve", "--listen", "127.0.0.1:0"]
            + ["--secret-file", str(secret)],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=server_path,  # -m looks in the working directory first
        )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"bench_serve_flood: the server did not start: {log.read_text()}")
    return process, int(line.rsplit(":", 1)[1])


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def handshake_from(source: str, port: int, secret: bytes, timeout: float = 10.0) -> None:
    """One authentication from ``source``, as the real client does it (raises on failure)."""
    with socket.create_connection(("127.0.0.1", port), timeout, (source, 0)) as sock:
        server_nonce = hs.parse_server_hello(recv_exact(sock, hs.SERVER_HELLO_SIZE))
        client_nonce = hs.new_nonce()
        sock.sendall(hs.client_proof(secret, server_nonce, client_nonce))
        hs.check_verdict(secret, server_nonce, client_nonce, recv_exact(sock, hs.VERDICT_SIZE))


def gateway_round(spec: str) -> None:
    gw = execnet_cli.makegateway(spec)
    try:
        if gw.remote_exec("channel.send(6 * 7)").receive(10) != 42:
            raise RuntimeError("wrong answer")
    finally:
        gw.exit()


def legit_rounds(
    port: int, secret: bytes, spec: str, seconds: float
) -> Dict[str, List[Optional[float]]]:
    """Legitimate clients one after another for ``seconds``: latency, or None for a failure."""
    kinds = {
        f"handshake {LEGIT_ADDRESS}": lambda: handshake_from(LEGIT_ADDRESS, port, secret),
        f"handshake {OTHER_ADDRESS}": lambda: handshake_from(OTHER_ADDRESS, port, secret),
        f"gateway {LEGIT_ADDRESS}": lambda: gateway_round(spec),
    }
    results: Dict[str, List[Optional[float]]] = {name: [] for name in kinds}
    deadline = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < deadline:
        name = list(kinds)[turn % len(kinds)]
        turn += 1
        t0 = time.perf_counter()
        try:
            kinds[name]()
            results[name].append(time.perf_counter() - t0)
        except Exception as exc:
            results[name].append(None)
            print(f"  {name}: failed after {time.perf_counter() - t0:.2f} s: {exc}", flush=True)
        time.sleep(PACE)
    return results


def summarise(results: Dict[str, List[Optional[float]]]) -> List[List[str]]:
    rows = []
    for name, values in results.items():
        good = [v for v in values if v is not None]
        rows.append(
            [
                name,
                f"{len(good)}/{len(values)}",
                f"{median(good) * 1e3:.1f} ms" if good else "-",
                f"{max(good) * 1e3:.1f} ms" if good else "-",
            ]
        )
    return rows


def attack_phase(
    port: int, secret: bytes, spec: str, log: Path, attackers: int, delay: float, seconds: float
) -> Tuple[Dict[str, List[Optional[float]]], int, float, int]:
    """Legitimate rounds under one attack: (results, dropped, seconds, log bytes written)."""
    ours = attackers * 2 // 5
    sources = [LEGIT_ADDRESS] * ours + [ATTACK_ADDRESS] * (attackers - ours)
    with IdleFlood(port, sources, delay) as attacker:
        time.sleep(1.0)  # every slot taken
        log_start = log.stat().st_size
        t0 = time.monotonic()
        results = legit_rounds(port, secret, spec, seconds)
        elapsed = time.monotonic() - t0
        log_growth = log.stat().st_size - log_start
    time.sleep(0.5)  # the server drops what is left of the attack before the next phase
    return results, attacker.dropped, elapsed, log_growth


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--seconds", type=float, help="seconds per attack (default 8, quick 5)")
    parser.add_argument("--attackers", type=int, default=80, help="idle connections (80)")
    parser.add_argument("--server-path", type=Path, default=REPO, help="checkout to serve from")
    args = parser.parse_args(argv)
    seconds = args.seconds or (5.0 if args.quick else 8.0)
    calm = 2.0 if args.quick else 3.0
    ours = args.attackers * 2 // 5
    who = f"{ours} from {LEGIT_ADDRESS}, {args.attackers - ours} from {ATTACK_ADDRESS}"
    columns = ["client", "served", "median connect", "max connect"]
    targets = Targets()
    results = Results("bench_serve_flood", save=not args.no_save, seconds=seconds, quick=args.quick)

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        secret_path = Path(tmp) / "secret"
        secret_path.write_text("bench-" + "5e" * 24 + "\n")
        secret_path.chmod(0o600)
        secret = secret_path.read_text().strip().encode()
        log = Path(tmp) / "serve.log"
        server, port = start_server(secret_path, log, args.server_path)
        spec = f"socket=127.0.0.1:{port}//secret_file={secret_path}"
        try:
            print(f"bench_serve_flood: server from {args.server_path}, port {port}", flush=True)
            calm_results = legit_rounds(port, secret, spec, calm)
            print_table("legitimate clients, no attack", columns, summarise(calm_results))
            record(results, "calm", calm_results)
            for label, delay in (("reopened at once", 0.0), ("reopened after 10 s", 10.0)):
                during, dropped, elapsed, growth = attack_phase(
                    port, secret, spec, log, args.attackers, delay, seconds
                )
                print_table(
                    f"under {args.attackers} idle attackers ({who}), {label}, {elapsed:.0f} s",
                    columns,
                    summarise(during),
                )
                kb_per_10s = growth / 1024 / elapsed * 10
                print(
                    f"attacker connections dropped by the server: {dropped} "
                    f"({dropped / elapsed:.0f}/s); server log grew {growth / 1024:.1f} KB "
                    f"({kb_per_10s:.1f} KB per 10 s)",
                    flush=True,
                )
                attempts = [v for values in during.values() for v in values]
                served = sum(1 for v in attempts if v is not None)
                targets.check(
                    f"legitimate clients served, attackers {label}",
                    served / max(1, len(attempts)),
                    1.0,
                    at_most=False,
                    shown=f"{served}/{len(attempts)}",
                )
                targets.check(
                    f"server log growth, attackers {label} (KB per 10 s)",
                    kb_per_10s,
                    LOG_TARGET_KB,
                    at_most=True,
                    shown=f"{kb_per_10s:.1f} KB",
                )
                record(results, label, during)
                results.add(label, "server", "log KB per 10 s", kb_per_10s, dropped=dropped)
        finally:
            stop_server(server)
    results.add_targets(targets)
    return 0


def record(results: Results, phase: str, figures: Dict[str, List[Optional[float]]]) -> None:
    for name, values in figures.items():
        good = [v for v in values if v is not None]
        results.add(phase, name, "served", len(good) / max(1, len(values)))
        if good:
            results.add(phase, name, "s", median(good), max=max(good))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
