"""CrypTen 0.4.1 on torch 2.13: the compatibility layer, applied before CrypTen is imported.

CrypTen's last release (0.4.1, December 2022) predates three changes that break it here
(measured and described in ``/work/shared/DEPENDENCIES.md``).  :func:`import_crypten` applies
the three fixes, idempotently, and every party process calls it before touching CrypTen:

1. ``crypten.nn.onnx_converter`` imports ``torch.onnx._internal.registration``, which torch
   moved to ``torch.onnx._internal.torchscript_exporter.registration``.  We alias the old
   module name in ``sys.modules`` (only when the old name is missing).
2. ``crypten.nn.from_pytorch`` exports through ``torch.onnx.export``, whose default became the
   dynamo exporter (it needs ``onnxscript`` and emits a graph CrypTen cannot read).  We
   replace only CrypTen's private ``_export_pytorch_model`` helper with a copy that passes
   ``dynamo=False``; nothing else in torch is changed.
3. ``FixedPointEncoder.decode`` is wrong for some negative values (a CrypTen bug, not a torch
   one); we replace it with an exact decode.  See :func:`fixed_point_decode`.

Nothing here runs at import time of this module: the fixes are applied by the first call to
:func:`import_crypten`.
"""

from __future__ import annotations

import importlib
import sys
import threading
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

from secured_bio.errors import DependencyError

__all__ = ["import_crypten", "fixed_point_decode", "original_fixed_point_decode"]

_LOCK = threading.Lock()
# Originals of everything we replace (for tests and for idempotence); filled by import_crypten.
_STATE: dict[str, Any] = {}

_OLD_REGISTRATION = "torch.onnx._internal.registration"
_NEW_REGISTRATION = "torch.onnx._internal.torchscript_exporter.registration"

# Warnings CrypTen's own code provokes on every from_pytorch call.  They are filtered here, at
# the source and only around CrypTen's calls, because the test suite turns warnings into errors
# and there is nothing a caller can do about them: CrypTen only understands graphs of the
# legacy TorchScript exporter (so we must use the deprecated exporter), and its ONNX reader
# wraps read-only numpy buffers (it copies the weights right after).
_EXPORT_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"You are using the legacy TorchScript-based ONNX export", DeprecationWarning),
    (r"The feature will be removed\. Please remove usage of this function", DeprecationWarning),
    (r"The given NumPy array is not writable", UserWarning),
)


def import_crypten() -> ModuleType:
    """Import CrypTen with the compatibility fixes for torch 2.13 applied.

    Safe to call many times and from every party process; the fixes are applied once.

    Returns
    -------
    module
        The ``crypten`` module, patched.

    Raises
    ------
    DependencyError
        If CrypTen (or one of its runtime needs) is not installed or cannot be imported.

    Examples
    --------
    >>> crypten = import_crypten()
    >>> import_crypten() is crypten
    True
    """
    with _LOCK:
        if "crypten" in _STATE:
            return _STATE["crypten"]
        _alias_onnx_registration()
        try:
            import crypten
        except ImportError as e:
            raise DependencyError(
                "CrypTen could not be imported",
                where="secured_bio.privacy.smpc",
                expected="crypten 0.4.1 and its runtime needs (omegaconf, onnx, pandas, pyyaml, "
                "scipy, scikit-learn)",
                got=f"{type(e).__name__}: {e}",
                fix="run `make install` (it installs crypten==0.4.1 with --no-deps)",
            ) from e
        _use_legacy_onnx_exporter(crypten)
        _fix_fixed_point_decode(crypten)
        _STATE["crypten"] = crypten
        return crypten


# -- fix 1: moved torch module ---------------------------------------------------------------


def _alias_onnx_registration() -> None:
    if _OLD_REGISTRATION in sys.modules:
        return
    try:
        importlib.import_module(_OLD_REGISTRATION)
        return  # an older torch that still has it
    except ModuleNotFoundError:
        pass
    try:
        new = importlib.import_module(_NEW_REGISTRATION)
    except ModuleNotFoundError as e:
        raise DependencyError(
            "torch has neither ONNX registration module that CrypTen can use",
            where="torch.onnx._internal",
            expected=f"{_OLD_REGISTRATION} or {_NEW_REGISTRATION}",
            got="neither",
            fix="install torch==2.13.0 (see Makefile)",
        ) from e
    sys.modules[_OLD_REGISTRATION] = new
    _STATE["registration_alias"] = new


# -- fix 2: legacy ONNX exporter for crypten.nn.from_pytorch ----------------------------------


def _use_legacy_onnx_exporter(crypten: ModuleType) -> None:
    import torch

    converter = importlib.import_module("crypten.nn.onnx_converter")
    original_export = converter._export_pytorch_model
    original_from_pytorch = converter.from_pytorch

    def _export_pytorch_model(f: Any, pytorch_model: Any, dummy_input: Any) -> Any:
        # Same arguments as CrypTen 0.4.1's helper, plus dynamo=False (torch >= 2.9 defaults
        # to the dynamo exporter, whose graphs CrypTen cannot convert).
        kwargs: dict[str, Any] = {
            "do_constant_folding": False,
            "export_params": True,
            "input_names": ["input"],
            "operator_export_type": torch.onnx.OperatorExportTypes.ONNX,
            "output_names": ["output"],
            "opset_version": converter._OPSET_VERSION,
            "dynamo": False,
        }
        torch.onnx.export(pytorch_model, dummy_input, f, **kwargs)
        return f

    def from_pytorch(pytorch_model: Any, dummy_input: Any) -> Any:
        with warnings.catch_warnings():
            for message, category in _EXPORT_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category)
            return original_from_pytorch(pytorch_model, dummy_input)

    from_pytorch.__doc__ = original_from_pytorch.__doc__
    _STATE["export_pytorch_model"] = original_export
    _STATE["from_pytorch"] = original_from_pytorch
    converter._export_pytorch_model = _export_pytorch_model  # type: ignore[attr-defined]
    converter.from_pytorch = from_pytorch  # type: ignore[attr-defined]
    crypten.nn.from_pytorch = from_pytorch  # crypten.nn re-exports the function by name


# -- fix 3: exact fixed-point decode ------------------------------------------------------------


def fixed_point_decode(tensor: Any, scale: int) -> Any:
    """Decode fixed-point integers exactly: ``floor(x / scale) + (x mod scale) / scale``.

    CrypTen 0.4.1's ``FixedPointEncoder.decode`` (``crypten/encoder.py``) does, for a negative
    ``x``::

        correction = (tensor < 0).long()
        dividend = tensor.div(self._scale - correction, rounding_mode="floor")
        remainder = tensor % self._scale
        remainder += (remainder == 0).long() * self._scale * correction
        tensor = dividend.float() + remainder.float() / self._scale

    i.e. it floor-divides negative values by ``scale - 1`` instead of ``scale``.  The quotient
    comes out one too low whenever ``x / scale`` lies within ``|x| / scale**2`` above an integer
    (about 0.08% of negative values in [-200, 200] at 16 bits), and the value decodes exactly
    1.0 too low (-100.9999 becomes -101.9999).  The correct decode is floor division by the
    scale plus the remainder over the scale, which is exact for integer tensors; it is computed
    in float64 and rounded once to float32, the dtype CrypTen's decode returns.

    Parameters
    ----------
    tensor
        A ``torch.int64`` tensor of fixed-point values.
    scale
        The fixed-point scale, ``2 ** precision_bits`` (> 1).

    Returns
    -------
    torch.Tensor
        float32 tensor ``tensor / scale`` (correctly rounded).

    Examples
    --------
    >>> import torch
    >>> fixed_point_decode(torch.tensor([-101 * 65536 + 6, 65536 // 2]), 65536).tolist()
    [-100.99990844726562, 0.5]
    """
    import torch

    q = tensor.div(scale, rounding_mode="floor")
    r = tensor - q * scale
    return (q.to(torch.float64) + r.to(torch.float64) / scale).to(torch.float32)


def _fix_fixed_point_decode(crypten: ModuleType) -> None:
    from crypten.common.tensor_types import is_int_tensor
    from crypten.encoder import FixedPointEncoder

    original = FixedPointEncoder.decode
    _STATE["decode"] = original

    def decode(self: Any, tensor: Any) -> Any:
        """Decode from the scaled tensor (secured_bio: exact for negative values)."""
        if tensor is None:
            return None
        if not is_int_tensor(tensor):
            raise TypeError("input must be a LongTensor")
        if self._scale == 1:  # CrypTen's integer branch is correct: keep it
            return original(self, tensor)
        return fixed_point_decode(tensor, self._scale).data

    FixedPointEncoder.decode = decode  # type: ignore[method-assign]


def original_fixed_point_decode() -> Callable[[Any, Any], Any]:
    """Return CrypTen's unpatched ``FixedPointEncoder.decode`` (for regression tests).

    Returns
    -------
    callable
        ``decode(encoder, tensor)`` exactly as CrypTen 0.4.1 ships it.

    Examples
    --------
    >>> decode = original_fixed_point_decode()
    >>> decode.__qualname__
    'FixedPointEncoder.decode'
    """
    import_crypten()
    return _STATE["decode"]
