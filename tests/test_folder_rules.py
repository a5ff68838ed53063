"""Per-folder rules: the pattern table (both case habits), reading the rules file and its mistakes, grouping a
real catalog's photos into runs, and the library's top-N keywords as a run's vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.catalog.runs import NewResult, get_run, record_result
from captioneer.desktop.library.folder_rules import (
    FolderRule,
    describe_groups,
    group_by_rule,
    matches,
    parse_rules,
    read_rules,
    relative_path,
    rule_for,
    rules_path,
    spec_for_rule,
)
from captioneer.desktop.library.keywords import Vocabulary
from captioneer.desktop.library.rule_runs import library_vocabulary, rule_runs
from captioneer.desktop.library.runs import RunSpec, plan_run
from captioneer.desktop.library.scanner import scan_library


@pytest.mark.parametrize(
    ("pattern", "relative", "case_sensitive", "expected"),
    [
        ("*/Products/*", "2024/Products/shoe.jpg", True, True),
        ("*/Products/*", "Products/shoe.jpg", True, True),  # a leading */ also matches nothing
        ("*/Products/*", "Shop/2024/Products/sub/shoe.jpg", True, True),  # * crosses folders
        ("*/Products/*", "2024/products/shoe.jpg", True, False),  # Linux: case counts
        ("*/Products/*", "2024/products/shoe.jpg", False, True),  # macOS, Windows: it does not
        ("*/Products/*", "2024/MyProducts/shoe.jpg", True, False),  # a whole folder name
        ("*/Products/*", "Products.jpg", True, False),
        ("Products/*", "Products/shoe.jpg", True, True),
        ("Products/*", "2024/Products/shoe.jpg", True, False),  # anchored at the library folder
        ("Products/", "Products/a/b.jpg", True, True),  # a trailing / takes the whole folder
        ("/Products/*", "Products/shoe.jpg", True, True),  # a leading / is the library folder
        ("*.png", "scans/page.png", True, True),
        ("*.png", "scans/page.PNG", True, False),
        ("*.png", "scans/page.PNG", False, True),
        ("2024/??/*", "2024/07/a.jpg", True, True),
        ("2024/??/*", "2024/7/a.jpg", True, False),
        ("Travel\\*", "Travel/a.jpg", True, True),  # a Windows-style pattern
        ("*/Products/*", "2024\\Products\\shoe.jpg", True, True),  # a Windows-style path
    ],
)
def test_patterns(pattern: str, relative: str, case_sensitive: bool, expected: bool) -> None:
    assert matches(pattern, relative, case_sensitive) is expected


def rules(*patterns: str) -> tuple[FolderRule, ...]:
    return tuple(FolderRule(name=f"r{index}", folder=pattern) for index, pattern in enumerate(patterns))


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("a/Products/x.jpg", "r0"),  # the first matching rule wins
        ("Products/Old/x.jpg", "r0"),
        ("Old/x.jpg", "r1"),
        ("x.jpg", None),
    ],
)
def test_first_matching_rule_wins(relative: str, expected: str | None) -> None:
    found = rule_for(relative, rules("*/Products/*", "*/Old/*", "Products/Old/*"), case_sensitive=True)
    assert (found.name if found else None) == expected


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("/lib/2024/Products/a.jpg", "/lib", "2024/Products/a.jpg"),
        ("/lib/a.jpg", "/lib/", "a.jpg"),
        ("/elsewhere/a.jpg", "/lib", "/elsewhere/a.jpg"),
    ],
)
def test_relative_path(path: str, root: str, expected: str) -> None:
    assert relative_path(path, root) == expected


def test_grouping_keeps_rule_order_then_the_rest() -> None:
    paths = ["x/Old/1.jpg", "a.jpg", "Products/2.jpg", "Products/3.jpg", "b.jpg"]
    groups = group_by_rule(paths, lambda path: path, rules("*/Products/*", "*/Old/*"), case_sensitive=True)
    assert [(rule.name if rule else None, items) for rule, items in groups] == [
        ("r0", ["Products/2.jpg", "Products/3.jpg"]),
        ("r1", ["x/Old/1.jpg"]),
        (None, ["a.jpg", "b.jpg"]),
    ]
    assert group_by_rule([], lambda path: path, rules("*")) == []


PRODUCTS = FolderRule("Products", "*/Products/*", task="product")


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ([(None, [1, 2])], ""),
        ([(PRODUCTS, [1] * 14)], "1 rule: Products → product (14 photos)"),
        (
            [(PRODUCTS, [1] * 14), (FolderRule("Travel", "t"), [1]), (None, [1] * 5)],
            "2 rules: Products → product (14 photos), Travel (1 photo); 5 photos by your choices",
        ),
    ],
)  # fmt: skip
def test_describe_groups(groups: list, expected: str) -> None:
    assert describe_groups(groups) == expected


RULES = """
# Product shots get the shop description and their own words.
[[rule]]
name = "Products"
folder = "*/Products/*"
task = "product"
vocabulary = "products.txt"

[[rule]]
folder = "*/Events/*"
require = ["Summer Party", "Client X"]
exclude = "beer"
min_keywords = 2
number = "singular"
split_and = true
vocabulary_top = 5
"""


def test_reading_a_rules_file_and_applying_a_rule(tmp_path: Path) -> None:
    (tmp_path / "products.txt").write_text("shoe\nbag = handbag, purse\n", encoding="utf-8")
    path = tmp_path / "rules.toml"
    path.write_text(RULES, encoding="utf-8")
    products, events = read_rules(path)
    assert (products.name, products.task, products.vocabulary.terms) == (
        "Products",
        "product",
        ("shoe", "bag"),
    )
    assert events.name == "*/Events/*" and events.task is None
    base = RunSpec(vocabulary=("old",), language="English", min_keywords=1)
    spec = spec_for_rule(base, products)
    assert (spec.task, spec.vocabulary, spec.synonyms, spec.rule) == (
        "product", ("shoe", "bag"), {"handbag": "bag", "purse": "bag"}, "Products"
    )  # fmt: skip
    spec = spec_for_rule(base, events)
    assert (spec.task, spec.required, spec.excluded, spec.min_keywords) == (
        "keywords", ("Summer Party", "Client X"), ("beer",), 2
    )  # fmt: skip
    assert (spec.number, spec.split_and, spec.vocabulary_top, spec.vocabulary) == ("singular", True, 5, ())


def test_no_rules_file_yet_means_no_rules() -> None:
    assert not rules_path().exists()
    assert read_rules(rules_path()) == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]\nfolder = 1", "is not valid TOML"),
        ("folder = '*'", "unknown setting 'folder'; write each rule as \\[\\[rule\\]\\]"),
        ("[[rule]]\ntask = 'product'", "rule 1 needs a folder pattern"),
        ("[[rule]]\nfolder = '*'\n[[rule]]\nfolder = '*'\ntask = 'poem'", "rule 2: Unknown task 'poem'"),
        ("[[rule]]\nfolder = '*'\ncolour = 'red'", "rule 1: unknown setting 'colour'"),
        ("[[rule]]\nfolder = '*'\nmin_keywords = '3'", "rule 1: min_keywords must be a whole number"),
        ("[[rule]]\nfolder = '*'\nmin_keywords = true", "rule 1: min_keywords must be a whole number"),
        ("[[rule]]\nfolder = '*'\nsplit_and = 1", "rule 1: split_and must be true or false"),
        ("[[rule]]\nfolder = '*'\nnumber = 'dual'", "rule 1: number must be one of keep, singular, plural"),
        ("[[rule]]\nfolder = '*'\nvocabulary_top = -3", "rule 1: vocabulary_top cannot be negative"),
        ("[[rule]]\nfolder = '*'\nvocabulary = 'missing.txt'", "Cannot read the vocabulary file"),
    ],
)
def test_rule_mistakes_are_one_line_with_the_rule_number(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_rules(text, "The folder rules file r.toml", tmp_path)


def engine() -> EngineConfig:
    return EngineConfig(engine="gguf", model="tiny.gguf")


def photo(path: Path, shade: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (shade, 90, 160)).save(path)


def test_a_catalogs_photos_split_into_one_run_per_rule(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    for index, name in enumerate(["2024/Products/a.jpg", "2024/Products/b.jpg", "2024/Trip/c.jpg", "d.jpg"]):
        photo(root / name, index * 40)
    product_rule = FolderRule("Products", "*/Products/*", task="product")
    with open_catalog() as catalog:
        scan_library(catalog, root)
        # The rules take paths from the library folder, also when a subfolder is what is tagged.
        photos = catalog.photos_under(root / "2024")
        runs = rule_runs(catalog, photos, RunSpec(), (product_rule,), case_sensitive=True)
        assert [(run.rule, run.spec.task, [Path(p.path).name for p in run.photos]) for run in runs] == [
            (product_rule, "product", ["a.jpg", "b.jpg"]),
            (None, "keywords", ["c.jpg"]),
        ]
        assert [run.scope("/lib/2024") for run in runs] == ["/lib/2024 · rule Products", "/lib/2024"]
        assert rule_runs(catalog, [], RunSpec(), (product_rule,)) == [
            type(runs[0])(None, RunSpec(), [])
        ]  # no photos: one (empty) run, as without rules
        greedy = FolderRule("Greedy", "*/Products/*", options={"min_keywords": 30})
        with pytest.raises(
            ConfigurationError, match="Folder rule Greedy: The minimum number of keywords \\(30\\)"
        ):
            rule_runs(catalog, photos, RunSpec(), (greedy,), case_sensitive=True)


def test_top_keywords_of_the_library_become_the_vocabulary(tmp_path: Path) -> None:
    """Counted over the current results' keywords and the keywords already in the photos' files, whatever
    their case; a rejected result does not count; junk is no vocabulary."""
    root = tmp_path / "lib"
    for index in range(4):
        photo(root / f"p{index}.jpg", index * 50)
    sidecar = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>'
        "{}</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    for index, words in enumerate([["Grandma", "Lisbon"], ["grandma"], ["GRANDMA", "2019"]]):
        items = "".join(f"<rdf:li>{word}</rdf:li>" for word in words)
        (root / f"p{index}.jpg.xmp").write_text(sidecar.format(items), encoding="utf-8")
    with open_catalog() as catalog:
        scan_library(catalog, root)
        photos = catalog.photos_under(root)
        plan = plan_run(catalog, str(root), photos, RunSpec(), engine())
        run = get_run(catalog, plan.run_id)
        answers = [["beach", "Lisbon"], ["Beach", "dog"], ["beach", "lisbon"], ["sunset", "sunset glow"]]
        for item, words in zip(photos, answers, strict=True):
            record_result(catalog, run, item.id, NewResult(caption="A photo.", keywords=words))
        [rejected] = [r for r in catalog.results(run_id=plan.run_id) if r.photo_id == photos[3].id]
        catalog.db.execute("UPDATE results SET review = 'rejected' WHERE id = ?", (rejected.id,))
        spec = library_vocabulary(catalog, RunSpec(vocabulary_top=3))
        # Lisbon 3 (2 results + 1 file), beach 3, Grandma 3 (files); dog 1; 2019 is junk; sunset rejected.
        assert sorted(spec.vocabulary) == ["Grandma", "Lisbon", "beach"]
        assert spec.vocabulary_top == 3 and spec.vocabulary_only
        # A resumed run's spec already holds its vocabulary: asked exactly as before.
        assert library_vocabulary(catalog, spec) is spec
        assert "sunset" not in library_vocabulary(catalog, RunSpec(vocabulary_top=50)).vocabulary


def test_a_library_without_keywords_has_no_top_vocabulary(tmp_path: Path) -> None:
    photo(tmp_path / "lib" / "a.jpg")
    with open_catalog() as catalog:
        scan_library(catalog, tmp_path / "lib")
        with pytest.raises(ConfigurationError, match="The library has no keywords yet"):
            library_vocabulary(catalog, RunSpec(vocabulary_top=10))
        assert library_vocabulary(catalog, RunSpec()) == RunSpec()


def test_vocabulary_from_a_rule_and_top_n_from_another_never_mix() -> None:
    spec = spec_for_rule(
        RunSpec(vocabulary=("a",), vocabulary_top=0), FolderRule("V", "*", vocabulary=Vocabulary(("b",)))
    )
    assert (spec.vocabulary, spec.vocabulary_top) == (("b",), 0)


def test_a_rules_vocabulary_brings_its_own_hierarchy_and_top_n_has_none() -> None:
    # The command line's hierarchical vocabulary must not place the rule's keywords, nor the library's top.
    base = RunSpec(vocabulary=("Paris",), keyword_paths={"Paris": "Places|France|Paris"})
    animals = Vocabulary(("Dog",), paths={"Dog": "Animals|Dog"})
    spec = spec_for_rule(base, FolderRule("Pets", "*", vocabulary=animals))
    assert (spec.vocabulary, spec.keyword_paths) == (("Dog",), {"Dog": "Animals|Dog"})
    top = spec_for_rule(base, FolderRule("Top", "*", options={"vocabulary_top": 10}))
    assert (top.vocabulary, top.keyword_paths) == ((), {})


@pytest.mark.parametrize(("task", "keeps_context"), [("ocr", False), ("product", True), (None, True)])
def test_a_rule_whose_task_takes_no_context_runs_without_the_command_lines(
    task: str | None, keeps_context: bool
) -> None:
    # `tag --prompt-context place` over a folder whose rule picks OCR: the OCR run must not stop on
    # "the task does not use context"; the other runs keep the context asked for.
    base = RunSpec(task="keywords", context=("place", "date"), context_event="Fair")
    spec = spec_for_rule(base, FolderRule("R", "*", task=task))
    sent = (spec.context, spec.context_event)
    assert sent == ((("place", "date"), "Fair") if keeps_context else ((), ""))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"language": "Deutsch"}, {"language": "Deutsch"}),
        ({"max_keywords": 7}, {"max_keywords": 7}),
        ({"min_keywords": 3}, {"min_keywords": 3}),
        ({"require": ("Client X",)}, {"required": ("Client X",)}),
        ({"exclude": ("beer",)}, {"excluded": ("beer",)}),
        ({"number": "plural"}, {"number": "plural"}),
        ({"split_and": True}, {"split_and": True}),
        ({"script_only": True}, {"script_only": True}),
        ({"drop_prompt_words": True}, {"drop_prompt_words": True}),
        ({"vocabulary_top": 40}, {"vocabulary_top": 40, "vocabulary": (), "synonyms": {}}),
        ({"vocabulary_loose": True}, {"vocabulary_only": False}),
        ({}, {}),
    ],
)
def test_each_rule_option_sets_its_spec_field(options: dict, expected: dict) -> None:
    base = RunSpec(vocabulary=("cmd",), synonyms={"x": "cmd"}, required=("From the command line",))
    spec = spec_for_rule(base, FolderRule("R", "*", options=options))
    changed = {name: getattr(spec, name) for name in vars(spec) if getattr(spec, name) != getattr(base, name)}
    assert changed == {**expected, "rule": "R"}
