"""The one YAML loader (``serein.yaml_loader``): libyaml's C parser where PyYAML has it, with
exactly ``yaml.safe_load``'s results and errors, used for contracts, recipes and settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serein.data.contract import Contract
from serein.errors import UsageError
from serein.yaml_loader import LOADER, load_yaml

DOCUMENTS = [
    "columns:\n  age: {type: integer, min: 0, max: 1.2e+2}\n  city: {type: string, allowed: [Lyon, 'no', ~]}\n",
    "a: yes\nb: 2026-11-30\nc: 2026-11-30T17:08:00Z\nd: 0x1F\ne: .inf\nf: !!str 12\ng: [1, 2.5, null]\n",
    "anchors: &x {k: 1}\nuse: *x\nmerged: {<<: *x, j: 2}\n",
    "", "just text", "- 1\n- -2\n",
]


def test_the_c_loader_is_used_when_pyyaml_has_libyaml() -> None:
    assert LOADER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


@pytest.mark.parametrize("text", DOCUMENTS)
def test_results_are_those_of_safe_load(text: str) -> None:
    assert load_yaml(text) == yaml.safe_load(text)


def test_unsafe_tags_and_malformed_yaml_raise_yaml_errors() -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']")
    with pytest.raises(yaml.YAMLError):
        load_yaml("a: [1, 2")


def test_a_malformed_contract_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    path.write_text("columns: {age: {type: integer\n")
    with pytest.raises(UsageError, match="is not valid YAML"):
        Contract.load(path)
