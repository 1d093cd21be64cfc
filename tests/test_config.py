"""Project config: found by walking up, every key works, bad config is exit 2 naming the
file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddilint.analyzer.engine import Options
from ddilint.cli import main
from ddilint.config import Config, find_config_file, glob_match, load_config

NT_CALL = "#include <ntddk.h>\nVOID F(HANDLE h)\n{\n    NtClose(h);\n}\n"
USER_NT_CALL = "VOID F(HANDLE h)\n{\n    NtClose(h);\n}\n"  # no header: kernel unless told


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")


def _codes(capsys: pytest.CaptureFixture[str]) -> list[tuple[str, int, str]]:
    data = json.loads(capsys.readouterr().out)
    return sorted((Path(f["path"]).as_posix().split("/proj/")[-1], f["line"], f["code"])
                  for f in data)


def test_found_by_walking_up_pyproject_and_dotfile(tmp_path: Path) -> None:
    _write(tmp_path, {"pyproject.toml": "[project]\nname='x'\n",  # no [tool.ddilint]: skipped
                      "a/.ddilint.toml": "ignore = ['DDI401']\n",
                      "a/b/c/drv.c": NT_CALL})
    assert find_config_file(tmp_path / "a/b/c/drv.c") == tmp_path / "a/.ddilint.toml"
    _write(tmp_path, {"pyproject.toml": "[tool.ddilint]\nselect = ['DDI4']\n"})
    assert find_config_file(tmp_path / "drv.c") == tmp_path / "pyproject.toml"
    cfg = load_config(tmp_path / "pyproject.toml")
    assert cfg.select == ["DDI4"] and cfg.root == tmp_path


def test_a_config_saved_with_a_bom_and_crlf_is_read(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # As Windows editors may save it: a UTF-8 BOM (a TOML parse error before) and CR LF.
    (tmp_path / ".ddilint.toml").write_bytes(
        b"\xef\xbb\xbfselect = [\"DDI4\"]\r\nignore = [\"DDI401\"]\r\n")
    cfg = load_config(tmp_path / ".ddilint.toml")
    assert (cfg.select, cfg.ignore) == (["DDI4"], ["DDI401"])
    (tmp_path / "pyproject.toml").write_bytes(b"\xef\xbb\xbf[tool.ddilint]\r\nselect = []\r\n")
    (tmp_path / ".ddilint.toml").unlink()
    assert find_config_file(tmp_path) == tmp_path / "pyproject.toml"
    # A baseline edited and saved the same way is still one.
    (tmp_path / "drv.c").write_text(
        "#include <ntddk.h>\nVOID F(HANDLE h)\n{\n    NtClose(h);\n}\n")
    baseline = tmp_path / "base.json"
    assert main(["check", "--no-cache", "--write-baseline", str(baseline), str(tmp_path)]) == 0
    baseline.write_bytes(b"\xef\xbb\xbf" + baseline.read_bytes().replace(b"\n", b"\r\n"))
    assert main(["check", "--no-cache", "--baseline", str(baseline), str(tmp_path)]) == 0
    capsys.readouterr()


def test_every_key_in_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proj = tmp_path / "proj"
    _write(proj, {
        "pyproject.toml": """
[tool.ddilint]
select = ["DDI4"]
ignore = ["DDI402"]
exclude = ["third_party/**"]
mode = {"usermode/**" = "user", "**" = "auto"}
roles = {"MyDpc" = "dpc"}
[tool.ddilint.per-file-ignores]
"legacy/*.c" = ["nt-routine-in-kernel-mode"]
[tool.ddilint.routines.NtFrobnicate]
reason = "our own Nt routine with a Zw form, documented in our SDK"
twin = "ZwFrobnicate"
[tool.ddilint.routines.ZwFrobnicate]
reason = "the Zw form"
twin = "NtFrobnicate"
""",
        "src/drv.c": NT_CALL.replace("NtClose(h)", "NtClose(h);\n    NtFrobnicate(h)"),
        "legacy/old.c": NT_CALL,
        "third_party/lib.c": NT_CALL,
        "usermode/tool.c": USER_NT_CALL,
    })
    assert main(["check", "--format", "json", str(proj)]) == 1
    # legacy/ ignored per file, third_party/ excluded, usermode/ is user mode (no DDI401);
    # NtFrobnicate is known through the config's routines.
    assert _codes(capsys) == [("src/drv.c", 4, "DDI401"), ("src/drv.c", 5, "DDI401")]
    # --mode on the command line beats the config's globs
    assert main(["check", "--format", "json", "--mode", "kernel", str(proj / "usermode")]) == 1
    assert _codes(capsys) == [("usermode/tool.c", 3, "DDI401")]
    # --isolated ignores the config: every file reports
    assert main(["check", "--isolated", "--format", "json", str(proj)]) == 1
    assert len(_codes(capsys)) == 4


def test_roles_and_modes_reach_the_engine_options(tmp_path: Path) -> None:
    _write(tmp_path, {".ddilint.toml": 'roles = {"MyDpc" = "dpc"}\nmode = "user"\n'})
    cfg = load_config(tmp_path / ".ddilint.toml")
    assert cfg.roles == {"MyDpc": "dpc"}
    assert cfg.mode_for(tmp_path / "x.c") == "user"
    opts = Options(roles=cfg.roles)
    assert opts.roles["MyDpc"] == "dpc"


@pytest.mark.parametrize(("text", "key"), [
    ("[tool.ddilint]\nselcet = ['DDI1']\n", "tool.ddilint.selcet"),
    ("[tool.ddilint]\nselect = 3\n", "tool.ddilint.select"),
    ("[tool.ddilint]\nselect = ['DDI999']\n", "tool.ddilint.select"),
    ("[tool.ddilint]\nmode = 'kernal'\n", "tool.ddilint.mode"),
    ("[tool.ddilint]\nmode = {'a/*' = 'both'}\n", "tool.ddilint.mode.a/*"),
    ("[tool.ddilint]\nroles = {'MyDpc' = 'dcp'}\n", "tool.ddilint.roles.MyDpc"),
    ("[tool.ddilint.per-file-ignores]\n'*.c' = ['no-such-rule']\n",
     "tool.ddilint.per-file-ignores.*.c"),
    ("[tool.ddilint.routines.ZwFoo]\nhandle_out = 1\n", "tool.ddilint.routines.ZwFoo"),
    ("[tool.ddilint]\nselect = [\n", "not valid TOML"),
])
def test_bad_config_exit_two_names_file_and_key(tmp_path: Path, text: str, key: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, {"pyproject.toml": text, "drv.c": NT_CALL})
    assert main(["check", str(tmp_path / "drv.c")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "pyproject.toml") in err and key in err, err


def test_explicit_config_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(tmp_path / "nope.toml"), str(tmp_path)]) == 2
    assert "nope.toml" in capsys.readouterr().err


def test_globs() -> None:
    assert glob_match("third_party/x/y.c", "third_party/**")
    assert glob_match("a/b/legacy.c", "legacy.c")
    assert glob_match("a/b/legacy.c", "**/legacy.c")
    assert not glob_match("src/drv.c", "legacy/*.c")
    cfg = Config(root=Path("/p"), exclude=["gen/**"])
    assert cfg.excluded("/p/gen/t.c") and not cfg.excluded("/p/src/t.c")


def test_readme_config_example_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```toml\n[tool.ddilint]", 1)[1].split("```", 1)[0]
    (tmp_path / "pyproject.toml").write_text("[tool.ddilint]" + block, encoding="utf-8")
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "old.c").write_text(NT_CALL)
    assert main(["check", str(tmp_path)]) == 0  # legacy/*.c ignores DDI401
    assert capsys.readouterr().err == ""


def test_config_roles_reach_the_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = ("#include <ntddk.h>\nVOID MyDpc(PVOID Context)\n{\n    HANDLE token;\n"
           "    if (NT_SUCCESS(ZwOpenProcessTokenEx(ZwCurrentProcess(), TOKEN_QUERY,\n"
           "                                        OBJ_KERNEL_HANDLE, &token))) {\n"
           "        *(PHANDLE)Context = token;\n    }\n}\n")
    (tmp_path / "drv.c").write_text(src)
    assert main(["check", str(tmp_path)]) == 0  # nobody is known to call MyDpc
    capsys.readouterr()
    (tmp_path / ".ddilint.toml").write_text('roles = {"MyDpc" = "dpc"}\n')
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert ":5:20: DDI301 [irql-too-high]" in out and "role set in the configuration" in out


def test_config_routines_extend_the_knowledge(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "drv.c").write_text(
        "#include <ntddk.h>\nNTSTATUS MyOpenDeviceKey(PHANDLE Key, ULONG Flags);\n\n"
        "NTSTATUS ReadSetting(ULONG Flags)\n{\n    HANDLE key;\n"
        "    NTSTATUS status = MyOpenDeviceKey(&key, Flags);\n"
        "    if (!NT_SUCCESS(status)) {\n        return status;\n    }\n"
        "    return STATUS_SUCCESS;\n}\n")
    assert main(["check", str(tmp_path)]) == 0  # an unknown routine: nothing to say
    capsys.readouterr()
    (tmp_path / ".ddilint.toml").write_text(
        '[routines.MyOpenDeviceKey]\nreason = "our wrapper of ZwOpenKey"\n'
        'handle_out_param = 0\nreturns_status = true\nrelease = ["ZwClose"]\n')
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert ":7:23: DDI201 [handle-leak] the handle MyOpenDeviceKey opens in `key` leaks" in out


def test_knowledge_show_sees_config_routines(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".ddilint.toml").write_text(
        '[routines.MyOpenDeviceKey]\nreason = "wrapper"\nhandle_out_param = 0\n')
    monkeypatch.chdir(tmp_path)
    assert main(["knowledge", "show", "MyOpenDeviceKey"]) == 0
    assert "handle out-parameter" in capsys.readouterr().out
    (tmp_path / ".ddilint.toml").write_text('[routines.MyOpenDeviceKey]\nhandle_out = 0\n')
    assert main(["knowledge", "show", "MyOpenDeviceKey"]) == 2
    assert "routines.MyOpenDeviceKey" in capsys.readouterr().err
