"""``xnet shell PATTERN`` on many hosts: each statement everywhere, results folded."""

from __future__ import annotations

import re
from pathlib import Path

from proc_helpers import wait_until
from shell_helpers import Target, base_env, leave, piped, popen_target, spawned, ssh_target

#: A value on web01 and web02, a KeyError on web03 (which has ROLE=b).
BY_ROLE = "{'a': 42}[__import__('os').environ.get('ROLE', 'a')]"


def many(tmp_path: Path) -> Target:
    """web[01-03], on a terminal without styles (rich then writes plain text)."""
    target = popen_target(tmp_path, "web")
    target.env["TERM"] = "dumb"
    return target


def test_results_are_folded_and_ctrl_c_reaches_every_host(tmp_path: Path) -> None:
    target = many(tmp_path)
    with spawned(target.args(), target.env) as child:
        child.expect(re.escape("web[01-03]: Python"))
        child.expect(re.escape("web[01-03]>>> "))
        child.sendline(BY_ROLE)
        child.expect(re.escape("web[01-02]: 42\r\nweb03: KeyError: 'b'"))
        child.sendline("print('same'); print('x' * 3)")
        child.expect(re.escape("web[01-03]:\r\n    same\r\n    xxx\r\n"))
        started = tmp_path / "started"
        child.sendline("if True:")
        child.sendline(f"    print('spinning'); _ = open({str(started)!r}, 'a').write('.')")
        child.sendline("    while True: pass")
        child.sendline("")
        assert wait_until(lambda: started.exists() and len(started.read_text()) == 3)
        child.sendcontrol("c")
        child.expect(re.escape("web[01-03]:\r\n    spinning\r\n    KeyboardInterrupt"))
        child.sendline("input()")  # one terminal cannot answer three hosts
        child.expect(re.escape("web[01-03]: EOFError"))
        assert leave(child, "web[01-03]") == 0


def test_a_lost_host_is_dropped_and_the_others_go_on(tmp_path: Path) -> None:
    target = many(tmp_path)
    with spawned(target.args(), target.env) as child:
        child.expect(re.escape("web[01-03]>>> "))
        child.sendline("import os; os._exit(1) if os.environ.get('ROLE') else 5")
        child.expect(re.escape("web[01-02]: 5\r\n"))  # the results, problems last:
        child.expect("web03: connection lost; dropped from the session\r\n")  # said once
        child.expect(re.escape("web[01-02]>>> "))
        assert "web03" not in child.before
        child.sendline("%hosts web")  # widens again: web03 gets a new worker
        child.expect(re.escape("web[01-03] (3 hosts)"))
        child.sendline("%hosts web01,web99")
        child.expect("unknown host or group 'web99'; close names: ")
        child.sendline("%hosts web01")
        child.expect(re.escape("web01 (1 host)"))
        child.sendline("'only ' + 'one'")
        child.expect("'only one'")
        assert leave(child, "web01") == 0


def test_a_host_that_runs_too_long_is_dropped(tmp_path: Path) -> None:
    target = many(tmp_path)
    with spawned(target.args("-t", "2"), target.env) as child:
        child.expect(re.escape("web[01-03]>>> "))
        child.sendline("import os, time; time.sleep(60 if os.environ.get('ROLE') else 0)")
        child.expect("web03: timed out after 2 s; dropped from the session")
        child.sendline("6 * 7")
        child.expect(re.escape("web[01-02]: 42"))
        assert leave(child, "web[01-02]") == 0


def test_piped_to_many_hosts(tmp_path: Path) -> None:
    done = piped(many(tmp_path), "x = 2\nprint(x * 21)\n" + BY_ROLE + "\n")
    assert done.returncode == 1
    assert done.stdout == "web[01-03]: 42\nweb[01-02]: 42\nweb03: KeyError: 'b'\n"


def test_unreachable_hosts_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "xnet.yaml").write_text(
        "hosts:\n  ok: {transport: popen}\n  gone: {transport: popen, python: /nonexistent/py}\n"
    )
    target = Target("all", {**base_env(tmp_path), "XNET_INVENTORY": str(tmp_path / "xnet.yaml")})
    done = piped(target, "print('hi')\n")
    assert "gone: unreachable" in done.stderr and "not in the session" in done.stderr
    assert (done.returncode, done.stdout) == (3, "hi\n")
    alone = piped(Target("gone", target.env), "print('hi')\n")
    assert alone.returncode == 3
    assert alone.stderr.startswith("xnet: error: gone: unreachable: ")


def test_many_hosts_over_ssh(tmp_path: Path, sshd_hosts) -> None:  # noqa: ANN001
    target = ssh_inventory(tmp_path, sshd_hosts(2))
    done = piped(target, "import os\nos.getpid() > 0\n6 * 7\n")
    assert (done.returncode, done.stdout) == (0, "ssh[1-2]: True\nssh[1-2]: 42\n")


def test_many_hosts_at_a_terminal_over_ssh(tmp_path: Path, sshd_hosts) -> None:  # noqa: ANN001
    """Folded results, Ctrl-C on every host, a lost host dropped, %hosts: over sshd hosts."""
    target = ssh_inventory(tmp_path, sshd_hosts(3))
    with spawned(target.args(), target.env) as child:
        child.expect(re.escape("ssh[1-3]: Python"))
        child.expect(re.escape("ssh[1-3]>>> "))
        child.sendline("import os; os.environ['SSH_CONNECTION'].split()[2] != '' and 6 * 7")
        child.expect(re.escape("ssh[1-3]: 42\r\n"))
        started = tmp_path / "started"
        child.sendline("while True:")
        child.sendline(f"    _ = open({str(started)!r}, 'a').write(str(os.getpid()) + ' ')")
        child.sendline("    while True: pass")
        child.sendline("")
        assert wait_until(lambda: started.exists() and len(started.read_text().split()) == 3)
        child.sendcontrol("c")
        child.expect(re.escape("ssh[1-3]: KeyboardInterrupt\r\n"))
        child.sendline("os.environ['SSH_CONNECTION'].split()[2].endswith('.3') and os._exit(1)")
        child.expect(re.escape("ssh[1,3]: False\r\n"))
        child.expect(re.escape("ssh2: connection lost; dropped from the session"))
        child.expect(re.escape("ssh[1,3]>>> "))
        child.sendline("%hosts ssh*")
        child.expect(re.escape("ssh[1-3] (3 hosts)"))
        child.sendline("'x' * 3")
        child.expect(re.escape("ssh[1-3]: 'xxx'\r\n"))
        assert leave(child, "ssh[1-3]") == 0


def ssh_inventory(tmp_path: Path, hosts: list) -> Target:
    """The sshd hosts as ssh1, ssh2, ... in an inventory; HOST ``ssh*`` selects them all."""
    target = ssh_target(tmp_path, hosts[0])
    lines = ["hosts:"] + [
        f"  ssh{i}: {{address: {h.address}, port: {h.port}, user: root}}"
        for i, h in enumerate(hosts, 1)
    ]
    (tmp_path / "xnet.yaml").write_text("\n".join(lines) + "\n")
    target.env.update(XNET_INVENTORY=str(tmp_path / "xnet.yaml"), TERM="dumb")
    return Target("ssh*", target.env)
