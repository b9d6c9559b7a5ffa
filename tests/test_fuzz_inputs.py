"""Seeded, bounded fuzzing of untrusted inputs: spec documents and PNG metadata (issue 14).

Every case must end in success or a SpecError (exit 2); any other exception is a bug (exit 3).
"""

from __future__ import annotations

import copy
import io
import json
import random
import struct
import zlib

import pytest
import tomli_w
from PIL import Image

from disco_spec.record import pngmeta
from disco_spec.errors import SpecError
from disco_spec.plan.resolve import resolve_plan, with_concrete_seed
from disco_spec.spec.load import read_document, validate_document

N_SPEC_CASES = 600
N_TEXT_CASES = 300
N_PNG_CASES = 600
MAX_PLANNED_ITEMS = 300  # keep the plan step fast

_STRINGS = ["", " ", "..", "../x", "/abs", "a\nb", "\x00", "\x1b[31m", "é夜", "0:(1)", "1:(", "9" * 50,
            "[1]*1000", "[12]*400+[4]*600", "((((", "ddim", "None", "2D", "3D", "60%", "-5%", "nan", "inf",
            "0: (1), 10: (1.05)", "a:b", "x:1e308", "http://h/x.png:2", "random_seed", "tiny-clip"]


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([0, 1, -1, 2, 63, 64, 77, 999, 1000, 10**6, 2**32, -(2**63), 10**30])
    if kind == 1:
        return rng.choice([0.0, -0.0, 0.5, 1e-3, 1e308, -1e308, float("inf"), float("nan"), 3.14])
    if kind == 2:
        return rng.choice([True, False])
    if kind == 3:
        return rng.choice(_STRINGS)
    if kind == 4:
        return "".join(rng.choice("09:(),.[]*+- a\n%e") for _ in range(rng.randrange(30)))
    if kind == 5:
        return None
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {rng.choice(["0", "5", "x", "-1", "1e3", "99999999", " 3"]): _random_value(rng, depth + 1)
                for _ in range(rng.randrange(4))}
    return {"path": rng.choice(_STRINGS), "sha256": rng.choice(["0" * 64, "xyz"]), "units": rng.randrange(-2, 1200)}


def _mutate(doc: dict, rng: random.Random) -> dict:
    doc = copy.deepcopy(doc)
    for _ in range(rng.randrange(1, 4)):
        section = rng.choice([k for k, v in doc.items() if isinstance(v, dict)] + ["(top)"])
        target = doc if section == "(top)" else doc[section]
        keys = list(target)
        op = rng.randrange(4)
        if op == 0 and keys:
            del target[rng.choice(keys)]
        elif op == 1:
            target[rng.choice(["bogus", "batch_nme", "a\nb", "steps"])] = _random_value(rng)
        elif keys:
            target[rng.choice(keys)] = _random_value(rng)
    return doc


def _check_spec(doc) -> None:
    try:
        spec = validate_document(doc)
    except SpecError:
        return
    spec, _ = with_concrete_seed(spec, draw=1)
    mode = spec.animation.animation_mode
    items = (spec.run.n_batches if mode == "None" else spec.animation.max_frames)
    if items > MAX_PLANNED_ITEMS:
        return
    try:
        resolve_plan(spec)
    except SpecError:
        pass


@pytest.mark.parametrize("chunk", range(3))
def test_fuzzed_spec_documents(smoke_doc, chunk):
    rng = random.Random(1400 + chunk)
    base = copy.deepcopy(smoke_doc)
    for _ in range(N_SPEC_CASES // 3):
        doc = _mutate(base, rng)
        if rng.random() < 0.3 and isinstance(doc.setdefault("animation", {}), dict):
            doc["animation"]["animation_mode"] = rng.choice(["2D", "3D", "Video Input"])
            doc["animation"]["max_frames"] = rng.randrange(1, 40)
        _check_spec(doc)


def test_fuzzed_spec_text(tmp_path, smoke_doc):
    rng = random.Random(14)
    toml_text = tomli_w.dumps(smoke_doc)
    json_text = json.dumps(smoke_doc)
    for i in range(N_TEXT_CASES):
        suffix, text = (".json", json_text) if i % 2 else (".toml", toml_text)
        chars = list(text)
        for _ in range(rng.randrange(1, 6)):
            pos = rng.randrange(len(chars))
            op = rng.randrange(3)
            if op == 0:
                del chars[pos]
            elif op == 1:
                chars.insert(pos, rng.choice('[]{}"=,:\n\\\x00é0123456789.-'))
            else:
                chars[pos] = rng.choice("[]{}\"'=#\n09")
        path = tmp_path / f"case{i}{suffix}"
        path.write_text("".join(chars), encoding="utf-8", errors="surrogatepass")
        try:
            doc = read_document(path)
        except SpecError:
            continue
        _check_spec(doc)


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def _valid_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buf, format="PNG")
    return pngmeta.with_text(buf.getvalue(), {"disco-spec:spec": json.dumps({"a": "b" * 600}), "k": "v"})


def test_fuzzed_png_metadata():
    rng = random.Random(1414)
    good = _valid_png()
    chunks = pngmeta.parse_chunks(good)
    for i in range(N_PNG_CASES):
        if i % 3 == 0:  # random bytes after the signature
            raw = pngmeta.PNG_SIGNATURE + bytes(rng.randrange(256) for _ in range(rng.randrange(80)))
        else:  # a well-formed file (CRCs right) whose text chunks are garbled
            out = []
            for ctype, data in chunks:
                if ctype in (b"iTXt", b"tEXt", b"zTXt") or (i % 3 == 2 and rng.random() < 0.2):
                    data = bytearray(data)
                    for _ in range(rng.randrange(1, 8)):
                        if data:
                            data[rng.randrange(len(data))] = rng.randrange(256)
                    if rng.random() < 0.3:
                        data = data[: rng.randrange(len(data) + 1)]
                    ctype = rng.choice([ctype, b"zTXt", b"iTXt", b"tEXt"])
                out.append(_chunk(ctype, bytes(data)))
            raw = pngmeta.PNG_SIGNATURE + b"".join(out)
        try:
            text = pngmeta.text_chunks(pngmeta.parse_chunks(raw))
        except SpecError:
            continue
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in text.items())
        try:
            pngmeta.with_text(raw, {"k": "new"})
        except SpecError:
            pass
