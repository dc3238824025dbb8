"""``xnet shell HOST``: the Python prompt, driven through a pseudo-terminal, over popen and ssh."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pexpect
import pytest
from proc_helpers import free_port, wait_gone
from shell_helpers import (
    Target,
    banner_pid,
    leave,
    piped,
    popen_target,
    processes_of,
    prompt,
    socket_server,
    spawned,
    ssh_target,
    target_fixture,  # noqa: F401 (the target fixture)
    wait_end,
)


def test_a_session(target: Target) -> None:
    """Banner, values, a block, a traceback, Ctrl-C in a loop and in a C call, Ctrl-D."""
    with spawned(target.args(), target.env) as child:
        child.expect(re.escape(target.name) + r": Python \d+\.\d+\.\d+ on linux \(")
        pid = banner_pid(child)
        child.expect("\r\n" + re.escape(f"{target.name}>>> "))
        processes = processes_of(child, pid)
        child.sendline("1+1")
        child.expect("\r\n2\r\n")
        child.sendline("_ * 21")
        child.expect("\r\n42\r\n")
        child.sendline("def f(x):")
        child.expect(r"\.\.\. ")
        child.sendline("    return x * 2")
        child.sendline("")
        prompt(child)
        child.sendline("f(4)")
        child.expect("\r\n8\r\n")
        child.sendline("{}['missing']")
        child.expect("Traceback \\(most recent call last\\):")
        child.expect("KeyError: 'missing'")
        prompt(child)
        child.sendline("if True:")
        child.sendline("    print('spin' + 'ning', flush=True)")
        child.sendline("    while True: pass")
        child.sendline("")
        child.expect("\r\nspinning")
        child.sendcontrol("c")
        child.expect("KeyboardInterrupt")
        prompt(child)
        child.sendline("import time; print('sleep' + 'ing', flush=True); time.sleep(60)")
        child.expect("\r\nsleeping")
        child.sendcontrol("c")
        child.expect("KeyboardInterrupt")
        prompt(child)
        child.sendline("print('alive', f(21))")
        child.expect("alive 42")
        assert leave(child) == 0
    assert all_gone(processes)


def all_gone(pids: list[int]) -> bool:
    """Whether every process in ``pids`` has ended (the ones still running are named)."""
    left = [pid for pid in pids if not wait_gone(pid)]
    assert not left, f"still running: {left}"
    return True


def test_exit_ends_the_session_and_its_processes(target: Target) -> None:
    with spawned(target.args(), target.env) as child:
        pid = banner_pid(child)
        prompt(child, target.name)
        processes = processes_of(child, pid)
        child.sendline("x = 1")
        prompt(child, target.name)
        child.sendline("exit()")
        assert wait_end(child) == 0
    assert all_gone(processes)


def test_blocks_at_the_terminal(target: Target) -> None:
    """Decorators, if/else, loops: the continuation prompt until a blank line ends them."""
    more = " " * len(target.name) + "... "
    with spawned(target.args(), target.env) as child:
        prompt(child, target.name)
        child.sendline("def twice(f):")
        child.expect(re.escape(more))
        child.sendline("    return lambda x: 2 * f(x)")
        child.expect(re.escape(more))
        child.sendline("")
        prompt(child, target.name)
        child.sendline("@twice")
        child.expect(re.escape(more))
        child.sendline("def g(x):")
        child.sendline("    return x + 1")
        child.sendline("")
        prompt(child, target.name)
        child.sendline("if g(1) > 100:")
        child.sendline("    print('big')")
        child.sendline("else:")
        child.sendline("    print('small', g(20))")
        child.sendline("")
        child.expect("\r\nsmall 42\r\n")
        child.sendline("for i in range(2):")
        child.sendline("    i * 10")
        child.sendline("")
        child.expect("\r\n0\r\n10\r\n")
        assert leave(child, target.name) == 0


@pytest.mark.parametrize("kind", ["socket", "via"])
def test_socket_and_via_gateways(tmp_path: Path, kind: str) -> None:
    target = popen_target(tmp_path, "far")
    with socket_server(target.env) as port:
        inventory = tmp_path / "xnet.yaml"
        far = f"{{transport: socket, address: 127.0.0.1, port: {port}}}"
        if kind == "via":
            far = "{transport: popen, via: carrier}"
        inventory.write_text(f"hosts:\n  carrier: {{transport: popen}}\n  far: {far}\n")
        with spawned(target.args(), target.env) as child:
            pid = banner_pid(child)
            child.sendline("import time; print('sleep' + 'ing', flush=True); time.sleep(60)")
            child.expect("\r\nsleeping")
            child.sendcontrol("c")
            child.expect("KeyboardInterrupt")
            child.sendline("6 * 7")
            child.expect("\r\n42\r\n")
            assert leave(child, "far") == 0
        assert wait_gone(pid), "the remote worker is still running"


def test_output_streams_while_the_statement_runs(target: Target) -> None:
    with spawned(target.args(), target.env) as child:
        prompt(child)
        child.sendline("import time")
        child.sendline("for i in range(3): print('tick', i, flush=True); time.sleep(i and 30)")
        child.sendline("")
        child.expect("tick 1")  # shown while the loop sleeps
        child.sendcontrol("c")
        child.expect("KeyboardInterrupt")
        child.sendline("exit(4)")
        assert wait_end(child) == 4


def test_tab_completes_from_the_remote_namespace(target: Target) -> None:
    with spawned(target.args(), target.env) as child:
        prompt(child)
        child.sendline("import os; remote_only_name = 1")
        prompt(child)
        child.send("os.pa\t\t")
        child.expect("os.pathsep")
        child.sendcontrol("u")
        child.send("remote_on\t")
        child.expect("remote_only_name")
        child.sendline("")
        child.expect("\r\n1\r\n")
        assert leave(child) == 0


def test_input_and_help_read_from_our_terminal(target: Target) -> None:
    with spawned(target.args(), target.env) as child:
        prompt(child)
        child.sendline("name = input('who? ')")
        child.expect("who\\? ")
        child.sendline("ada")
        prompt(child)
        child.sendline("name.upper()")
        child.expect("'ADA'")
        child.sendline("help(len)")
        child.expect("Return the number of items in a container")
        prompt(child)
        child.sendline("import os; os.system('echo from-a-child-process')")
        child.expect("from-a-child-process")
        assert leave(child) == 0


def test_history_recalls_a_line_after_a_restart(target: Target, tmp_path: Path) -> None:
    with spawned(target.args(), target.env) as child:
        prompt(child)
        child.sendline("remembered = 41")
        assert leave(child) == 0
    assert "remembered = 41" in (tmp_path / "state" / "xnet" / "history").read_text()
    with spawned(target.args(), target.env) as child:
        prompt(child)
        child.send("\x1b[A")  # up arrow
        child.sendline("")
        prompt(child)
        child.sendline("remembered + 1")
        child.expect("\r\n42\r\n")
        assert leave(child) == 0


def test_piped_statements(target: Target) -> None:
    done = piped(target, "x = 2\nprint(x*21)\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "42\n", "")


def test_piped_statement_that_raises_gives_status_1(target: Target) -> None:
    script = "def f():\n    return {}['k']\nprint('before')\nf()\nprint('after')\n"
    done = piped(target, script)
    assert done.returncode == 1
    assert done.stdout == "before\nafter\n"
    assert done.stderr.rstrip().endswith("KeyError: 'k'")
    assert ">>>" not in done.stdout + done.stderr


def test_piped_exit_status(tmp_path: Path) -> None:
    done = piped(popen_target(tmp_path), "import sys\nsys.exit(7)\nprint('not reached')\n")
    assert (done.returncode, done.stdout) == (7, "")


def test_piped_syntax_error_is_reported_by_the_host(tmp_path: Path) -> None:
    done = piped(popen_target(tmp_path), "1 +\nprint('next')\n")
    assert done.returncode == 1
    assert "SyntaxError" in done.stderr
    assert done.stdout == "next\n"


def test_ctrl_c_three_times_ends_a_session_that_ignores_it(tmp_path: Path) -> None:
    target = popen_target(tmp_path)
    with spawned(target.args(), target.env) as child:
        pid = banner_pid(child)
        child.sendline("import signal; _ = signal.signal(signal.SIGINT, lambda *a: None)")
        prompt(child)
        child.sendline("print('de' + 'af', flush=True); sum(iter(int, 1))")
        child.expect("\r\ndeaf")
        for _ in range(20):  # signals sent at once may arrive as one: press until seen
            child.sendcontrol("c")
            if child.expect(["one more Ctrl-C ends the session", pexpect.TIMEOUT], 1) == 0:
                break
        child.sendcontrol("c")
        child.expect("the session was ended")
        assert wait_end(child) == 130
    assert wait_gone(pid), "the remote worker is still running"


@pytest.mark.parametrize("why", ["closed port", "key refused", "unknown host key"])
def test_connect_errors_are_one_line_with_runs_status(tmp_path: Path, sshd_host, why: str) -> None:  # noqa: ANN001
    target = ssh_target(tmp_path, sshd_host)
    config = Path(target.env["HOME"]) / ".ssh" / "config"
    if why == "closed port":
        target.host = f"root@{sshd_host.address}:{free_port(sshd_host.address)}"
    elif why == "key refused":
        config.write_text(config.read_text().replace(str(sshd_host.key), str(tmp_path / "none")))
    else:
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        config.write_text(config.read_text().replace(str(sshd_host.known_hosts), str(empty)))
    run = subprocess.run(
        [*target.args()[:3], "run", "-H", target.host, "print(1)"],
        env=target.env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode in (1, 3, 70), run.stderr
    for more in ((), ("--sh",)):
        done = piped(target, "print('not reached')\n", *more)
        assert done.returncode == run.returncode, done.stderr
        assert done.stdout == ""
        first, *hint = done.stderr.splitlines()
        assert first.startswith(f"xnet: error: {target.name}: unreachable: "), done.stderr
        if why == "unknown host key":  # refused in a pipe, as by run: the key and the way
            assert "not accepted" in first
            assert sshd_host.host_key_line.split()[0] in hint[1]
            assert "--accept-new" in hint[-1]
        else:
            assert not hint, done.stderr


def test_unknown_host_keys_are_asked_about_as_run_asks(tmp_path: Path, sshd_host) -> None:  # noqa: ANN001
    """At a terminal one question (y records the key); in a pipe --accept-new records it."""
    target = ssh_target(tmp_path, sshd_host)
    known = tmp_path / "known_hosts"
    config = Path(target.env["HOME"]) / ".ssh" / "config"
    config.write_text(config.read_text().replace(str(sshd_host.known_hosts), str(known)))
    with spawned(target.args(), target.env) as child:
        child.expect(r"Accept this key and record it in .*\? \[y/N\] ")
        child.sendline("y")
        prompt(child, target.name)
        child.sendline("6 * 7")
        child.expect("\r\n42\r\n")
        assert leave(child, target.name) == 0
    assert sshd_host.host_key_line.split()[1] in known.read_text()
    known.write_text("")
    done = piped(target, "print(6 * 7)\n", "--accept-new")
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr
    assert "(--accept-new)" in done.stderr
    assert sshd_host.host_key_line.split()[1] in known.read_text()


def test_the_config_files_timeout_is_for_jobs_not_sessions(tmp_path: Path) -> None:
    """``timeout:`` bounds ``xnet run``'s jobs; a statement at the prompt is not dropped."""
    target = popen_target(tmp_path)
    (tmp_path / "config" / "xnet").mkdir(parents=True)
    (tmp_path / "config" / "xnet" / "config.yaml").write_text("timeout: 0.5\nfanout: 2\n")
    done = piped(target, "import time; time.sleep(1.5)\nprint('done')\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")
