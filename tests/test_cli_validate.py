"""`disco-spec validate`: exit codes, one line per problem, never a traceback (fuzzed)."""

from __future__ import annotations

import pytest
import copy
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import run_cli

SMOKE = tomllib.loads((Path(__file__).resolve().parent.parent / "specs" / "smoke.toml").read_text())


@pytest.mark.slow
def test_valid_specs_exit_0(specs_dir: Path) -> None:
    code, out, err = run_cli("validate", *map(str, sorted(specs_dir.glob("*.toml"))))
    assert code == 0, err
    assert out.count(": ok") == len(list(specs_dir.glob("*.toml")))


def test_invalid_spec_prints_file_path_field_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('schema_version = 1\n[cuts]\ncutn_batch = 2\n[run]\nn_batches = "x"\n')
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"schema_version": 1}))
    code, out, err = run_cli("validate", str(good), str(bad))
    assert code == 2
    lines = err.strip().splitlines()
    assert f"{bad}: cuts.cutn_batch: unknown key 'cutn_batch'; did you mean 'cutn_batches'?" in lines
    assert any(l.startswith(f"{bad}: run.n_batches: ") and "got 'x'" in l and "expected an integer" in l for l in lines)
    assert f"{good}: ok" in out


def test_syntax_error_line_col(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("schema_version = 1\nname = \n")
    code, _, err = run_cli("validate", str(bad))
    assert code == 2 and err.startswith(f"{bad}:2:8: invalid TOML")


@pytest.mark.slow
def test_console_script_never_shows_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("schema_version = 99\n")
    for args in (["validate", str(bad)], ["validate", str(tmp_path / "missing.toml")], ["plan", str(bad)], ["nosuchcommand"]):
        r = subprocess.run([sys.executable, "-m", "disco_spec.cli", *args], capture_output=True, text=True)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and r.stderr.strip()


# --- fuzzing: mutate the smoke spec and require a clean exit 2 naming the field -------------------

def _leaves(doc: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in doc.items():
        if isinstance(v, dict) and v and k not in ("text_prompts", "image_prompts"):
            out += _leaves(v, prefix + (k,))
        else:
            out.append(prefix + (k,))
    return out


LEAVES = [p for p in _leaves(SMOKE) if p[-1] not in ("schema_version", "name", "description")]
WRONG_TYPES = [{"a": 1}, [1, "x"], "not-a-number", -1.5e300]
KEYFRAME_FIELDS = [p for p in LEAVES if p[0] == "animation" and p[-1] in ("angle", "zoom", "translation_x", "rotation_3d_y")]


def _set(doc: dict, path: tuple, value) -> None:
    cur = doc
    for k in path[:-1]:
        cur = cur.setdefault(k, {})
    cur[path[-1]] = value


mutations = st.one_of(
    st.tuples(st.just("type"), st.sampled_from(LEAVES), st.sampled_from(WRONG_TYPES)),
    st.tuples(st.just("unknown"), st.sampled_from([p[:-1] for p in LEAVES if len(p) > 1]), st.text("abcxyz_", min_size=3, max_size=8)),
    st.tuples(st.just("range"), st.sampled_from([("run", "n_batches"), ("diffusion", "steps"), ("cuts", "cutn_batches"), ("diffusion", "eta"), ("video", "fps")]), st.sampled_from([-5, 0, 10**9])),
    st.tuples(st.just("keyframes"), st.sampled_from(KEYFRAME_FIELDS), st.sampled_from(["0: (1", "0:(x)", "", "10: (1), 20: ()", "abc"])),
    st.tuples(st.just("weights"), st.just(("prompts", "text_prompts")), st.sampled_from([["a:1", "b:-1"], ["a:0"], ["x:2", "y:-2"]])),
    st.tuples(st.just("skip"), st.just(("init", "skip_steps")), st.integers(min_value=12, max_value=500)),
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutation=mutations)
def test_fuzzed_specs_exit_2_with_the_field_named(tmp_path_factory, mutation) -> None:
    kind, path, value = mutation
    doc = copy.deepcopy(SMOKE)
    if kind == "unknown":
        cur = doc
        for k in path:
            cur = cur[k]
        if value in cur or not isinstance(cur, dict):
            return
        cur[value] = 1
        path = path + (value,)
    else:
        _set(doc, path, value)
    f = tmp_path_factory.mktemp("fuzz") / "spec.toml"
    f.write_text(tomli_w.dumps(doc))
    code, _, err = run_cli("validate", str(f))
    if code == 0:
        # some mutations are legitimately valid (e.g. a number where a key-frame string is allowed)
        assert kind in ("type", "range", "unknown") and "Traceback" not in err
        return
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err
    named = ".".join(path[:2]) if path[0] != "prompts" else "prompts"
    assert any(line.startswith(f"{f}: {named}") for line in err.splitlines()), (named, err)
