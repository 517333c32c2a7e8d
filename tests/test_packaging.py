"""The batch image installs exactly what the README tells a user to run."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_block(tag: str) -> str:
    lines = (ROOT / "README.md").read_text().splitlines()
    i = lines.index(f"<!-- {tag} -->")
    start = lines.index("```", i) + 1
    end = lines.index("```", start)
    return "\n".join(lines[start:end]).strip()


def test_dockerfile_install_step_is_the_readme_setup_command():
    setup = _readme_block("setup")
    runs = [ln.removeprefix("RUN ").strip() for ln in
            (ROOT / "docker" / "Dockerfile").read_text().splitlines() if ln.startswith("RUN ")]
    assert setup in runs


def test_ci_runs_the_readme_blocks():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_command setup" in ci and "readme_command test" in ci
    assert _readme_block("test").startswith(".venv/bin/ruff check .")


def test_ci_runs_the_suite_where_no_shared_folder_exists():
    """A plain clone has no ``../shared``: CI runs there, and no test reads that folder."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'cd "$CLONE"' in ci and "../shared" in ci
    here = Path(__file__).name
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name != here:
            text = path.read_text()
            assert "../shared" not in text and '"shared"' not in text, path
