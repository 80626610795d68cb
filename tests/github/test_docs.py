"""The documentation: the README's links resolve, the architecture page names only
files that exist, and the site builds strictly (no broken link, anchor or page) in
`make lint`, which is what the CI workflow's lint job runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.inprocess

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
BIN = Path(sys.executable).parent

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def prose(text: str) -> str:
    """The Markdown without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def github_slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_relative_link_of_the_readme_resolves() -> None:
    text = prose(README.read_text())
    anchors = {
        github_slug(line.lstrip("#"))
        for line in text.splitlines()
        if line.startswith("#")
    }
    links = LINK.findall(text)
    assert links, "the README links to its pages"
    broken = []
    for target in links:
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        exists = (REPO_ROOT / path).exists() if path else anchor in anchors
        if not exists:
            broken.append(target)
    assert not broken, f"README links to what does not exist: {broken}"


def test_the_readme_links_every_page_of_the_docs() -> None:
    linked = {Path(t.partition("#")[0]) for t in LINK.findall(README.read_text())}
    pages = {
        p.relative_to(REPO_ROOT) for p in DOCS.glob("*.md") if p.name != "index.md"
    }
    assert pages <= linked, f"pages the README does not link: {pages - linked}"


def test_the_docs_name_only_files_that_exist() -> None:
    top_level = {p.name for p in REPO_ROOT.iterdir() if not p.name.startswith(".")}
    missing = []
    for doc in (*sorted(DOCS.glob("*.md")), README):
        for span in CODE_SPAN.findall(prose(doc.read_text())):
            is_path = "/" in span and " " not in span and "*" not in span
            in_repo = is_path and span.split("/")[0] in top_level
            if in_repo and not (REPO_ROOT / span).exists():
                missing.append(f"{doc.name}: {span}")
    assert not missing, f"paths that do not exist: {missing}"


# A repository file named in a comment or docstring: `serving/rest.py`,
# `tests/localplatform/test_gateway_grpc.py`.
REPO_PATH = re.compile(r"(?<![\w./-])((?:[a-z_]+/)+[\w-]+\.(?:py|md|yaml|json|toml))\b")


def test_the_code_names_only_files_that_exist() -> None:
    """Comments, docstrings and templates cite files by their repository path; a
    move must take the citations along (issue 23 found five that did not)."""
    top_level = {p.name for p in REPO_ROOT.iterdir() if p.is_dir()}
    sources = [
        path
        for folder in sorted(top_level - {"site", "third_party", "node_modules"})
        if not folder.startswith(".")
        for path in (REPO_ROOT / folder).rglob("*")
        if path.suffix in (".py", ".yaml", ".tpl", ".md")
        and "grpc_v2" not in path.parts
        and "testdata" not in path.parts
    ]
    missing = []
    for source in sources:
        for cited in REPO_PATH.findall(source.read_text(errors="ignore")):
            parts = cited.split("/")
            if parts[0] not in top_level:
                continue  # not a repository path
            if parts[0] == "riskserve" and (REPO_ROOT / parts[1]).is_dir():
                continue  # riskserve/<room>/...: a path of the installed package

            if not (REPO_ROOT / cited).exists():
                missing.append(f"{source.relative_to(REPO_ROOT)}: {cited}")
    assert not missing, "files cited that do not exist:\n" + "\n".join(missing)


def test_the_nav_lists_every_page_and_only_pages_that_exist() -> None:
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    assert config["strict"] is True and config["docs_dir"] == "docs"

    def pages(nav: list) -> list[str]:
        found = []
        for entry in nav:
            for value in entry.values():
                found += pages(value) if isinstance(value, list) else [value]
        return found

    in_nav = pages(config["nav"])
    assert sorted(in_nav) == sorted(p.name for p in DOCS.glob("*.md"))
    assert config["validation"]["anchors"] == "warn"  # strict turns warnings to errors


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(BIN)},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "architecture" / "index.html").exists()
    assert (tmp_path / "app-screenshot.png").exists()


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(
        "# Home\n\n[gone](gone.md) and [no anchor](index.md#nowhere)\n"
    )
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    config["nav"] = [{"Home": "index.md"}]
    config["theme"] = {"name": "mkdocs"}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(BIN)},
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    assert "gone.md" in result.stderr and "#nowhere" in result.stderr


def make_recipe(target: str) -> list[str]:
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_lint_and_make_docs_build_the_site_strictly() -> None:
    for target in ("lint", "docs"):
        assert any("mkdocs build --strict" in line for line in make_recipe(target))
    workflow = yaml.safe_load(
        (REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text()
    )
    assert "make lint" in [s.get("run") for s in workflow["jobs"]["lint"]["steps"]]
    assert "site/" in (REPO_ROOT / ".gitignore").read_text().splitlines()
