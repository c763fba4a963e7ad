"""Bad files get one line naming the file, the line, the field and the fix.

Each file in ``tests/malformed/`` starts with a comment saying what its error
must be::

    # expect: LINE FIELD :: TEXT

(``-`` for no field), so adding a case needs no change here. Every file goes
through :func:`dmvx.validate.validate_file`, as ``dmvx validate FILE`` does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dmvx.errors import InputError
from dmvx.scenario import load_scenario
from dmvx.topology import load_topology
from dmvx.validate import validate_file
from dmvx.yamlfile import parse_yaml, read_yaml

MALFORMED = Path(__file__).parent / "malformed"
FIXTURES = sorted(MALFORMED.glob("*.yml"))
_EXPECT = re.compile(rb"^# expect: (\d+) (\S+) :: (.+)$")


def expectation(path: Path) -> tuple[int, str, str]:
    match = _EXPECT.match(path.read_bytes().splitlines()[0])
    assert match, f"{path.name} lacks its '# expect: LINE FIELD :: TEXT' line"
    line, field, text = match.groups()
    return int(line), "" if field == b"-" else field.decode(), text.decode()


def test_there_are_enough_distinct_cases() -> None:
    assert len(FIXTURES) >= 15
    assert len({expectation(p)[2] for p in FIXTURES}) == len(FIXTURES), "each case shows a different error"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_malformed_file(path: Path) -> None:
    line, field, text = expectation(path)
    with pytest.raises(InputError) as caught:
        validate_file(path)
    error = caught.value
    report = str(error)
    assert "\n" not in report and "Traceback" not in report
    assert (error.file, error.line, error.field) == (str(path), line, field), report
    assert report.startswith(f"{path}:{line}:{error.column}: " + (f"{field}: " if field else "")), report
    assert text in report
    assert error.column is not None and error.column >= 1


def test_one_line_format() -> None:
    error = InputError(
        "'5' is not a duration",
        file="topologies/bad.yml",
        line=12,
        column=5,
        field="links[1].delay",
        expected="a number with a unit, e.g. 5ms",
    )
    assert str(error) == (
        "topologies/bad.yml:12:5: links[1].delay: '5' is not a duration; expected a number with a unit, e.g. 5ms"
    )
    assert str(InputError("no such file", file="x.yml")) == "x.yml: no such file"
    assert str(InputError("bad\nvalue", field="a")) == "a: bad\\nvalue"


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^.*missing\.yml: no such file; expected an existing \.yml file$"):
        validate_file(tmp_path / "missing.yml")
    with pytest.raises(InputError, match="is a directory"):
        validate_file(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        load_topology(tmp_path / "gone.yml")
    with pytest.raises(InputError, match="no such file"):
        load_scenario(tmp_path / "gone.yml")


def test_a_file_that_is_neither_kind(tmp_path: Path) -> None:
    path = tmp_path / "what.yml"
    path.write_text("name: what\ndescription: no hint of either kind\n")
    with pytest.raises(InputError, match="cannot tell whether this is a topology or a scenario"):
        validate_file(path)


def test_application_tags_are_refused() -> None:
    with pytest.raises(InputError) as caught:
        parse_yaml("name: !!python/object/apply:os.system ['true']\n", file="x.yml")
    assert caught.value.line == 1 and "could not determine a constructor" in caught.value.message


def test_alias_bombs_stop_early() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    with pytest.raises(InputError, match="expands to more than"):
        parse_yaml("\n".join(lines) + "\n", file="bomb.yml")


def test_positions_survive_anchors_and_merge_keys() -> None:
    doc = parse_yaml(
        "defaults: &d {delay: 1ms, bw: 10Mbit}\nlinks:\n  - <<: *d\n    a: h1\n  - {<<: *d, a: h2, bw: 5}\n",
        file="m.yml",
    )
    assert doc.data["links"][1] == {"delay": "1ms", "bw": 5, "a": "h2"}
    assert doc.position(("links", 1, "bw")) == (5, 25)  # the explicit key wins
    assert doc.position(("links", 0, "delay")) == (1, 22)  # a merged key points at its anchor
    assert doc.position(("links", 0, "a"), at="key") == (4, 5)


def test_recursive_aliases_do_not_hang() -> None:
    doc = parse_yaml("a: &x [1, *x]\n", file="r.yml")
    assert doc.position(("a", 1)) == (1, 4)  # an alias is its anchor's node


def test_non_string_keys_and_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.yml"
    path.write_bytes(b"\xef\xbb\xbfhosts:\n  1: {role: variant}\n")
    with pytest.raises(InputError) as caught:
        validate_file(path)
    assert (caught.value.line, caught.value.field) == (2, "hosts.1")


def test_control_characters_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ctl.yml"
    path.write_bytes(b"name: ok\ndescription: bell \x07 here\n")
    with pytest.raises(InputError) as caught:
        read_yaml(path)
    assert (caught.value.line, caught.value.column) == (2, 19)


def test_dmvx_validate_prints_one_line_per_bad_file_and_fails() -> None:
    """End to end through the command line: no traceback, a non-zero status."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "dmvx", "validate", *map(str, FIXTURES)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    for path in FIXTURES:
        line = expectation(path)[0]
        assert f"{path}:{line}:" in result.stderr, path.name


# --- inputs that are not files to read: bounded, never waited on, never shown ---

import os  # noqa: E402
import threading  # noqa: E402

from dmvx.yamlfile import MAX_YAML_BYTES, read_input  # noqa: E402


@pytest.mark.parametrize("target,kind", [("/dev/zero", "a character device"), ("/dev/null", "a character device")])
def test_devices_are_refused_before_any_read(target: str, kind: str) -> None:
    with pytest.raises(InputError, match=f"^{target}: is {kind}, not a regular file; expected a .yml file$"):
        validate_file(Path(target))


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yml"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def read() -> None:
        with pytest.raises(InputError) as refused:
            validate_file(fifo)
        outcome.append(refused.value)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "validating a FIFO blocked"
    assert "is a FIFO, not a regular file" in str(outcome[0])


def test_a_directory_and_a_file_over_the_limit_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory, not a regular file"):
        read_yaml(tmp_path)
    big = tmp_path / "big.yml"
    big.write_bytes(b"# " + b"x" * MAX_YAML_BYTES + b"\n")
    with pytest.raises(InputError, match=f"is larger than {MAX_YAML_BYTES:,} bytes"):
        validate_file(big)
    assert read_input(big, limit=MAX_YAML_BYTES + 10) == big.read_bytes()


SECRET = "root:$6$S3cr3tHash:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n"


def test_a_file_that_is_not_a_dmvx_file_is_not_shown(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text(SECRET)
    for load in (load_topology, load_scenario):
        with pytest.raises(InputError) as caught:
            load(shadow)
        assert "S3cr3t" not in str(caught.value) and "99999" not in str(caught.value), caught.value
        assert "none of its top-level keys" in str(caught.value)
    scenario = tmp_path / "s.yml"
    scenario.write_text(f"workload: {{kind: microbench, call: getpid}}\ntopology: {shadow}\n")
    with pytest.raises(InputError) as caught:
        load_scenario(scenario)
    assert "S3cr3t" not in str(caught.value) and str(shadow) in str(caught.value)
