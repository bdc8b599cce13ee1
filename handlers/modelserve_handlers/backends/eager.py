"""Eager PyTorch models: a class from ``modelFile`` plus a state dict, as TorchServe loads them."""

from __future__ import annotations

import importlib.util
import inspect
import pickle
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .artifacts import model_file, serialized_file, serialized_name
from .model import LoadedModel, ModelLoadError, import_framework
from .torch_module import torch_model

FRAMEWORK = "eager PyTorch"


def load(model_dir: Path, manifest: dict[str, Any], device: str) -> LoadedModel:
    """Instantiate the one ``nn.Module`` class of modelFile; load the state dict into it.

    Without a serializedFile the model keeps its initial parameters, as in TorchServe.
    """
    class_file = model_file(model_dir, manifest)
    if class_file is None:
        raise ModelLoadError(
            serialized_name(manifest) or "the model archive",
            FRAMEWORK,
            "the manifest has no modelFile (the model's class)",
        )
    weights = serialized_file(model_dir, manifest)
    torch = import_framework("torch", "torch", class_file, FRAMEWORK)
    model_class = _single_module_class(_import_file(model_dir, class_file), torch.nn.Module)
    try:
        model = model_class()
    except TypeError as exc:
        raise ModelLoadError(
            class_file, FRAMEWORK, f"{model_class.__name__}() needs arguments: {exc}"
        ) from exc
    if weights is not None:
        state_dict = _load_state_dict(torch, weights, device)
        try:
            model.load_state_dict(state_dict)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise ModelLoadError(
                weights, FRAMEWORK, f"not a state dict of {model_class.__name__}: {exc}"
            ) from exc
    model.to(device)
    model.eval()
    return torch_model("eager", model, device)


def _import_file(model_dir: Path, path: Path) -> ModuleType:
    if not path.is_file():
        raise ModelLoadError(path, FRAMEWORK, "the model file is not in the model archive")
    # The model file may import its neighbours, as it could under TorchServe.
    if str(model_dir) not in sys.path:
        sys.path.insert(0, str(model_dir))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(path, FRAMEWORK, "not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it, so that classes defined in it can find their module.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[spec.name]
        raise ModelLoadError(path, FRAMEWORK, f"importing it failed: {exc!r}") from exc
    return module


def _single_module_class(module: ModuleType, base: type) -> type:
    classes = [
        member
        for _, member in inspect.getmembers(module, inspect.isclass)
        if member.__module__ == module.__name__ and issubclass(member, base)
    ]
    if len(classes) != 1:
        names = ", ".join(cls.__name__ for cls in classes) or "none"
        raise ModelLoadError(
            Path(module.__file__ or module.__name__),
            FRAMEWORK,
            f"the model file must define exactly one torch.nn.Module class (found {names})",
        )
    return classes[0]


def _load_state_dict(torch: ModuleType, path: Path, device: str) -> Any:
    if not path.is_file():
        raise ModelLoadError(path, FRAMEWORK, "the file is not in the model archive")
    try:
        # weights_only: unpickling anything but tensors and plain containers could run code
        # that came with the archive.
        return torch.load(str(path), map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            path,
            FRAMEWORK,
            "refused to unpickle it: it holds objects other than tensors, and loading those "
            "could run arbitrary code (torch.load weights_only=True). Save only the weights: "
            f"torch.save(model.state_dict(), path). ({_unpickler_detail(str(exc))})",
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelLoadError(path, FRAMEWORK, f"not a PyTorch state dict: {exc}") from exc


def _unpickler_detail(message: str) -> str:
    # torch's message opens with how to load the file unsafely; only the cause is kept.
    for line in message.splitlines():
        _, found, detail = line.partition("WeightsUnpickler error: ")
        if found:
            return detail.split(". ")[0]
    return message.splitlines()[0] if message else "unsupported content"
