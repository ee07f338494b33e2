"""The model matrix tier: tiny random models of every architecture, built once per session."""

from __future__ import annotations

import pytest

from tests.architectures import zoo


@pytest.fixture(scope="session")
def zoo_tokenizer():
    return zoo.make_tokenizer()


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def zoo_dir(zoo_root, zoo_tokenizer):
    """``zoo_dir(name)``: the model folder of ``name`` (written on first use)."""
    made = {}

    def get(name: str):
        if name not in made:
            made[name] = zoo.build(name, zoo_root / name, zoo_tokenizer)
        return made[name]

    return get


@pytest.fixture(scope="session")
def zoo_loaded(zoo_dir):
    """``zoo_loaded(name)``: the model folder loaded through ``models.load`` (once)."""
    from tokentui.engine import models

    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = models.load(str(zoo_dir(name)), device="cpu")
        return loaded[name]

    return get
