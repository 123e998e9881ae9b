"""How far the whole configuration travels: a function of catvec takes a PretrainConfig or a
FinetuneConfig only where it needs all of it. Every other function takes the groups it reads
(catvec.pretraining.config, catvec.finetuning.config; docs/architecture.md "Parameter
groups"). The source is read with `ast`, nothing is imported.

A parameter counts as the whole configuration when it is annotated PretrainConfig or
FinetuneConfig or is named `cfg` (a group is named for what it holds: `rules`, `gate`, ...);
the methods of the classes of the config modules (the configs, their groups, `.of(cfg)`)
are left out.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {"PretrainConfig", "FinetuneConfig"}

# function -> why it takes the whole configuration
WHOLE = {
    "catvec/pretraining/pipeline.py:pretrain": "the composition: cuts the groups each step takes",
    "catvec/finetuning/pipeline.py:finetune": "the composition: cuts the groups each step takes",
    "catvec/finetuning/pipeline.py:check_fit": "a scheduled run's first check, a composition of its own",
    "catvec/pretraining/tune.py:tune": "the `catvec tune` search: a composition, it writes a whole config",
    "catvec/pretraining/tune.py:write_config_toml": "writes every field to TOML",
    "catvec/pretraining/version_dir.py:build_manifest": "records every field in the manifest",
    "catvec/base/config.py:_check_types": "the machinery: checks every field of any config",
    "catvec/base/config.py:apply_settings": "the machinery: settings read back, checked against the whole config",
    "flows/adapter.py:run_pipeline": "runs a composition with its steps as tasks",
}


def whole_config_functions(package: Path) -> dict[str, list[str]]:
    """{"path:function": [parameter, ...]} of the functions outside the config classes that
    take a whole configuration."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        config_classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                          and (node.name in CONFIGS or path.name == "config.py")]
        inside = {id(f) for c in config_classes for f in ast.walk(c)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or id(node) in inside:
                continue
            params = [a for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                      if a.arg == "cfg" or _names_config(a.annotation)]
            if params:
                found[f"{path.relative_to(package.parent).as_posix()}:{node.name}"] = [a.arg for a in params]
    return found


def _names_config(annotation) -> bool:
    if annotation is None:
        return False
    text = ast.unparse(annotation).strip("\"'")
    return any(part.strip() in CONFIGS for part in text.replace("|", ",").split(","))


def test_only_the_compositions_and_the_machinery_take_the_whole_config():
    found = {**whole_config_functions(REPO / "catvec"), **whole_config_functions(REPO / "flows")}
    extra = sorted(set(found) - set(WHOLE))
    assert not extra, ("these take a whole config; give them the groups they read instead "
                       f"(or add them to WHOLE with the reason): {extra}")
    gone = sorted(set(WHOLE) - set(found))
    assert not gone, f"no longer take the whole config: remove them from WHOLE: {gone}"


@pytest.mark.parametrize("source, expected", [
    ("def f(cfg): pass", {"m.py:f": ["cfg"]}),
    ("def f(options: 'PretrainConfig'): pass", {"m.py:f": ["options"]}),
    ("def f(x, *, c: FinetuneConfig | None = None): pass", {"m.py:f": ["c"]}),
    ("def f(rules: SequenceRules, cfgs: list): pass", {}),
    ("class PretrainConfig:\n    def validate(self, cfg): pass", {}),
    ("class EventOptions:\n    def of(cls, cfg): pass", {"m.py:of": ["cfg"]}),
])
def test_the_finder_reads_names_annotations_and_skips_the_config_classes(tmp_path, source, expected):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "m.py").write_text(source, encoding="utf-8")
    assert {k.removeprefix("pkg/"): v for k, v in whole_config_functions(package).items()} == expected


def test_the_classes_of_a_config_module_are_its_machinery(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "config.py").write_text("class Setup:\n    def of(cls, cfg): pass\ndef load(cfg): pass\n",
                                       encoding="utf-8")
    assert whole_config_functions(package) == {"pkg/config.py:load": ["cfg"]}
