"""References a reader can open: every file that code and docs cite is in this repository, and every
citation of DD 5.2's code names a line of `disco.py` (or `disco_xform_utils.py`) at commit 5100e6f and the
function, class or notebook cell that line lies in (the form docs/departures.md explains)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".yml", ".yaml", ".cfg"}
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "build", "dist", "golden", "data", "results"}
REPO_TOP = {"disco_spec", "tests", "docs", "bench", "runner", "tools", "specs", "schemas", ".github", ".ci"}

# Design material beside the repository that a reader of the repository cannot open.
OUTSIDE = re.compile(r"dd52-behaviour|shared/reference|/work/shared")
# A section number without its document ("§7.3") is a reference to something outside the repository.
SECTION = re.compile(r"§\s*\d")
URL = re.compile(r"https?://\S+")
PATH = re.compile(r"(?<![\w/.*-])((?:\.\.?/)*[\w*.-]+(?:/[\w*.-]+)*\.(?:py|md))(?![\w/])")
QUIRK = re.compile(r"\bQ(\d{1,2})\b")

# Files other projects' paths that share a first component with a disco_spec package (AdaBins' own
# `models/...`), named beside their project where they are cited.
THIRD_PARTY = {"models/unet_adaptive_bins.py", "models/miniViT.py", "models/layers.py"}
# The bench's DD reference step is an input it reads from beside a checkout (issue 20's bench/), not a
# citation: its path is allowed in bench/ only.
EXTERNAL_INPUTS = {"bench": re.compile(r"^\.\./shared/bench/")}

DD_FILES = ("disco.py", "disco_xform_utils.py")
DD_MENTION = re.compile(r"(?<![\w/.-])(disco|disco_xform_utils)\.py\b")
DD_CITATION = re.compile(r"(disco|disco_xform_utils)\.py:(\d+)(?:-(\d+))? \(([A-Za-z_]\w*(?: cell)?)\)")

# Where each function, class and notebook cell of DD's files lies at 5100e6f, from
# `git show 5100e6f:disco.py` in github.com/alembics/disco-diffusion: a top-level def/class from its `def`
# line to its last line (`cond_fn`, nested in `do_run`, likewise); a cell from its `# %%` line to the line
# before the next, named by the cell's metadata id.
DD_SPANS: dict[str, dict[str, tuple[int, int]]] = {
    "disco": {
        "TitleTop cell": (10, 21), "CreditsChTop cell": (22, 29), "Credits cell": (30, 63),
        "LicenseTop cell": (64, 71), "License cell": (72, 149), "ChangelogTop cell": (150, 157),
        "Changelog cell": (158, 265), "TutorialTop cell": (266, 273), "DiffusionSet cell": (274, 330),
        "SetupTop cell": (331, 338), "CheckGPU cell": (339, 357), "PrepFolders cell": (358, 427),
        "InstallDeps cell": (428, 588), "DefMidasFns cell": (589, 695), "DefFns cell": (696, 1506),
        "DefSecModel cell": (1507, 1675), "DiffClipSetTop cell": (1676, 1683), "ModelSettings cell": (1684, 1874),
        "SettingsTop cell": (1875, 1882), "BasicSettings cell": (1883, 1923), "AnimSetTop cell": (1924, 1931),
        "AnimSettings cell": (1932, 2288), "ExtraSetTop cell": (2289, 2297), "ExtraSettings cell": (2298, 2360),
        "PromptsTop cell": (2361, 2369), "Prompts cell": (2370, 2382), "DiffuseTop cell": (2383, 2390),
        "DoTheRun cell": (2391, 2574), "CreateVidTop cell": (2575, 2582), "CreateVid cell": (2583, 2661),
        "gitclone": (366, 368), "pipi": (370, 372), "pipie": (374, 376), "wget": (378, 380),
        "createPath": (406, 407), "init_midas_depth_model": (612, 694), "interp": (708, 709),
        "perlin": (711, 722), "perlin_ms": (724, 737), "create_perlin_noise": (739, 750),
        "regen_perlin": (752, 765), "fetch": (767, 775), "read_image_workaround": (777, 781),
        "parse_prompt": (783, 790), "sinc": (792, 793), "lanczos": (795, 798), "ramp": (800, 807),
        "resample": (809, 828), "MakeCutouts": (830, 869), "MakeCutoutsDango": (874, 970),
        "spherical_dist_loss": (972, 975), "tv_loss": (977, 982), "range_loss": (985, 986),
        "do_3d_step": (991, 1019), "do_run": (1021, 1413), "cond_fn": (1232, 1291),
        "generate_eye_views": (1415, 1428), "save_settings": (1430, 1505), "append_dims": (1514, 1515),
        "expand_to_planes": (1518, 1519), "alpha_sigma_to_t": (1522, 1523), "t_to_alpha_sigma": (1526, 1527),
        "DiffusionOutput": (1531, 1534), "ConvBlock": (1537, 1542), "SkipBlock": (1545, 1552),
        "FourierFeatures": (1555, 1563), "SecondaryDiffusionImageNet": (1566, 1608),
        "SecondaryDiffusionImageNet2": (1611, 1674), "download_models": (1707, 1811),
        "parse_key_frames": (2049, 2092), "get_inbetweens": (2094, 2156), "split_prompts": (2158, 2164),
        "move_files": (2410, 2414),
    },
    "disco_xform_utils": {"transform_image_3d": (18, 122), "get_spherical_projection": (124, 131)},
}


def text_files(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part in SKIP_DIRS or (part.startswith(".") and part not in REPO_TOP) for part in rel.parts[:-1]):
            continue
        if p.is_file() and (p.suffix in TEXT_SUFFIXES or rel.parts[0] == "schemas"):
            out.append(p)
    return out


def defined_quirks(root: Path) -> set[int]:
    text = (root / "docs" / "departures.md").read_text(encoding="utf-8")
    return {int(n) for n in re.findall(r"(?m)^\| Q(\d+) \|", text)}


def _exists(root: Path, here: Path, token: str) -> bool:
    first = token.split("/")[0]
    if token.startswith("."):
        bases = [here.parent, root]
    elif first in REPO_TOP:
        bases = [root]
    else:
        bases = [root / "disco_spec"]
    return any(any(base.glob(token)) if "*" in token else (base / token).exists() for base in bases)


def _is_repo_path(token: str, root: Path) -> bool:
    """Whether `token` names a file of this repository (else a bare or another project's file name)."""
    if token.startswith(("./", "../")):
        return True
    first = token.split("/")[0]
    return "/" in token and (first in REPO_TOP or (root / "disco_spec" / first).is_dir())


def citation_problems(root: Path = ROOT) -> list[str]:
    quirks = defined_quirks(root)
    problems = []
    for path in text_files(root):
        rel = path.relative_to(root).as_posix()
        if rel == "tests/test_citations.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            where = f"{rel}:{n}"
            if OUTSIDE.search(line):
                problems.append(f"{where}: cites design material outside the repository: {line.strip()[:100]}")
            if SECTION.search(line):
                problems.append(f"{where}: a § section of no document in the repository: {line.strip()[:100]}")
            bare = URL.sub("", line)
            for token in PATH.findall(bare):
                if token.split("/")[-1] in DD_FILES or token in THIRD_PARTY or not _is_repo_path(token, root):
                    continue
                allowed = EXTERNAL_INPUTS.get(rel.split("/")[0])
                if allowed is not None and allowed.match(token):
                    continue
                if not _exists(root, path, token):
                    problems.append(f"{where}: cites {token}, which is not in the repository")
            for m in DD_MENTION.finditer(bare):
                tail = bare[m.end():]
                if not tail.startswith(":") and not re.match(r"\s*(?:line|L|#L)\s*\d", tail):
                    continue  # the file named without a line
                cite = DD_CITATION.match(bare, m.start())
                if cite is None:
                    problems.append(f"{where}: write DD line citations as `disco.py:LINE (name)`: "
                                    f"{bare[m.start():m.start() + 60]}")
                    continue
                file, first, last, name = cite.group(1), int(cite.group(2)), int(cite.group(3) or cite.group(2)), \
                    cite.group(4)
                span = DD_SPANS[file].get(name)
                if span is None:
                    problems.append(f"{where}: {cite.group(0)}: {name} is no function, class or cell of {file}.py")
                elif not (span[0] <= first <= last <= span[1]):
                    problems.append(f"{where}: {cite.group(0)}: {name} spans lines {span[0]}-{span[1]} of {file}.py")
            for q in QUIRK.findall(line):
                if int(q) not in quirks:
                    problems.append(f"{where}: quirk Q{q} is not in docs/departures.md's quirk table")
    return problems


def test_every_citation_opens_in_the_repository() -> None:
    assert citation_problems() == []


def test_the_checker_catches_each_kind_of_bad_citation(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "departures.md").write_text("| Q1 | x | y |\n| Q16 | x | y |\n")
    pkg = tmp_path / "disco_spec" / "run"
    pkg.mkdir(parents=True)
    (pkg / "ok.py").write_text(
        '"""Fine: disco.py:1232 (cond_fn), disco.py:2445 (DoTheRun cell), quirk Q16, run/ok.py,\n'
        "disco_xform_utils.py:78-79 (transform_image_3d), docs/departures.md, DD's own disco.py, AdaBins'\n"
        'models/layers.py, k-diffusion\'s sampling.py, https://example.org/x/gone.md."""\n')
    (pkg / "bad.py").write_text(
        '"""As dd52-behaviour.md §7.3 says; see docs/gone.md and run/gone.py and ../shared/bench/x.py.\n'
        "DD: disco.py line 1232, disco.py:1232 cond_fn, disco.py:1500 (cond_fn), disco.py:10 (no_such), Q99.\"\"\"\n")
    found = citation_problems(tmp_path)
    assert not [p for p in found if p.startswith("disco_spec/run/ok.py")], found
    bad = [p.split(": ", 1)[1] for p in found if p.startswith("disco_spec/run/bad.py")]
    expected = [
        "cites design material outside the repository",
        "a § section of no document",
        "cites docs/gone.md",
        "cites run/gone.py",
        "cites ../shared/bench/x.py",
        "write DD line citations as `disco.py:LINE (name)`: disco.py line 1232",
        "write DD line citations as `disco.py:LINE (name)`: disco.py:1232 cond_fn",
        "disco.py:1500 (cond_fn): cond_fn spans lines 1232-1291",
        "disco.py:10 (no_such): no_such is no function, class or cell",
        "quirk Q99 is not in",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in bad), (want, bad)
    assert len(bad) == len(expected), bad
