"""The real settings files of tests/data/dd_corpus that import, rendered as imported (no hand edits).

Only the model weights and the render's size are stood in for (tiny random-weight models of the same
architectures, 64x64, 8 steps with the file's skip fraction, one cut batch), so the test runs on a CPU;
every other setting (prompts, scales, cut schedules, eta, seed, ...) is the file's own.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from disco_spec.run.renderer import render
from disco_spec.spec.dd_import import import_dd_report
from disco_spec.spec.load import validate_document

pytestmark = pytest.mark.render

CORPUS = Path(__file__).parent / "data" / "dd_corpus"

# Each real diffusion model's tiny stand-in of the same architecture (models/registry.py TINY_PINS).
_TINY_DIFFUSION = {
    "512x512_diffusion_uncond_finetune_008100": "tiny-uncond",
    "256x256_diffusion_uncond": "tiny-uncond",
    "portrait_generator_v001": "tiny-portrait",
}
_CLIP_CHECKBOXES = ("ViTB32", "ViTB16", "ViTL14", "RN101", "RN50", "RN50x4", "RN50x16", "RN50x64")


def tiny_stand_ins(document: dict) -> dict:
    """An imported spec document with tiny models and a CPU-sized render; nothing else changed."""
    doc = copy.deepcopy(document)
    models = doc["models"]
    models["diffusion_model"] = _TINY_DIFFUSION.get(models["diffusion_model"], "tiny-kaliyuga")
    models["secondary_model"] = "tiny-secondary"
    models["lpips_model"] = "tiny-lpips"
    for name in _CLIP_CHECKBOXES:
        models[name] = False
    models.pop("extra_clip_models", None)  # discoart's open_clip models: stood in for too
    models["extra_clip_models"] = [{"name": "tiny-clip"}]
    doc.setdefault("camera_3d", {}).update(midas_depth_model="tiny-midas", adabins_model="tiny-adabins")
    steps = doc["diffusion"].get("steps", 250)
    skip = doc.get("init", {}).get("skip_steps", 10)
    doc["diffusion"].update(steps=8, width_height=[64, 64])
    doc.setdefault("init", {})["skip_steps"] = min(7, round(8 * skip / steps))
    doc.setdefault("cuts", {})["cutn_batches"] = 1
    doc["run"]["n_batches"] = 1
    return doc


# The DD reports (files DD wrote as {batch_name}({batchNum})_settings.txt, one hand-commented) and the
# other DD-family files that import.
DD_REPORTS_THAT_IMPORT = ["dd_alembics_TimeToDisco(0)_settings.txt", "dd_rossmurr4y_template.jsonc"]
FAMILY_FILES_THAT_IMPORT = ["tgg_TimeToDisco.yaml", "tgg_artstudy.yml", "prd_njbbaer_sample_settings_rtx_3090.json",
                            "discoart_default.yml"]


@pytest.mark.parametrize("name", DD_REPORTS_THAT_IMPORT + FAMILY_FILES_THAT_IMPORT)
def test_imported_corpus_file_renders(name: str, tmp_path: Path) -> None:
    imported = import_dd_report(CORPUS / name).document
    doc = tiny_stand_ins(imported)
    spec = validate_document(doc)
    # the file's own settings reach the render unchanged
    assert spec.prompts.text_prompts == validate_document(imported).prompts.text_prompts
    assert spec.cuts.cut_overview == imported["cuts"]["cut_overview"]
    result = render(spec, tmp_path, progress=False)
    assert [o.path for o in result.outputs] == [f"{spec.run.batch_name}_0000.png"]
    assert (result.run_dir / result.outputs[0].path).stat().st_size > 0
