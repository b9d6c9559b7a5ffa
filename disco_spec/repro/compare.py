"""`disco-spec diff A B`: what differs between two specs, manifests, run folders or PNGs.

Differences are reported at the level where they are readable:

* spec    — values that are not per frame, by field path (`guidance.clip_guidance_scale: 5000 → 6000`);
* plan    — per-frame values (motion, prompts, seeds, init, skips) of the resolved plans, with runs of
            consecutive frames that changed the same way collapsed into ranges
            (`frames 10–80: zoom 1.05 → 1.1`); per-frame spec fields appear at spec level only when
            the plan does not use them (e.g. zoom in a still);
* models, code, packages, environment — from manifests (or a PNG's provenance chunk);
* outputs — identical (same pixel hash), or PSNR and largest absolute difference, with a difference
            image written to `diff_dir` when asked.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from ..record.environment import differences
from .divergence import Divergence, divergence
from .outputs import OutputComparison, output_differences
from .sources import Source, load_source

PER_FRAME_SPEC_FIELDS: dict[str, str] = {
    **{f"animation.{m}": m for m in (
        "angle", "zoom", "translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y",
        "rotation_3d_z",
    )},
    "prompts.text_prompts": "text_prompts",
    "prompts.image_prompts": "image_prompts",
}
# Plan item values compared per frame (index, frame, rng streams, start_index and output name derive
# from these or from spec values reported at spec level).
ITEM_FIELDS = ("seed", "text_prompts", "image_prompts", "init", "init_scale", "skip_steps", "intermediate_steps",
               "diffuse", "turbo_blend")
ITEMS_FIELD = "(items)"  # PlanChange.field of items that only one plan has


@dataclass
class Change:
    path: str
    a: Any
    b: Any

    def text(self) -> str:
        return f"{self.path}: {fmt(self.a)} → {fmt(self.b)}"


@dataclass
class PlanChange:
    field: str
    noun: str  # "frame" | "image" | "item"
    first: int
    last: int
    a: Any  # the value before (first, last when `varying`)
    b: Any
    varying: bool = False  # the change is not the same on every frame of the range

    @property
    def where(self) -> str:
        if self.first == self.last:
            return f"{self.noun} {self.first}"
        return f"{self.noun}s {self.first}–{self.last}"

    def text(self) -> str:
        if self.varying:
            (a0, a1), (b0, b1) = self.a, self.b
            return f"{self.where}: {self.field} {fmt(a0)}…{fmt(a1)} → {fmt(b0)}…{fmt(b1)} (differs per frame)"
        if self.field == ITEMS_FIELD:
            return f"{self.where}: only in {'B' if self.a is ABSENT else 'A'}"
        return f"{self.where}: {self.field} {fmt(self.a)} → {fmt(self.b)}"

    def to_dict(self) -> dict[str, Any]:
        d = {"field": self.field, "noun": self.noun, "first": self.first, "last": self.last, "varying": self.varying,
             "a": None if self.a is ABSENT else self.a, "b": None if self.b is ABSENT else self.b,
             "text": self.text()}
        return d


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()  # a value one side does not have (the compare page shows it as absent)


def fmt(v: Any, limit: int = 70) -> str:
    if v is ABSENT:
        return "(absent)"
    if isinstance(v, float):
        text = repr(v)
    elif isinstance(v, str):
        text = json.dumps(v, ensure_ascii=False)
    else:
        text = json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Spec and plan
# ---------------------------------------------------------------------------------------------


def _per_frame_field(path: str) -> str | None:
    for prefix, name in PER_FRAME_SPEC_FIELDS.items():
        if path == prefix or path.startswith(prefix + "."):
            return name
    return None


def spec_differences(a: Mapping[str, Any], b: Mapping[str, Any], *, covered: set[str] = frozenset()) -> list[Change]:
    """Changed spec values by dotted path; per-frame fields whose plan name is in `covered` are left out."""
    out = []
    for path, va, vb in differences(dict(a), dict(b)):
        name = _per_frame_field(path)
        if name is not None and name in covered:
            continue
        out.append(Change(path, va, vb))
    return out


def _item_values(item: Mapping[str, Any]) -> dict[str, Any]:
    vals: dict[str, Any] = {}
    for k in ITEM_FIELDS:
        v = item.get(k)
        if k in ("text_prompts", "image_prompts"):
            v = [t["source"] for t in v or []]
        vals[k] = v
    for k, v in (item.get("motion") or {}).items():
        vals[k] = v
    return vals


def _noun(plan_a: Any, plan_b: Any) -> str:
    if plan_a.animation_mode != plan_b.animation_mode:
        return "item"
    return "image" if plan_a.animation_mode == "None" else "frame"


def plan_differences(plan_a: Any, plan_b: Any) -> list[PlanChange]:
    """Per-frame differences between two plans, runs of identical changes collapsed into ranges."""
    noun = _noun(plan_a, plan_b)
    items_a = [asdict(i) for i in plan_a.items]
    items_b = [asdict(i) for i in plan_b.items]
    n = max(len(items_a), len(items_b))
    vals_a = [_item_values(i) for i in items_a]
    vals_b = [_item_values(i) for i in items_b]
    fields: list[str] = []
    for v in vals_a + vals_b:
        for k in v:
            if k not in fields:
                fields.append(k)
    common = min(len(vals_a), len(vals_b))
    changes: list[PlanChange] = []
    for f in fields:
        # (index, a, b) for every item both plans have where the field differs
        diffs = [(i, vals_a[i].get(f), vals_b[i].get(f)) for i in range(common) if vals_a[i].get(f) != vals_b[i].get(f)]
        changes.extend(_collapse(f, noun, diffs))
    if n > common:  # items only one plan has: one line, not one per field
        only_a = len(vals_a) > common
        changes.append(PlanChange(ITEMS_FIELD, noun, common, n - 1, None if only_a else ABSENT,
                                  ABSENT if only_a else None))
    order = fields + [ITEMS_FIELD]
    changes.sort(key=lambda c: (c.first, order.index(c.field)))
    return changes


def _collapse(f: str, noun: str, diffs: list[tuple[int, Any, Any]]) -> list[PlanChange]:
    """Consecutive items with the same change → one range; consecutive single-frame changes that
    differ from frame to frame (an interpolated ramp) → one 'varying' range."""
    out: list[PlanChange] = []
    # 1. runs of the same change
    runs: list[list[tuple[int, Any, Any]]] = []
    for d in diffs:
        if runs and runs[-1][-1][0] == d[0] - 1 and (runs[-1][-1][1], runs[-1][-1][2]) == (d[1], d[2]):
            runs[-1].append(d)
        else:
            runs.append([d])
    # 2. merge adjacent single-item runs into varying ranges
    pending: list[list[tuple[int, Any, Any]]] = []

    def flush() -> None:
        if not pending:
            return
        if len(pending) == 1:
            i, a, b = pending[0][0]
            out.append(PlanChange(f, noun, i, i, a, b))
        else:
            first, last = pending[0][0], pending[-1][0]
            out.append(PlanChange(f, noun, first[0], last[0], (first[1], last[1]), (first[2], last[2]), varying=True))
        pending.clear()

    for run in runs:
        single = len(run) == 1
        if single and pending and pending[-1][0][0] == run[0][0] - 1:
            pending.append(run)
            continue
        flush()
        if single:
            pending.append(run)
        else:
            out.append(PlanChange(f, noun, run[0][0], run[-1][0], run[0][1], run[0][2]))
    flush()
    return out


# ---------------------------------------------------------------------------------------------
# Models, code, packages, environment
# ---------------------------------------------------------------------------------------------


def model_differences(models_a: Sequence[Mapping[str, Any]], models_b: Sequence[Mapping[str, Any]]) -> list[Change]:
    """Models paired by role (in order within a role); a change names role, name and hashes."""

    def by_role(models: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        counts: dict[str, int] = {}
        for m in models:
            role = str(m.get("role"))
            i = counts.get(role, 0)
            counts[role] = i + 1
            key = role if i == 0 else f"{role}[{i}]"
            out[key] = {"name": m.get("name"), "sha256": m.get("sha256"), "size": m.get("size")}
        return out

    ra, rb = by_role(models_a), by_role(models_b)
    out = []
    for key in list(ra) + [k for k in rb if k not in ra]:
        a, b = ra.get(key), rb.get(key)
        if a != b:
            out.append(Change(f"models.{key}", a, b))
    return out


def context_differences(ha: Mapping[str, Any] | None, hb: Mapping[str, Any] | None) -> dict[str, list[Change]]:
    """Code, package and environment differences between two hashed manifest parts."""
    out: dict[str, list[Change]] = {"code": [], "packages": [], "environment": []}
    if not ha or not hb:
        return out
    for section in out:
        if section in ha and section in hb:
            out[section] = [Change(p, a, b) for p, a, b in differences(ha[section], hb[section], prefix=section)]
    return out


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass
class DiffReport:
    a: str
    b: str
    spec: list[Change] = field(default_factory=list)
    plan: list[PlanChange] = field(default_factory=list)
    models: list[Change] = field(default_factory=list)
    code: list[Change] = field(default_factory=list)
    packages: list[Change] = field(default_factory=list)
    environment: list[Change] = field(default_factory=list)
    outputs: list[OutputComparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    divergence: list[Divergence] = field(default_factory=list)  # per item: the first step the renders part

    @property
    def n_differences(self) -> int:
        return (len(self.spec) + len(self.plan) + len(self.models) + len(self.code) + len(self.packages)
                + len(self.environment) + sum(o.status != "identical" for o in self.outputs))

    @property
    def same(self) -> bool:
        return self.n_differences == 0

    def parameters(self) -> set[str]:
        """Names of the changed parameters: spec paths and plan field names."""
        return {c.path for c in self.spec} | {c.field for c in self.plan if c.field != ITEMS_FIELD}

    def to_dict(self) -> dict[str, Any]:
        def ch(cs: list[Change]) -> list[dict[str, Any]]:
            return [{"path": c.path, "a": c.a, "b": c.b} for c in cs]

        def out(o: OutputComparison) -> dict[str, Any]:
            d = asdict(o)
            if d["psnr"] is not None and math.isinf(d["psnr"]):
                d["psnr"] = None
            return d

        return {
            "same": self.same, "differences": self.n_differences, "a": self.a, "b": self.b,
            "spec": ch(self.spec), "plan": [p.to_dict() for p in self.plan], "models": ch(self.models),
            "code": ch(self.code), "packages": ch(self.packages), "environment": ch(self.environment),
            "outputs": [out(o) for o in self.outputs], "notes": list(self.notes),
            "divergence": [d.to_dict() for d in self.divergence],
        }

    def to_text(self) -> str:
        lines = [f"A: {self.a}", f"B: {self.b}"]
        sections: list[tuple[str, list[str]]] = [
            ("spec", [c.text() for c in self.spec]),
            ("plan (per frame)", [c.text() for c in self.plan]),
            ("models", [_model_text(c) for c in self.models]),
            ("code", [c.text() for c in self.code]),
            ("packages", [c.text() for c in self.packages]),
            ("environment", [c.text() for c in self.environment]),
            ("outputs", [o.text() for o in self.outputs]),
            ("where the renders part (step checksums)",
             [d.text() for d in self.divergence] if any(d.first_difference is not None for d in self.divergence)
             else []),
        ]
        for title, rows in sections:
            if rows:
                lines.append(f"{title}:")
                lines.extend(f"  {r}" for r in rows)
        for n in self.notes:
            lines.append(f"note: {n}")
        if self.same:
            lines.append("same" + (f" ({len(self.outputs)} output(s) identical)" if self.outputs else ""))
        else:
            lines.append(f"differ: {self.n_differences} difference(s)")
        return "\n".join(lines)


def _model_text(c: Change) -> str:
    def one(m: Any) -> str:
        if not m:
            return "(none)"
        return f"{m.get('name')} (sha256 {str(m.get('sha256'))[:16]}…, {m.get('size')} bytes)"

    return f"{c.path}: {one(c.a)} → {one(c.b)}"


def diff_sources(sa: Source, sb: Source, *, diff_dir: str | os.PathLike | None = None) -> DiffReport:
    report = DiffReport(a=sa.label, b=sb.label)
    plan_a = plan_b = None
    try:
        plan_a, plan_b = sa.plan(), sb.plan()
    except Exception as exc:  # noqa: BLE001 - a spec this build cannot plan: compare the rest
        report.notes.append(f"plans not compared: {exc}")
    if plan_a is not None and plan_b is not None:
        report.plan = plan_differences(plan_a, plan_b)
    covered = {c.field for c in report.plan}
    report.spec = spec_differences(sa.spec_document, sb.spec_document, covered=covered)
    ha, hb = sa.hashed, sb.hashed
    if ha and hb:
        report.models = model_differences(ha.get("models") or [], hb.get("models") or [])
        ctx = context_differences(ha, hb)
        report.code, report.packages, report.environment = ctx["code"], ctx["packages"], ctx["environment"]
    elif sa.kind != "spec" or sb.kind != "spec":
        report.notes.append("models and environment not compared (a spec, or a PNG without provenance, has none)")
    if sa.kind != "spec" and sb.kind != "spec":
        report.outputs = output_differences(sa, sb, diff_dir)
    if sa.run_dir is not None and sb.run_dir is not None:
        report.divergence = divergence(sa.run_dir, sb.run_dir)
    return report


def diff(a: str | os.PathLike, b: str | os.PathLike, *, diff_dir: str | os.PathLike | None = None) -> DiffReport:
    """Compare two specs, manifests, run folders or PNGs (any mix)."""
    return diff_sources(load_source(a, arg="A"), load_source(b, arg="B"), diff_dir=diff_dir)
