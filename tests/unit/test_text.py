"""The embedded text, on real messy Abt-Buy rows and on the HTML/entity cases catalogs send."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from simstream.core.errors import ConfigError, InputFileError
from simstream.core.text import (
    build_text,
    clean_text,
    compile_template,
    content_hash,
    fix_encoding,
    read_text_file,
    render_attributes,
)
from simstream.schemas.events import Product

DATA_DIR = Path(__file__).resolve().parents[2] / "simstream" / "data" / "abt-buy"
# Every field, the description included: the builder's cleaning of each is what is tested here.
TEMPLATE = "{title}. {brand}. {category}. {attributes}. {description}"


def csv_rows(name: str) -> dict[str, dict[str, str]]:
    text = read_text_file(DATA_DIR / name)
    return {row["id"]: row for row in csv.DictReader(io.StringIO(text))}


@pytest.fixture(scope="module")
def abt() -> dict[str, dict[str, str]]:
    return csv_rows("Abt.csv")


@pytest.fixture(scope="module")
def buy() -> dict[str, dict[str, str]]:
    return csv_rows("Buy.csv")


def abt_product(row: dict[str, str]) -> Product:
    return Product(title=row["name"], description=row["description"] or None)


def buy_product(row: dict[str, str]) -> Product:
    return Product(title=row["name"], description=row["description"] or None, brand=row["manufacturer"] or None)


# --- encodings, on the real files --------------------------------------------------------------


def test_abt_is_windows_1252_and_decodes_to_the_real_symbols() -> None:
    raw = (DATA_DIR / "Abt.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")

    text = fix_encoding(raw)

    assert "Remote Commander® Remote Control" in text  # 0xAE in Windows-1252
    assert "178° Wide Viewing Angle" in text  # 0xB0
    assert "DVD±R/RW" in text  # 0xB1


def test_buy_is_utf8(buy: dict[str, dict[str, str]]) -> None:
    assert len(buy) == 1092
    assert buy["10373002"]["description"] == "VAIO NEOPRENE NOTEBOOK & AC ADAPTER CASE UP TO 17 IN LCD"


def test_read_text_file_reads_all_abt_rows(abt: dict[str, dict[str, str]]) -> None:
    assert len(abt) == 1081
    assert abt["9071"]["name"] == "Sony 400 Disc MegaStorage CD Changer - CDPCX455"


def test_undecodable_bytes_fall_back_to_latin1() -> None:
    # 0x81 is unassigned in Windows-1252 and invalid UTF-8: only latin-1 takes it.
    assert fix_encoding(b"caf\xe9 \x81") == "café \x81"


def test_mojibake_of_a_real_row_is_repaired(abt: dict[str, dict[str, str]]) -> None:
    original = abt["9071"]["description"]
    garbled = original.encode("utf-8").decode("cp1252")
    assert "CommanderÂ®" in garbled

    assert fix_encoding(garbled) == original


@pytest.mark.parametrize(
    ("garbled", "repaired"),
    [
        ("CafÃ©", "Café"),
        ("donâ€™t", "don’t"),  # noqa: RUF001
        ("Â£5 â€“ Â½ price", "£5 – ½ price"),  # noqa: RUF001
        ("æ™ºèƒ½æ‰‹çŽ¯", "智能手环"),  # noqa: RUF001
        ("CafÃƒÂ©", "Café"),  # encoded wrongly twice
    ],
)
def test_common_mojibake_is_repaired(garbled: str, repaired: str) -> None:
    assert fix_encoding(garbled) == repaired


@pytest.mark.parametrize(
    "genuine",
    ["naïve café", "Größe 42", "智能手环", "Ç'est ça", "1° ± 2", "DVD±R", "Remote Commander®", "Â"],
)
def test_genuine_text_is_left_alone(genuine: str) -> None:
    assert fix_encoding(genuine) == genuine


def test_mojibake_next_to_genuine_accents_is_repaired_alone() -> None:
    assert fix_encoding("naïve CafÃ©") == "naïve Café"


# --- build_text on real rows -------------------------------------------------------------------


def test_abt_row_with_registered_sign(abt: dict[str, dict[str, str]]) -> None:
    text = build_text(abt_product(abt["9071"]), TEMPLATE)

    assert text.startswith("Sony 400 Disc MegaStorage CD Changer - CDPCX455. Sony 400 Disc MegaStorage")
    assert text.endswith("Keyboard Input/ Remote Commander® Remote Control")


def test_abt_soft_hyphen_is_dropped(abt: dict[str, dict[str, str]]) -> None:
    assert "\u00ad" in abt["33220"]["description"]

    text = build_text(abt_product(abt["33220"]), TEMPLATE)

    assert "HDMI Output And Bluetooth Ready/ Brilliant Color" in text
    assert "\u00ad" not in text


def test_abt_double_spaces_in_names_are_normalised(abt: dict[str, dict[str, str]]) -> None:
    assert abt["19141"]["name"] == "Sanus Universal Projector Ceiling Mount -  Black Finish - VMPR1B"

    text = build_text(Product(title=abt["19141"]["name"]), TEMPLATE)

    assert text == "Sanus Universal Projector Ceiling Mount - Black Finish - VMPR1B"


def test_buy_row_without_description_or_manufacturer(buy: dict[str, dict[str, str]]) -> None:
    row = buy["200924629"]
    assert row["description"] == row["manufacturer"] == ""

    assert build_text(buy_product(row), TEMPLATE) == "Linksys WRV54G Wireless-G VPN Broadband Router"


def test_buy_row_with_manufacturer_but_no_description(buy: dict[str, dict[str, str]]) -> None:
    text = build_text(buy_product(buy["203162678"]), TEMPLATE)

    assert text == "Cuisinart Brew & Serve Stainless Therm Black 10-Cup Coffee Maker. Cuisinart"


def test_buy_row_with_every_field(buy: dict[str, dict[str, str]]) -> None:
    text = build_text(buy_product(buy["10373002"]), TEMPLATE)

    assert text == (
        "Sony VAIO Notebook and AC Adapter Case - VGPAMC2. Sony. "
        "VAIO NEOPRENE NOTEBOOK & AC ADAPTER CASE UP TO 17 IN LCD"
    )


def test_no_row_of_the_catalog_leaves_separator_debris(
    abt: dict[str, dict[str, str]], buy: dict[str, dict[str, str]]
) -> None:
    texts = [build_text(abt_product(row), TEMPLATE) for row in abt.values()]
    texts += [build_text(buy_product(row), TEMPLATE) for row in buy.values()]

    assert len(texts) == 2173
    for text in texts:
        assert text == text.strip()
        assert ". ." not in text
        assert ".." not in text.replace("...", "")
        assert "  " not in text


# --- HTML, entities, whitespace ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("<p>Great&nbsp;sound<br/>Black finish</p>", "Great sound Black finish"),
        ("12&quot; subwoofer", '12" subwoofer'),
        ("12&amp;quot; subwoofer", '12" subwoofer'),  # escaped twice
        ("Remote Commander&#174;", "Remote Commander®"),
        ("&lt;b&gt;Bold&lt;/b&gt; claim", "Bold claim"),  # escaped markup is still markup
        ("<ul><li>USB</li><li>HDMI</li></ul>", "USB HDMI"),
        ('<a href="x">link</a><script>track("x>1")</script><style>p{}</style>', "link"),
        ("before<!-- hidden -->after", "before after"),
        ("5 < 6 and 7 > 3", "5 < 6 and 7 > 3"),  # prose with angle brackets is not a tag
        ("  tabs\tand\r\nnewlines  ", "tabs and newlines"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("Cafe\u0301", "Café"),  # NFC
        ("ctrl\x00chars\x07", "ctrl chars"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_attributes_are_sorted_and_rendered() -> None:
    rendered = render_attributes({"size": 42.0, "color": "<b>black</b>", "hdmi": True, "weight": 1.5, "3d": False})

    assert rendered == "3d: no, color: black, hdmi: yes, size: 42, weight: 1.5"


def test_attributes_with_empty_values_are_left_out() -> None:
    assert render_attributes({"color": " ", "size": "M"}) == "size: M"


def test_all_fields_in_template_order() -> None:
    product = Product(
        title="Acme Speaker",
        brand="Acme Inc.",
        category="Audio &amp; Video",
        attributes={"color": "black"},
        description="<p>Loud.</p>",
    )

    # "Acme Inc." does not get a second period; the description's own period is content and stays.
    assert build_text(product, TEMPLATE) == "Acme Speaker. Acme Inc. Audio & Video. color: black. Loud."


def test_whitespace_only_fields_and_their_separators_are_dropped() -> None:
    product = Product(title="Bare", brand="   ", category="<br/>", description="&nbsp;")

    assert build_text(product, TEMPLATE) == "Bare"


def test_custom_template_with_prefix_suffix_and_tags() -> None:
    template = "Product: {title} | {brand} | {tags}!"

    assert build_text(Product(title="Mug", tags=["kitchen", " ", "gift"]), template) == "Product: Mug | kitchen, gift!"


def test_template_field_order_is_respected() -> None:
    product = Product(title="Mug", brand="Acme")

    assert build_text(product, "{brand}: {title}") == "Acme: Mug"


@pytest.mark.parametrize("template", ["{title} {price}", "{title!r}", "{title:>10}", "no fields", "{title", "{}"])
def test_bad_templates_fail_fast(template: str) -> None:
    with pytest.raises(ConfigError):
        compile_template(template)


# --- hashing and files -------------------------------------------------------------------------


def test_content_hash_is_sha256_of_model_and_text() -> None:
    import hashlib

    expected = hashlib.sha256(b"all-MiniLM-L6-v2@abc\x00Mug").hexdigest()

    assert content_hash("Mug", "all-MiniLM-L6-v2@abc") == expected
    assert content_hash("Mug", "other-model") != expected
    # The separator keeps (model, text) pairs apart that plain concatenation would merge.
    assert content_hash("bc", "a") != content_hash("c", "ab")


def test_read_text_file_wraps_os_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"missing\.csv") as caught:
        read_text_file(tmp_path / "missing.csv")

    assert isinstance(caught.value.__cause__, FileNotFoundError)
