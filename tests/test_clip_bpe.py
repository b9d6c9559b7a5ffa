"""The prompt-length check counts exactly as open_clip's tokenizer does, and validating imports no torch."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from disco_spec.spec.clip_bpe import token_counter

PROMPTS = [
    "A beautiful painting of a singular lighthouse, shining its light across a tumultuous sea of blood "
    "by greg rutkowski and thomas kinkade, Trending on artstation.",
    "yellow color scheme",
    "a cyberpunk city:2", "ugly:-1", "#pixelart", "watercolor painting of a fox, trending on artstation:3",
    "It's a man's world, they're here, we've gone, I'm sure, you'll see, he'd go",
    "IT'S LOUD", "Café déjà vu — naïve résumé", "東京の夜景、ネオン", "Москва ночью", "🔥🌊 fire & water 🌊🔥",
    "&amp;amp; &lt;tag&gt; &quot;quoted&quot;", "<b> &amp;amp;amp; escaped, with a tag", "  lots   of\tspaces\nand\nlines  ", "",
    "1999 2022 3.14159 10,000 ½ ² ٣ 一二三", "dots... !!! ??? --- ___ *** ~~~", "a<start_of_text>b <end_of_text>",
    "mojibake: cafÃ© donâ€™t", "ﬁne ligature Ｆｕｌｌｗｉｄｔｈ", "zero\u200bwidth and soft\u00adhyphen",
    "supercalifragilisticexpialidocious antidisestablishmentarianism", "a " * 76, "a " * 75,
]


def _random_prompts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = ("the", "a", "of", "painting", "by", "greg", "rutkowski", "trending", "artstation", "unreal",
             "engine", "4k", "8K", "hyperrealistic", "matte", "ÉCLAIR", "smörgåsbord", "über", "naïve",
             "don't", "it's", "(((", ")))", "[", "]", "{", "}", ":", ";", "!!", "?", "—", "…", "🙂", "日本",
             "deviantart", "volumetric", "lighting", "octane", "render", "1920x1080", "f/1.8", "&amp;")
    out = []
    for _ in range(n):
        k = rng.randint(1, 60)
        sep = rng.choice([" ", ", ", " | ", ""])
        out.append(sep.join(rng.choice(words) for _ in range(k)))
    return out


@pytest.fixture(scope="module")
def open_clip_count():
    from open_clip.tokenizer import SimpleTokenizer

    tok = SimpleTokenizer()
    return lambda text: len(tok.encode(text)) + 2


def test_counts_equal_open_clips_tokenizer(open_clip_count):
    count = token_counter()
    assert count is not None
    for text in PROMPTS + _random_prompts(400):
        assert count(text) == open_clip_count(text), text


def test_the_limit_falls_where_open_clip_puts_it():
    count = token_counter()
    assert count("a " * 75) == 77 and count("a " * 76) == 78


def test_validate_imports_no_torch(tmp_path):
    code = (
        "import sys\n"
        "from disco_spec.models.spec_check import spec_file_problems\n"
        "assert spec_file_problems('specs/smoke.toml') == []\n"
        "from disco_spec.spec.clip_bpe import token_counter\n"
        "assert token_counter() is not None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'open_clip', 'torchvision')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
