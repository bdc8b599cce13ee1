"""Handler strings resolve as TorchServe resolves them (module, module:function, one class)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from modelserve.worker.context import Context
from modelserve.worker.handler_loader import HandlerLoadError, load_entry_point, split_handler


@pytest.fixture()
def model_dir(tmp_path: Path):
    modules_before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - modules_before:  # each test writes its own modules
        del sys.modules[name]
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def _context(model_dir: Path) -> Context:
    return Context("m", str(model_dir), {"model": {}}, 1, None, "test")


def _write(model_dir: Path, name: str, source: str) -> None:
    (model_dir / f"{name}.py").write_text(textwrap.dedent(source))


def test_split_handler_forms() -> None:
    assert split_handler("handler.py") == ("handler", None)
    assert split_handler("some/dir/handler.py:predict") == ("handler", "predict")
    assert split_handler("image_classifier") == ("image_classifier", None)
    with pytest.raises(HandlerLoadError):
        split_handler(":fn")


def test_function_entry_point_is_initialised_with_none(model_dir: Path) -> None:
    _write(
        model_dir,
        "fn_handler",
        """
        calls = []
        def predict(data, context):
            calls.append(data)
            return None if data is None else [len(data)]
        """,
    )
    handle = load_entry_point("fn_handler.py:predict", str(model_dir), _context(model_dir))
    assert handle([{"body": 1}], None) == [1]
    assert sys.modules["fn_handler"].calls == [None, [{"body": 1}]]


def test_single_class_is_instantiated_and_initialised(model_dir: Path) -> None:
    _write(
        model_dir,
        "class_handler",
        """
        class Handler:
            def initialize(self, context):
                self.name = context.model_name
            def handle(self, data, context):
                return [self.name] * len(data)
        """,
    )
    handle = load_entry_point("class_handler", str(model_dir), _context(model_dir))
    assert handle([{}, {}], None) == ["m", "m"]


def test_named_class_is_accepted_when_the_module_has_several(model_dir: Path) -> None:
    _write(
        model_dir,
        "two_classes",
        """
        class Helper:
            pass
        class Chosen:
            def handle(self, data, context):
                return ["chosen"]
        """,
    )
    with pytest.raises(HandlerLoadError, match="exactly one class"):
        load_entry_point("two_classes", str(model_dir), _context(model_dir))
    handle = load_entry_point("two_classes:Chosen", str(model_dir), _context(model_dir))
    assert handle([{}], None) == ["chosen"]


def test_errors_name_what_is_missing(model_dir: Path) -> None:
    with pytest.raises(HandlerLoadError, match="neither in the model directory nor a built-in"):
        load_entry_point("absent_module", str(model_dir), _context(model_dir))
    _write(model_dir, "no_fn", "x = 1\n")
    with pytest.raises(HandlerLoadError, match="has no attribute 'predict'"):
        load_entry_point("no_fn:predict", str(model_dir), _context(model_dir))
    _write(model_dir, "bad_import", "import package_that_is_not_installed\n")
    with pytest.raises(ModuleNotFoundError, match="package_that_is_not_installed"):
        load_entry_point("bad_import", str(model_dir), _context(model_dir))


@pytest.mark.parametrize("handler", ["0.0.0+unknown", "missing_package.module", "json.nope"])
def test_a_dotted_name_that_is_nowhere_is_not_found(model_dir: Path, handler: str) -> None:
    """A missing package on the dotted path is the handler not existing, not a failing import
    inside the handler (found by the API fuzzing: it was a 500)."""
    with pytest.raises(HandlerLoadError, match="neither in the model directory nor a built-in"):
        load_entry_point(handler, str(model_dir), _context(model_dir))


@pytest.mark.parametrize("handler", [".", "..", ".relative", "...:fn"])
def test_a_relative_module_name_names_no_module(model_dir: Path, handler: str) -> None:
    """import_module would answer a TypeError (relative import without a package)."""
    with pytest.raises(HandlerLoadError, match="names no module"):
        load_entry_point(handler, str(model_dir), _context(model_dir))
