"""Tab-separated rows from real-world files, decoded line by line.

Decoding per line rather than per file is what lets one wrongly encoded row be repaired or skipped
without losing the file: the HetRec files mix encodings (tags.dat is ISO-8859-1, the rest UTF-8),
and a hand-edited copy may mix them within one file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from knowledge.music.corpus import ReadReport

__all__ = ["MusicDataError", "decode_line", "numeric_key", "read_table", "require_files"]


class MusicDataError(OSError):
    """A data directory or file is missing or unreadable (as opposed to a bad row, which is skipped)."""


def numeric_key(text: str) -> str | None:
    """A numeric id in canonical form ("007" and "7" are one listener), or None if not an id.

    ASCII only: ``"²".isdigit()`` is true, yet ``int("²")`` fails.
    """
    if not (text.isascii() and text.isdigit()):
        text = text.strip()
        if not (text.isascii() and text.isdigit()):
            return None
    return text if text[0] != "0" or len(text) == 1 else str(int(text))


def require_files(directory: Path, names: tuple[str, ...]) -> None:
    """Fail with one message naming every missing file, before any parsing starts."""
    if not directory.is_dir():
        raise MusicDataError(f"not a directory: {directory}")
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise MusicDataError(f"missing file{plural} in {directory}: {', '.join(missing)}")


def _is_latin1(encoding: str) -> bool:
    return encoding.replace("_", "-").lower() in {"latin-1", "iso-8859-1", "latin1"}


def _lines(data: bytes, encoding: str, source: str, report: ReadReport) -> list[str | None]:
    """The file's lines as text, ``None`` for a line that cannot be decoded.

    The whole file is decoded at once when it can be (the usual case, several times faster); only a
    file with a bad line takes the per-line path. Lines are split on LF only (CR stripped), never on
    the Unicode separators that ``str.splitlines`` also honours, which may sit inside a name.
    """
    if data.isascii() or not _is_latin1(encoding):
        try:
            text = data.decode("ascii" if data.isascii() else encoding)
        except UnicodeDecodeError:
            pass
        else:
            return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    lines: list[str | None] = []
    for raw in data.split(b"\n"):
        decoded = decode_line(raw[:-1] if raw.endswith(b"\r") else raw, encoding)
        if decoded is not None and decoded[1]:
            report.recoded[source] += 1
        lines.append(None if decoded is None else decoded[0])
    return lines


def decode_line(raw: bytes, encoding: str) -> tuple[str, bool] | None:
    """Decode one line; return the text and whether it needed the fallback, or ``None`` if hopeless.

    A UTF-8 file's invalid line is almost always Windows-1252 or Latin-1 typed by someone else, so
    it is re-decoded as cp1252. A Latin-1 file's line that is *valid* UTF-8 with non-ASCII bytes is
    taken as UTF-8: Latin-1 text practically never forms valid multi-byte UTF-8 sequences, so this
    guess keeps "Motörhead" from turning into "MotÃ¶rhead".
    """
    if _is_latin1(encoding):
        if not raw.isascii():
            try:
                return raw.decode("utf-8"), True
            except UnicodeDecodeError:
                pass
        return raw.decode("latin-1"), False
    try:
        return raw.decode(encoding), False
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), True
    except UnicodeDecodeError:
        return None


def read_table(
    path: Path,
    *,
    encoding: str,
    columns: int,
    report: ReadReport,
    min_columns: int | None = None,
    header: bool = True,
) -> Iterator[list[str]]:
    """Yield the fields of each row with the right shape; count and skip the rest in ``report``.

    The caller validates the values and counts what it keeps, so ``report.kept`` means "used".

    ``min_columns`` allows rows that drop empty trailing fields; missing ones are filled with "".
    """
    source = path.name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MusicDataError(f"missing file: {path}") from None
    except OSError as error:
        raise MusicDataError(f"cannot read {path}: {error.strerror or error}") from None
    lines = _lines(data, encoding, source, report)
    if header and lines:
        lines = lines[1:]
    fewest = columns if min_columns is None else min_columns
    for text in lines:
        if text is None:
            report.skip(source, "undecodable bytes")
            continue
        if not text.strip():
            continue
        fields = text.split("\t")
        if not fewest <= len(fields) <= columns:
            report.skip(source, f"expected {columns} tab-separated fields")
            continue
        fields.extend([""] * (columns - len(fields)))
        yield fields
