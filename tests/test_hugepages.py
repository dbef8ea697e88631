"""The node's heap on transparent huge pages (tfnode/node/hugepages.py): when ``tfnode start``
re-executes itself with glibc's tunable, and when it leaves the process alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tfnode.node import cli_node, config
from tfnode.node.hugepages import MIN_GLIBC, TUNABLE, _glibc, huge_pages_env, huge_pages_state, thp_mode

GLIBC = (2, 36)


def test_the_tunable_is_added_to_whatever_the_environment_holds():
    env = huge_pages_env({"PATH": "/bin"}, enabled=True, thp="madvise", glibc=GLIBC)
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": f"{TUNABLE}=1"}
    env = huge_pages_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, enabled=True, thp="always", glibc=GLIBC)
    assert env == {"GLIBC_TUNABLES": f"glibc.malloc.arena_max=2:{TUNABLE}=1"}


@pytest.mark.parametrize(
    ("environ", "enabled", "thp", "glibc"),
    [
        ({}, False, "madvise", GLIBC),  # huge_pages = false
        ({"GLIBC_TUNABLES": f"{TUNABLE}=0"}, True, "madvise", GLIBC),  # the operator's choice stands
        ({"GLIBC_TUNABLES": f"{TUNABLE}=1"}, True, "madvise", GLIBC),  # already re-executed
        ({}, True, "never", GLIBC),  # THP off in the kernel
        ({}, True, None, GLIBC),  # no THP at all
        ({}, True, "madvise", (2, 31)),  # glibc without the tunable
        ({}, True, "madvise", None),  # not glibc (musl)
    ],
)
def test_nothing_changes_where_it_cannot_or_should_not_apply(environ, enabled, thp, glibc):
    assert huge_pages_env(environ, enabled=enabled, thp=thp, glibc=glibc) is None


def test_thp_mode_reads_the_bracketed_word(tmp_path):
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    assert thp_mode(f) == "madvise"
    f.write_text("[always] madvise never\n")
    assert thp_mode(f) == "always"
    assert thp_mode(tmp_path / "missing") is None


def test_the_start_up_line_says_why():
    assert huge_pages_state(True, {"GLIBC_TUNABLES": f"{TUNABLE}=1"}).startswith("on (")
    assert huge_pages_state(True, {"GLIBC_TUNABLES": f"{TUNABLE}=0"}).startswith("off (GLIBC_TUNABLES=")
    assert huge_pages_state(False, {}) == "off (huge_pages = false in config.toml)"


def test_the_process_re_executes_itself_once_with_the_same_pid():
    """The real exec: a child that calls the re-exec twice over (the second run finds the
    tunable set and goes on) reports its pid and environment from both runs."""
    code = textwrap.dedent(
        """
        import os, sys
        from tfnode.node.hugepages import reexec_with_huge_pages
        print("run", os.getpid(), os.environ.get("GLIBC_TUNABLES", ""), flush=True)
        reexec_with_huge_pages(True)
        print("on", os.getpid(), os.environ.get("GLIBC_TUNABLES", ""), flush=True)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    lines = [ln.split(" ", 2) for ln in out.stdout.splitlines()]
    applies = sys.platform.startswith("linux") and thp_mode() in ("always", "madvise") and (_glibc() or ()) >= MIN_GLIBC
    if applies:
        assert [ln[0] for ln in lines] == ["run", "run", "on"]
        assert len({ln[1] for ln in lines}) == 1  # one pid throughout
        assert lines[0][2] == "" and lines[1][2] == lines[2][2] == f"{TUNABLE}=1"
    else:
        assert [ln[0] for ln in lines] == ["run", "on"]
        assert lines[1][2] == ""


def test_config_key_defaults_on_and_round_trips(tmp_path):
    cli_node.init(4, tmp_path / "net", base_port=33400)
    home = tmp_path / "net" / "node-0"
    cfg = config.load(home)
    assert cfg.huge_pages is True and "huge_pages = true" in (home / "config.toml").read_text()
    cfg.huge_pages = False
    (home / "config.toml").write_text(config.render(cfg))
    assert config.load(home).huge_pages is False
    text = (home / "config.toml").read_text().replace("huge_pages = false", 'huge_pages = "yes"')
    (home / "config.toml").write_text(text)
    with pytest.raises(config.ConfigError, match=r"node\.huge_pages must be true or false"):
        config.load(home)


def test_a_failed_exec_leaves_the_process_going(monkeypatch, capsys):
    from tfnode.node import hugepages

    def refuse(*_a):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(hugepages.sys, "platform", "linux")
    monkeypatch.setattr(hugepages, "thp_mode", lambda: "madvise")
    monkeypatch.setattr(hugepages, "_glibc", lambda: GLIBC)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setattr(hugepages.os, "execve", refuse)
    hugepages.reexec_with_huge_pages(True)  # returns instead of raising
    assert "could not re-execute" in capsys.readouterr().err
