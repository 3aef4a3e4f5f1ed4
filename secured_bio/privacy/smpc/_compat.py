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
4. The TTP dealer's randomness is enumerable (a CrypTen weakness, not a torch one): its
   per-party triple generators are Mersenne Twisters seeded from torch's global generator,
   whose state is itself fixed by 32 bits.  We replace the seed exchange and the generators
   with 256-bit keys from the OS and a SHAKE-256 keystream.  See :class:`DealerStream`.

Nothing here runs at import time of this module: the fixes are applied by the first call to
:func:`import_crypten`.
"""

from __future__ import annotations

import hashlib
import importlib
import secrets
import sys
import threading
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

from secured_bio.errors import DependencyError

__all__ = [
    "DEALER_KEY_BYTES",
    "DealerStream",
    "import_crypten",
    "fixed_point_decode",
    "original_fixed_point_decode",
]

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
        _seed_dealer_from_os_entropy()
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


# -- fix 4: dealer (TTP) randomness from 256-bit OS keys through SHAKE-256 ---------------------

#: Bytes of each party's dealer key (256 bits), drawn with :mod:`secrets` by the dealer.
DEALER_KEY_BYTES = 32
_KEY_WORDS = DEALER_KEY_BYTES // 8  # sent as this many int64 words instead of CrypTen's one
_DOMAIN = b"secured_bio/crypten-ttp-dealer/v1\x00"


class DealerStream:
    """A keyed pseudo-random stream shared by one party and the TTP dealer (replaces MT19937).

    CrypTen 0.4.1's ``TTPServer._setup_generators`` draws each party's seed with
    ``torch.randint`` from torch's *global* generator and seeds a ``torch.Generator`` with it;
    the party's masks ``a_i, b_i`` of every Beaver triple come from that generator.  Three
    weaknesses follow, all measured on torch 2.13 (CPU):

    * ``torch.Generator.manual_seed`` keeps the 64-bit value as ``initial_seed()`` but
      initialises the Mersenne Twister from its low 32 bits only (seeds ``s`` and
      ``s + 2**32`` or ``s + 2**40`` give identical streams), and the same holds for the
      global generator the dealer draws the seeds from.  All the dealer's seeds are thus fixed
      by one 32-bit value: 2**32 candidates, and none at all after a ``torch.manual_seed``
      in the dealer process (the dealer then repeats its triples run after run).
    * A Mersenne Twister is not a cryptographic generator even with a secret 19937-bit state:
      its outputs are linear in its state, and 624 consecutive 32-bit outputs give the state
      away.  In encrypted inference the model owner learns the data owner's share ``b_0`` of
      every mask ``b`` it opens against its own weights (``w - b`` is opened, ``w`` and
      ``b_1`` are its own), i.e. thousands of outputs of the data owner's generator.
    * The seed itself was one int64 word.

    So a :class:`DealerStream` is keyed by 256 bits drawn by the dealer with
    :func:`secrets.token_bytes` (OS entropy), sent to the party as four int64 words, and each
    draw is ``SHAKE-256(domain || label || key || counter)`` (FIPS 202; an extendable-output
    function used as a PRF), so the draws of one party cannot be predicted from any number of
    another party's or its own earlier draws without the key.  The party and the dealer make
    the same sequence of draws (CrypTen's providers rely on that already), so a counter keeps
    them in step.  Nothing here reads torch's global generator.

    Parameters
    ----------
    key
        The 256-bit key (``DEALER_KEY_BYTES`` bytes).
    label
        Separates the CPU and CUDA streams of one key.
    device
        Device the drawn tensors are put on (CrypTen reads ``generator.device``).

    Examples
    --------
    >>> s, t = DealerStream(bytes(32)), DealerStream(bytes(32))
    >>> bool((s.ring_elements((3,)) == t.ring_elements((3,))).all())
    True
    >>> DealerStream(b"short")
    Traceback (most recent call last):
    ...
    ValueError: a dealer key must have 32 bytes, got 5
    """

    def __init__(self, key: bytes, *, label: str = "cpu", device: Any = "cpu") -> None:
        import torch

        if len(key) != DEALER_KEY_BYTES:
            raise ValueError(f"a dealer key must have {DEALER_KEY_BYTES} bytes, got {len(key)}")
        self._prefix = _DOMAIN + label.encode() + b"\x00" + bytes(key)
        self._counter = 0
        self.device = torch.device(device)

    def __repr__(self) -> str:  # never show the key
        return f"DealerStream(device={str(self.device)!r}, draws={self._counter})"

    def _words(self, shape: tuple[int, ...]) -> Any:
        import numpy as np
        import torch

        n = int(np.prod(shape, dtype=np.int64))
        block = hashlib.shake_256(self._prefix + self._counter.to_bytes(8, "little")).digest(8 * n)
        self._counter += 1
        words = np.frombuffer(bytearray(block), dtype="<i8").astype(np.int64, copy=False)
        return torch.from_numpy(words.reshape(shape))

    def ring_elements(self, size: Any) -> Any:
        """Draw uniform elements of ``Z_2^64`` (as int64) of shape ``size``."""
        return self._words(_shape(size))

    def kbit_elements(self, size: Any, bitlength: int) -> Any:
        """Draw uniform ``bitlength``-bit non-negative integers (as int64) of shape ``size``."""
        import torch

        if not 1 <= bitlength <= 64:
            raise ValueError(f"bitlength must be in 1..64, got {bitlength}")
        words = self._words(_shape(size))
        if bitlength == 64:
            return words
        # Logical shift of the 64-bit word: the top `bitlength` bits.
        return torch.bitwise_right_shift(words, 64 - bitlength) & ((1 << bitlength) - 1)


def _shape(size: Any) -> tuple[int, ...]:
    return (int(size),) if isinstance(size, int) else tuple(int(d) for d in size)


def _key_to_words(key: bytes) -> Any:
    import numpy as np
    import torch

    return torch.from_numpy(np.frombuffer(bytearray(key), dtype="<i8").astype(np.int64))


def _words_to_key(words: Any) -> bytes:
    import numpy as np

    return np.asarray(words.cpu().numpy(), dtype="<i8").tobytes()


def _on_device(tensor: Any, device: Any) -> Any:
    import torch
    from crypten.cuda import CUDALongTensor

    if device is None:
        return tensor
    device = torch.device(device)
    if device.type == "cpu":
        return tensor
    return CUDALongTensor(tensor.to(device))


def _seed_dealer_from_os_entropy() -> None:
    import torch
    import torch.distributed as dist
    from crypten import communicator as comm
    from crypten.mpc.provider import ttp_provider

    original_ring = ttp_provider.generate_random_ring_element
    original_kbit = ttp_provider.generate_kbit_random_tensor
    client_cls = ttp_provider.TTPClient._TTPClient__TTPClient  # type: ignore[attr-defined]
    server_cls = ttp_provider.TTPServer
    _STATE["ttp_client_setup"] = client_cls._setup_generators
    _STATE["ttp_server_setup"] = server_cls._setup_generators
    _STATE["ttp_ring"] = original_ring
    _STATE["ttp_kbit"] = original_kbit

    def generate_random_ring_element(size: Any, ring_size: int = 2**64, generator: Any = None,
                                     **kwargs: Any) -> Any:
        if not isinstance(generator, DealerStream):
            return original_ring(size, ring_size, generator=generator, **kwargs)
        if ring_size != 2**64:
            raise ValueError(f"the dealer stream draws from Z_2^64 only, got ring {ring_size}")
        return _on_device(generator.ring_elements(size), kwargs.get("device"))

    def generate_kbit_random_tensor(size: Any, bitlength: int | None = None,
                                    generator: Any = None, **kwargs: Any) -> Any:
        if not isinstance(generator, DealerStream):
            return original_kbit(size, bitlength=bitlength, generator=generator, **kwargs)
        bits = 64 if bitlength is None else int(bitlength)
        return _on_device(generator.kbit_elements(size, bits), kwargs.get("device"))

    def _streams(key: bytes) -> tuple[DealerStream, DealerStream | None]:
        cuda = (DealerStream(key, label="cuda", device="cuda")
                if torch.cuda.is_available() else None)
        return DealerStream(key, label="cpu", device="cpu"), cuda

    def client_setup_generators(self: Any) -> None:
        """Receive this party's 256-bit dealer key (secured_bio: replaces CrypTen's seed)."""
        words = torch.empty(size=(_KEY_WORDS,), dtype=torch.long)
        work = dist.irecv(tensor=words, src=comm.get().get_ttp_rank(), group=self.ttp_group)
        if work is not None:  # None only for a rank outside the group
            work.wait()
        dist.barrier(group=self.ttp_group)
        self.generator, self.generator_cuda = _streams(_words_to_key(words))
        words.zero_()

    def server_setup_generators(self: Any) -> None:
        """Draw a 256-bit key per party from OS entropy and send it (secured_bio patch)."""
        ws = comm.get().get_world_size()
        keys = [secrets.token_bytes(DEALER_KEY_BYTES) for _ in range(ws)]
        words = [_key_to_words(k) for k in keys]
        reqs = [dist.isend(tensor=words[i], dst=i, group=self.ttp_group) for i in range(ws)]
        streams = [_streams(k) for k in keys]
        self.generators = [cpu for cpu, _ in streams]
        self.generators_cuda = [cuda for _, cuda in streams]
        for req in reqs:
            if req is not None:
                req.wait()
        dist.barrier(group=self.ttp_group)

    ttp_provider.generate_random_ring_element = generate_random_ring_element
    ttp_provider.generate_kbit_random_tensor = generate_kbit_random_tensor
    client_cls._setup_generators = client_setup_generators
    server_cls._setup_generators = server_setup_generators
