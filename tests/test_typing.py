"""datalayer's types reach the code that uses it: mypy passes ``examples/typed_usage.py`` (the public API,
with ``assert_type`` on every manager and row) and reports the mistakes a script makes with the API, which
it could not if the managers were typed ``Any``.

mypy runs with the repository's ``[tool.mypy]`` settings, on the script only (``--follow-imports=silent``:
datalayer itself is ``mypy -p datalayer``'s job). No database: each test runs once, not once per engine.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from datalayer import close_context, get_context
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "typed_usage.py"

MISTAKES = textwrap.dedent('''\
    from datalayer import Task, get_context


    async def main() -> None:
        ctx = await get_context()
        await ctx.users.authenticat("ada@example.com", "a long passphrase")
        await ctx.users.create_user(42, "a long passphrase")
        user = await ctx.users.get(1)
        print(user.emial)
        await ctx.tasks.start_task(1, assigned_to=None)
        page = await ctx.manager(Task).find_many()
        print(page.items[0].titel)
        async with ctx.transaction() as tx:
            await tx.api_keys.issue(1)
''')

#: (line of MISTAKES, how mypy's error there starts)
EXPECTED = [
    (6, '"UserManager" has no attribute "authenticat"'),
    (7, 'Argument 1 to "create_user" of "UserManager" has incompatible type "int"; expected "str"'),
    (9, '"User" has no attribute "emial"'),
    (10, 'Argument "assigned_to" to "start_task" of "TaskManager" has incompatible type "None"'),
    (12, '"Task" has no attribute "titel"'),
    (14, 'Missing positional argument "name" in call to "issue" of "ApiKeyManager"'),
]


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy_cache")


def run_mypy(script: Path, cache: Path) -> tuple[int, list[str]]:
    """mypy's exit status and error lines for ``script``, run from the repository root."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--follow-imports=silent", "--cache-dir", str(cache), "--no-color-output", "--no-error-summary",
         str(script)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert not result.stderr.strip(), result.stderr
    return result.returncode, [line for line in result.stdout.splitlines() if ": error:" in line]


def test_the_typed_usage_example_passes_mypy(mypy_cache):
    status, errors = run_mypy(EXAMPLE, mypy_cache)
    assert errors == [] and status == 0, "\n".join(errors)


def test_mypy_reports_each_mistake_made_with_the_public_api(tmp_path, mypy_cache):
    script = tmp_path / "mistakes.py"
    script.write_text(MISTAKES)
    status, errors = run_mypy(script, mypy_cache)
    found = [(int(match[1]), match[2])
             for line in errors if (match := re.match(r".*?:(\d+): error: (.*)$", line))]
    missing = [(line, text) for line, text in EXPECTED
               if not any(at == line and said.startswith(text) for at, said in found)]
    assert status == 1 and not missing, f"mypy did not report {missing}; it said:\n" + "\n".join(errors)
    assert len(errors) == len(EXPECTED), "\n".join(errors)


async def test_a_manager_typed_for_a_pack_that_is_not_loaded_still_raises(empty_database_url):
    """``ctx.tasks`` is declared for the checker; with only ``core`` loaded it is not there at run time."""
    await close_context()
    ctx = await get_context(settings=make_settings(empty_database_url), models=(), apps=["core"],
                            generate_schemas=True)
    try:
        with pytest.raises(AttributeError, match=r"no manager 'tasks'; known: api_keys, .*users"):
            ctx.tasks  # noqa: B018
        async with ctx.transaction() as tx:
            with pytest.raises(AttributeError, match="no manager 'ml_models'"):
                tx.ml_models  # noqa: B018
            assert type(tx.users).__name__ == "UserManager"
    finally:
        await close_context()
