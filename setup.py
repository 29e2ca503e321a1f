"""Only what pyproject.toml cannot say: datalayer's migration and seed folders ship inside its namespace.

The repository keeps them at the top (``migrations/<pack>/``, ``seeds/<pack>/``); the wheel carries them as
``datalayer._migrations`` and ``datalayer._seeds`` (read with ``importlib.resources``), never as top-level
``migrations``/``seeds`` packages that would collide with an app's own.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["datalayer", "datalayer.*"]), "datalayer._migrations", "datalayer._seeds"],
    package_dir={"datalayer._migrations": "migrations", "datalayer._seeds": "seeds"},
    package_data={
        "datalayer": ["py.typed"],
        "datalayer._migrations": ["*/*.py"],
        "datalayer._seeds": ["*.json", "*/*.json", "*/*/*.json"],
    },
)
