"""Reading a ``.pt`` file someone gave ddx: ``torch.load(weights_only=True)``, and when that fails, one
line saying what the file is instead.

``torch.load``'s errors say little about the file (a text file is ``KeyError: 101``, or an
``IndexError``; a file cut short a miniz error of several lines; an empty one ``EOFError``).
:func:`load_torch` looks at the bytes when the load fails and raises :class:`NotATorchFile`:
``not a torch file (text: 'images,labels')``, ``(empty)``, ``(a zip archive cut short or damaged …)``,
``(a zip archive torch.save did not write: it holds a.npy)``, ``(a NumPy .npy array)``,
``(binary data starting 00 01 02 03)`` — or, for a real torch file that holds Python objects
``weights_only`` loading refuses, which object that is.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import torch

#: what ``torch.save`` writes (a zip archive), and its legacy format (a pickle: protocol 2, then torch's magic number)
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_MAGIC = b"\x80\x02\x8a\x0a"
#: other formats a misnamed ``.pt`` often is (first bytes → what it is)
KNOWN_FORMATS = {
    b"\x93NUMPY": "a NumPy .npy array",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x89HDF": "an HDF5 file",
    b"\x1f\x8b": "a gzip file",
    b"PAR1": "a Parquet file",
}


class NotATorchFile(ValueError):
    """A file ``torch.load(weights_only=True)`` cannot read; the message says what it is (one line, no path)."""


def load_torch(source: bytes | str | Path) -> Any:
    """What ``torch.load(source, map_location="cpu", weights_only=True)`` returns (``source``: a file's
    path or its bytes); :class:`NotATorchFile` when it cannot (an :class:`OSError` reading a path passes)."""
    data = source if isinstance(source, bytes) else None
    try:
        return torch.load(io.BytesIO(data) if data is not None else Path(source), map_location="cpu", weights_only=True)
    except OSError:  # the file cannot be read (its permissions, a folder): not about its content
        raise
    except Exception as err:  # torch.load's errors vary with what the bytes are (pickle, zip, KeyError, IndexError…)
        raise NotATorchFile(describe_failure(data if data is not None else Path(source).read_bytes(), err)) from None


def _first_sentence(err: BaseException | None) -> str:
    text = " ".join(str(err or "").split())
    return text.split(". ")[0].rstrip(".") if text else type(err).__name__


def describe_failure(data: bytes, err: BaseException | None) -> str:
    """The line for bytes ``torch.load`` could not read (``err``: its exception)."""
    if not data:
        return "not a torch file (empty)"
    refused = _refused_object(err)
    if data.startswith(ZIP_MAGIC):
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except (zipfile.BadZipFile, ValueError):
            return f"not a torch file (a zip archive cut short or damaged, {len(data):,} bytes: {_first_sentence(err)})"
        if not any(n.endswith("/data.pkl") for n in names):
            shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
            return f"not a torch file (a zip archive torch.save did not write: it holds {shown or 'nothing'})"
        if refused:
            return f"a torch file holding {refused}, which weights_only=True loading refuses; save plain tensors"
        return f"not a torch file (a torch archive that is damaged: {_first_sentence(err)})"
    if data.startswith(LEGACY_MAGIC):
        if refused:
            return f"a torch file holding {refused}, which weights_only=True loading refuses; save plain tensors"
        return f"not a torch file (an old-format torch file cut short or damaged: {type(err).__name__})"
    for magic, what in KNOWN_FORMATS.items():
        if data.startswith(magic):
            return f"not a torch file ({what})"
    head = data[:200]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as bad:  # a multi-byte character cut by the 200 bytes still counts as text
        text = head[: bad.start].decode("utf-8") if bad.start > len(head) - 4 else ""
    if text and all(c.isprintable() or c in "\t\r\n" for c in text):
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        shown = first if len(first) <= 60 else first[:59] + "…"
        return f"not a torch file (text: {shown!r})"
    return f"not a torch file (binary data starting {data[:8].hex(' ')})"


def _refused_object(err: BaseException | None) -> str | None:
    """``fractions.Fraction`` from a weights-only refusal ("Unsupported global: GLOBAL fractions.Fraction …")."""
    text = str(err or "")
    if "Weights only load failed" not in text:
        return None
    marker = "Unsupported global: GLOBAL "
    if marker in text:
        return "the Python object " + text.split(marker, 1)[1].split()[0]
    return "Python objects"


__all__ = ["NotATorchFile", "describe_failure", "load_torch"]
