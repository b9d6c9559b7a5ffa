"""Sweeps: keys and values as typed on the command line, grid/zip expansion, and a real 3×2 sweep of the
smoke spec (4 steps) through `disco-spec sweep`: six run folders with manifests, sweep.json, a contact
sheet whose cells are the cells' images, an MLflow parent run with six children (sqlite store), and one
cell rebuilt alone with `disco-spec rebuild`."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from disco_spec.cli import scale as cli_scale
from disco_spec.record import manifest
from disco_spec.record import pngmeta
from disco_spec.repro.verify import verify_run
from disco_spec.errors import SpecError
from disco_spec.scale.sweep import Axis, load_sweep_file, parse_set, plan_sweep, resolve_key, split_values
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
SETS = ["clip_guidance_scale=1500,5000,10000", "steps=4,5"]


def small_smoke() -> dict:
    doc = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text(encoding="utf-8"))
    doc["diffusion"]["steps"] = 4
    doc["init"]["skip_steps"] = 2
    return doc


def write_spec(path: Path, doc: dict) -> Path:
    import tomli_w

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Keys, values, expansion (no rendering)
# ---------------------------------------------------------------------------------------------


def test_keys_resolve_to_dotted_paths():
    assert resolve_key("clip_guidance_scale") == "guidance.clip_guidance_scale"
    assert resolve_key("steps") == "diffusion.steps"
    assert resolve_key("guidance.tv_scale") == "guidance.tv_scale"
    assert resolve_key("set_seed") == "run.set_seed"
    assert resolve_key("prompts.text_prompts.0") == "prompts.text_prompts.0"  # into a table-valued field
    with pytest.raises(SpecError) as exc:
        resolve_key("clip_guidance_scal")
    ((loc, msg),) = exc.value.problems
    assert loc == "--set clip_guidance_scal"
    assert "did you mean 'clip_guidance_scale' (guidance.clip_guidance_scale)?" in msg
    with pytest.raises(SpecError) as exc:
        resolve_key("guidance.clip_guidnce_scale")
    assert "did you mean 'guidance.clip_guidance_scale'?" in exc.value.problems[0][1]
    with pytest.raises(SpecError) as exc:
        resolve_key("diffusion.steps.x")  # steps is a number, not a table
    assert exc.value.problems[0][0] == "--set diffusion.steps.x"


def test_values_are_split_outside_brackets_and_quotes_and_typed_by_field():
    assert split_values('1,[2, 3],{a = "x,y"},"p, q",\'r,s\'') == ["1", "[2, 3]", '{a = "x,y"}', '"p, q"', "'r,s'"]
    a = parse_set("clip_guidance_scale=1500, 5000.5,1e4")
    assert (a.path, a.values, a.labels) == ("guidance.clip_guidance_scale", (1500, 5000.5, 1e4), ("1500", "5000.5", "1e4"))
    assert parse_set("steps=100,250").values == (100, 250)
    assert parse_set("diffusion_sampling_mode=ddim,plms").values == ("ddim", "plms")  # strings need no quotes
    assert parse_set("animation_mode=None,2D").values == ("None", "2D")  # a string field: 'None' stays a string
    assert parse_set("frames_skip_steps=60%,50").values == ("60%", 50)
    assert parse_set("width_height=[64, 64],[128,64]").values == ([64, 64], [128, 64])
    assert parse_set("clamp_grad=true,false").values == (True, False)
    assert parse_set("set_seed=1,random_seed").values == (1, "random_seed")
    assert parse_set("init_image=null").values == (None,)
    z = parse_set('zoom="0: (1), 10: (1.05)",1.02')
    assert z.values == ("0: (1), 10: (1.05)", 1.02) and z.labels == ("0: (1), 10: (1.05)", "1.02")
    assert parse_set('prompts.text_prompts=["a cat"],{0 = ["a dog"]}').values == (["a cat"], {"0": ["a dog"]})


@pytest.mark.parametrize("arg, loc, words", [
    ("clip_guidance_scal=1,2", "--set clip_guidance_scal", "did you mean 'clip_guidance_scale'"),
    ("steps=4,1", "--set steps", "value '1': input should be greater than or equal to 2"),
    ("eta=abc", "--set eta", "value 'abc': input should be a valid number"),
    ("diffusion_sampling_mode=plmz", "--set diffusion_sampling_mode", "'ddim' or 'plms'"),
    ("steps", "--set steps", "expected KEY=VALUE1,VALUE2"),
    ("steps=4,,5", "--set steps", "empty value"),
])
def test_bad_keys_and_values_name_the_set_option(arg, loc, words):
    with pytest.raises(SpecError) as exc:
        plan_sweep(small_smoke(), [arg])
    assert any(p[0] == loc and words in p[1] for p in exc.value.problems), exc.value.problems


def test_cross_field_problems_name_the_keys_of_the_variant():
    with pytest.raises(SpecError) as exc:
        plan_sweep(small_smoke(), ["steps=4,2", "skip_steps=1,2"])  # skip_steps must stay below steps
    assert exc.value.problems == [("--set skip_steps", "value '2': must be less than diffusion.steps (2) (got 2)")]
    with pytest.raises(SpecError) as exc:
        plan_sweep(small_smoke(), ["steps=4,2"])  # the base's skip_steps = 2 is not swept: blame the variant
    ((loc, msg),) = exc.value.problems
    assert loc == "--set steps"
    assert msg.startswith("the variant steps=2 is invalid: init.skip_steps: must be less than diffusion.steps (2)")


def test_grid_zip_and_layout():
    p = plan_sweep(small_smoke(), SETS)
    assert p.mode == "grid" and p.shape() == (3, 2) and len(p.cells) == 6
    assert [c.name for c in p.cells] == [f"cell-0{i}" for i in range(6)]
    assert p.cells[3].overrides == {"guidance.clip_guidance_scale": 5000, "diffusion.steps": 5}
    assert p.cells[3].document["guidance"]["clip_guidance_scale"] == 5000.0
    assert all(c.document["run"]["set_seed"] == 42 for c in p.cells)  # one seed for every cell
    lay = p.layout()
    assert (lay["row_title"], lay["col_title"]) == ("clip_guidance_scale", "steps")
    assert (lay["rows"], lay["cols"]) == (["1500", "5000", "10000"], ["4", "5"])
    assert lay["positions"][3] == (1, 1) and lay["positions"][4] == (2, 0)

    three = plan_sweep(small_smoke(), SETS + ["eta=0.5,0.8"])
    lay3 = three.layout()
    assert lay3["cols"] == ["4, 0.5", "4, 0.8", "5, 0.5", "5, 0.8"] and lay3["col_title"] == "steps, eta"
    assert len(three.cells) == 12 and lay3["positions"][7] == (1, 3)

    z = plan_sweep(small_smoke(), ["clip_guidance_scale=1500,5000", "steps=4,6"], mode="zip")
    assert [c.overrides["diffusion.steps"] for c in z.cells] == [4, 6] and z.shape() == (2,)
    assert z.layout()["cols"] == ["1500, 4", "5000, 6"]
    with pytest.raises(SpecError) as exc:
        plan_sweep(small_smoke(), SETS, mode="zip")
    assert exc.value.problems[0][0] == "--zip" and "clip_guidance_scale: 3, steps: 2" in exc.value.problems[0][1]
    with pytest.raises(SpecError):
        plan_sweep(small_smoke(), ["steps=4,5", "diffusion.steps=6"])  # the same field twice


def test_random_seed_spec_gets_one_seed_for_the_whole_sweep():
    doc = small_smoke()
    doc["run"]["set_seed"] = "random_seed"
    p = plan_sweep(doc, SETS)
    seeds = {c.document["run"]["set_seed"] for c in p.cells}
    assert p.seed_drawn and len(seeds) == 1 and isinstance(seeds.pop(), int)
    swept = plan_sweep(small_smoke(), ["set_seed=1,2,3"])
    assert [c.document["run"]["set_seed"] for c in swept.cells] == [1, 2, 3]


def test_sweep_file(tmp_path):
    f = tmp_path / "sweep.toml"
    f.write_text('mode = "zip"\n[set]\nclip_guidance_scale = [1500, 5000]\n"diffusion.steps" = [4, 6]\n')
    mode, axes = load_sweep_file(f)
    assert mode == "zip" and [a.path for a in axes] == ["guidance.clip_guidance_scale", "diffusion.steps"]
    p = plan_sweep(small_smoke(), ["eta=0.5,0.8"], sweep_file=f)  # file axes first, then --set
    assert p.mode == "zip" and [a.key for a in p.axes] == ["clip_guidance_scale", "diffusion.steps", "eta"]
    j = tmp_path / "sweep.json"
    j.write_text(json.dumps({"set": {"steps": [4, 5], "stepz": [1]}}))
    with pytest.raises(SpecError) as exc:
        load_sweep_file(j)
    assert exc.value.problems[0][0] == "--set stepz"
    j.write_text(json.dumps({"set": {"steps": 4}}))
    with pytest.raises(SpecError):
        load_sweep_file(j)


def test_cli_errors_and_dry_run(tmp_path):
    spec = write_spec(tmp_path / "s.toml", small_smoke())
    code, out, err = run_cli("sweep", str(spec), "--set", "clip_guidance_scal=1,2", "--no-track")
    assert code == 2 and "--set clip_guidance_scal: unknown key" in err and "did you mean" in err
    code, _, err = run_cli("sweep", str(spec), "--no-track")
    assert code == 2 and "--set: nothing to sweep" in err
    code, _, err = run_cli("sweep", str(spec), "--set", "steps=4,5", "--backend", "spark")
    assert code == 2 and "--backend" in err
    code, out, err = run_cli("sweep", str(spec), *sum((["--set", s] for s in SETS), []), "--dry-run", "--json")
    assert code == 0, err
    cells = json.loads(out)
    assert len(cells) == 6 and cells[5]["labels"] == {"clip_guidance_scale": "10000", "steps": "5"}
    assert not (tmp_path / "images_out").exists()


# ---------------------------------------------------------------------------------------------
# A real sweep
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """`disco-spec sweep` of the 4-step smoke spec, 3×2, tracked in a fresh sqlite MLflow store."""
    import os

    base = tmp_path_factory.mktemp("sweep")
    spec = write_spec(base / "specs" / "smoke4.toml", small_smoke())
    old_cwd = os.getcwd()
    os.chdir(base)  # MLflow puts the artifacts of new experiments under ./mlruns
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        uri = f"sqlite:///{base / 'mlflow.db'}"
        code, out, err = run_cli("sweep", str(spec), *sum((["--set", s] for s in SETS), []), "--out", str(base / "out"),
                                 "--tracking-uri", uri, "--quiet")
    finally:
        os.chdir(old_cwd)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    assert code == 0, err
    sweep_dir = base / "out" / "smoke" / "sweep-0001"
    return {"base": base, "spec": spec, "uri": uri, "dir": sweep_dir, "out": out, "err": err,
            "doc": json.loads((sweep_dir / "sweep.json").read_text())}


@pytest.mark.render
@pytest.mark.slow
def test_sweep_writes_cells_with_manifests(swept):
    doc, sd = swept["doc"], swept["dir"]
    assert doc["status"] == "finished" and doc["mode"] == "grid" and doc["shape"] == [3, 2]
    assert [c["name"] for c in doc["cells"]] == [f"cell-0{i}" for i in range(6)]
    assert f"6 cell(s) in {sd}" in swept["out"]
    ids = set()
    for c in doc["cells"]:
        rd = sd / c["run_dir"]
        m = manifest.load_manifest(rd)
        assert m["id"] == c["manifest_id"] and manifest.id_matches(m)
        ids.add(m["id"])
        spec = m["hashed"]["spec"]
        for path, value in c["overrides"].items():
            section, key = path.split(".")
            assert spec[section][key] == value
        files = {f["path"]: f["sha256"] for f in m["files"]}
        assert c["outputs"] and all(files[o["path"]] == o["sha256"] == pngmeta.file_sha256(rd / o["path"])
                                    for o in c["outputs"])
        assert verify_run(rd).ok
    assert len(ids) == 6


@pytest.mark.render
@pytest.mark.slow
def test_contact_sheet_places_each_cell_at_its_row_and_column(swept):
    from PIL import Image

    from disco_spec.scale.contact_sheet import sweep_contact_sheet

    sd = swept["dir"]
    plan = plan_sweep(swept["spec"], SETS)
    images = {c.index: sd / c.name / "smoke_0000.png" for c in plan.cells}
    boxes = sweep_contact_sheet(plan, images).info["cell_boxes"]
    with Image.open(sd / "contact_sheet.png") as im:
        sheet = im.convert("RGB")
    assert len(boxes) == 6
    for c in plan.cells:
        row, col = plan.layout()["positions"][c.index]
        assert (row, col) == (c.coords[0], c.coords[1])
        x0, y0, x1, y1 = boxes[(row, col)]
        with Image.open(images[c.index]) as cell_im:
            expected = cell_im.convert("RGB").resize((x1 - x0, y1 - y0), Image.Resampling.NEAREST)
        assert sheet.crop((x0, y0, x1, y1)).tobytes() == expected.tobytes(), c.name
    # the label bands (title, column labels, row labels) have ink in them
    first_box = boxes[(0, 0)]
    header = sheet.crop((0, 0, sheet.width, first_box[1]))
    assert header.getextrema()[0][0] < 100
    labels = sheet.crop((0, first_box[1], first_box[0], sheet.height))
    assert labels.getextrema()[0][0] < 100


def _image_steps(client, run_id: str, key: str = "image") -> list[int]:
    pattern = re.compile(rf"^images/{re.escape(key)}[+%]step[+%](\d+)[+%].*\.png$")
    return sorted(int(m.group(1)) for f in client.list_artifacts(run_id, "images") if (m := pattern.match(f.path)))


@pytest.mark.slow
@pytest.mark.render
def test_mlflow_parent_has_six_children_and_the_contact_sheet(swept):
    import os

    from mlflow import MlflowClient

    doc = swept["doc"]
    client = MlflowClient(tracking_uri=swept["uri"])
    parent_id = doc["mlflow"]["parent_run_id"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "clip_guidance_scale × steps · smoke sweep-0001"
    assert parent.data.tags["disco_spec.sweep"] == "true" and parent.data.tags["disco_spec.sweep_shape"] == "3x2"
    assert json.loads(parent.data.params["sweep.guidance.clip_guidance_scale"]) == [1500, 5000, 10000]
    artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert {"contact_sheet.png", "sweep.json", "cells.json", "base_spec.json"} <= artifacts
    kids = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert len(kids) == 6
    assert parent.data.tags["mlflow.source.name"] == str(swept["spec"].resolve())
    assert _image_steps(client, parent_id) == [0]  # the contact sheet, under the cells' image key
    by_cell = {k.data.tags["disco_spec.sweep_cell"]: k for k in kids}
    spans = []
    for c in doc["cells"]:
        kid = by_cell[c["name"]]
        assert kid.info.run_id == c["mlflow_run_id"] and kid.info.status == "FINISHED"
        assert kid.data.tags["disco_spec.manifest_id"] == c["manifest_id"]
        assert kid.data.tags["disco_spec.sweep.clip_guidance_scale"] == c["labels"]["clip_guidance_scale"]
        assert float(kid.data.params["guidance.clip_guidance_scale"]) == c["overrides"]["guidance.clip_guidance_scale"]
        assert kid.data.params["diffusion.steps"] == str(c["overrides"]["diffusion.steps"])
        labels = c["labels"]
        assert kid.info.run_name == (f"clip_guidance_scale={labels['clip_guidance_scale']} steps={labels['steps']}"
                                     f" · smoke sweep-0001/{c['name']}")
        assert kid.data.params["guidance.clip_guidance_scale"] == labels["clip_guidance_scale"]  # as written
        assert kid.data.tags["mlflow.note.content"].startswith(f"{c['name']} of the grid sweep smoke/sweep-0001: ")
        assert _image_steps(client, kid.info.run_id) == [0]  # the cell's image, for the chart view's image grid
        # the cell's run spans the cell's render, not the moment it was recorded
        assert kid.info.end_time - kid.info.start_time >= 1000 * kid.data.metrics["render_seconds"] - 2
        spans.append((kid.info.start_time, kid.info.end_time))
        assert kid.data.tags["manifest"] == c["manifest_id"][:12] and kid.data.tags["seed"] == "42"
        assert "tv_loss" in kid.data.metrics  # the step statistics, replayed from the cell's result
        assert {"manifest.json", "smoke_0000.png", "spec.json"} <= {a.path for a in client.list_artifacts(kid.info.run_id)}
    # cells render one after the other: their runs' spans follow each other and lie within the parent's
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert parent.info.start_time <= spans[0][0] and spans[-1][1] <= parent.info.end_time
    table = json.loads((Path(client.download_artifacts(parent_id, "cells.json", str(swept["base"] / "dl")))).read_text())
    cols = table["columns"]
    assert cols[:4] == ["cell", "clip_guidance_scale", "steps", "image"]
    assert [row[cols.index("manifest_id")] for row in table["data"]] == [c["manifest_id"] for c in doc["cells"]]
    assert [row[cols.index("clip_guidance_scale")] for row in table["data"]] == [1500, 1500, 5000, 5000, 10000, 10000]
    for row in table["data"]:  # each row's image, stored beside the table for the UI's table view
        cell_image = row[cols.index("image")]
        assert cell_image["type"] == "image"
        assert cell_image["filepath"] in {f.path for f in client.list_artifacts(parent_id, os.path.dirname(cell_image["filepath"]))}
    assert f"MLflow parent run {parent_id} (6 child runs)" in swept["err"]


@pytest.mark.slow
@pytest.mark.render
def test_any_cell_rebuilds_alone(swept, tmp_path):
    cell = swept["dir"] / "cell-03"
    code, out, err = run_cli("rebuild", str(cell), "--quiet")
    assert code == 0, out + err
    assert "identical" in out
    # the cell folder still has everything a run folder has
    assert {"spec.json", "plan.json", "manifest.json", "smoke_0000.png"} <= {p.name for p in cell.iterdir()}


@pytest.mark.render
@pytest.mark.slow
def test_a_second_sweep_gets_the_next_folder(swept, tmp_path):
    from disco_spec.scale.sweep import allocate_sweep_dir

    out = tmp_path / "o"
    shutil.copytree(swept["dir"].parent, out / "smoke")
    assert allocate_sweep_dir(out, "smoke").name == "sweep-0002"


def test_axis_dataclass_roundtrip():
    a = Axis(key="steps", path="diffusion.steps", values=(4, 5), labels=("4", "5"))
    p = plan_sweep(small_smoke(), [a])
    assert [c.overrides for c in p.cells] == [{"diffusion.steps": 4}, {"diffusion.steps": 5}]
    assert p.layout()["rows"] == [""] and p.layout()["cols"] == ["4", "5"]


def test_backend_options_are_checked_before_anything_runs(tmp_path):
    from disco_spec.scale.backends import check_backend

    with pytest.raises(SpecError) as exc:
        check_backend("local", "ray://head:10001")
    assert exc.value.problems[0][0] == "--address"
    with pytest.raises(SpecError) as exc:
        cli_scale.render_with_backend(tmp_path / "s.toml", tmp_path, backend="ray", address=None, resume=True)
    assert exc.value.problems[0][0] == "--resume"
    spec = write_spec(tmp_path / "s.toml", small_smoke())
    code, _, err = run_cli("sweep", str(spec), "--set", "steps=4,5", "--address", "auto", "--no-track")
    assert code == 2 and "--address: only used with --backend ray" in err


def test_the_sweep_request_reaches_every_cell(tmp_path, monkeypatch):
    """What a SweepRequest allows (extra folders, the network, downloads, the render cache) is what every cell's
    job renders with; `access` stays behind (jobs travel to workers, each builds its policy)."""
    from disco_spec.run.request import InputTrust
    from disco_spec.scale import backends
    from disco_spec.scale.sweep import SweepRequest, run_sweep
    from disco_spec.spec.access import InputPolicy

    class Stop(Exception):
        pass

    seen: dict = {}

    def run_jobs(jobs, backend, address, **options):
        seen.update(jobs=jobs, backend=backend, address=address, **options)
        raise Stop

    monkeypatch.setattr(backends, "run_jobs", run_jobs)
    extra = str(tmp_path / "inits")
    trust = InputTrust(allow_paths=(extra,), allow_network=True, fetch=False, access=InputPolicy.for_spec(None))
    request = SweepRequest(sweep_dir=tmp_path / "sweep", trust=trust, progress=True, ship_files=False, cache=False)
    with pytest.raises(Stop):
        run_sweep(plan_sweep(small_smoke(), ["steps=4,5"]), request)
    assert len(seen["jobs"]) == 2
    for job in seen["jobs"]:
        assert job.trust == InputTrust(allow_paths=(extra,), allow_network=True, fetch=False)
        assert job.cache is False
    assert (seen["backend"], seen["address"], seen["progress"], seen["ship_files"]) == ("local", None, True, False)
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text())["status"] == "failed"
