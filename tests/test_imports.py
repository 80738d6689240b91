"""What importing costs: `import jaxunsup` and `jaxunsup list` load no matplotlib, torch or
orbax (each run in a fresh interpreter, its `sys.modules` read back), and the package exposes
README's "Library use" imports on first access."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("matplotlib", "torch", "orbax")
README = Path(__file__).resolve().parents[1] / "README.md"

# Runs `code` and prints the top-level packages it loaded, as JSON on the last line.
PROBE = """
import json, sys
{code}
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


def _loaded(code: str) -> tuple[set[str], str]:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(code=code)], capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    *printed, last = proc.stdout.strip().splitlines()
    return set(json.loads(last)), "\n".join(printed)


def test_import_jaxunsup_loads_no_heavy_package():
    loaded, _ = _loaded("import jaxunsup")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "jax" not in loaded  # the modules load on first use


def test_jaxunsup_list_loads_no_heavy_package():
    # `python -m jaxunsup list`, in this interpreter so its modules can be read afterwards
    code = (
        "import runpy; sys.argv = ['jaxunsup', 'list']\n"
        "try:\n    runpy.run_module('jaxunsup', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exit:\n    assert exit.code == 0, exit.code"
    )
    loaded, printed = _loaded(code)
    assert "ae-stacked" in printed and "style-transfer" in printed  # it did list
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_readme_library_imports_are_the_packages_api():
    block = README.read_text().split("## Library use", 1)[1].split("```", 2)[1]
    names = {n.strip() for line in re.findall(r"from jaxunsup import (.+)", block)
             for n in line.split(",")}  # fmt: skip
    assert names, "README's Library use example imports nothing from jaxunsup"
    import jaxunsup

    assert names <= set(jaxunsup.__all__), names - set(jaxunsup.__all__)
    assert "enable_compilation_cache" in jaxunsup.__all__
    code = f"import jaxunsup; mods = [jaxunsup.{', jaxunsup.'.join(sorted(names))}]\n"
    loaded, printed = _loaded(code + "print(all(m.__name__.startswith('jaxunsup.') for m in mods))")
    assert printed == "True" and "jax" in loaded  # the attribute access imported the modules


@pytest.mark.parametrize("name", ["KMeans", "MiniBatchKMeans"])
def test_estimators_resolve_lazily(name):
    import jaxunsup
    from jaxunsup import kmeans, minibatch_kmeans

    want = {"KMeans": kmeans.KMeans, "MiniBatchKMeans": minibatch_kmeans.MiniBatchKMeans}[name]
    assert getattr(jaxunsup, name) is want
    with pytest.raises(AttributeError, match="no attribute 'not_a_module'"):
        jaxunsup.not_a_module  # noqa: B018
