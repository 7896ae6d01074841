"""Where a dataset comes from: a local folder when one is configured and holds the files, else the Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from rnnlab.data.errors import DataError

DATA_DIR_ENV = "RNNLAB_DATA_DIR"


def local_files(data_dir: str | None, subdir: str, files: dict[str, str]) -> dict[str, Path] | None:
    """Paths of every split when all exist, else None.

    A file given as an absolute path is used as it is; a relative one is looked up in ``data_dir/subdir``.
    """
    paths = {}
    for split, name in files.items():
        path = Path(name).expanduser()
        if not path.is_absolute():
            if not data_dir:
                return None
            path = Path(data_dir).expanduser() / subdir / name
        if not path.is_file():
            return None
        paths[split] = path
    return paths


def load_with_fallback(name: str, data_dir: str | None, subdir: str, files: dict[str, str],
                       read_local: Callable[[Path], Iterable[dict]],
                       load_hub: Callable[[], dict[str, Iterable[dict]]] | None,
                       hub_name: str | None) -> dict[str, Iterable[dict]]:
    """Reads every split from local files, or from the Hub when no complete local copy is configured.

    A split is whatever the reader returns: a list, or ``rnnlab.data.readers.Sentences`` that streams the file
    (its emptiness is checked here by reading up to its first example).

    Raises:
        DataError: neither source worked (the message says where it looked and how to point at local files),
            or a split holds no example.
    """
    paths = local_files(data_dir, subdir, files)
    if paths is not None:
        return _non_empty(name, files, {split: read_local(path) for split, path in paths.items()})
    looked = (f"{Path(data_dir).expanduser() / subdir} (files {', '.join(files.values())})" if data_dir
              else f"no local folder (neither paths.data_dir nor ${DATA_DIR_ENV} is set)")
    if load_hub is None:
        raise DataError(f"{name}: {looked} has no complete copy, and this dataset has no Hub source. "
                        f"Set {DATA_DIR_ENV}=/path/to/data or paths.data_dir=... to a folder holding {subdir}/.")
    try:
        splits = load_hub()
    except Exception as error:  # any network or Hub failure ends in the same advice
        raise DataError(
            f"{name}: looked in {looked} and found no complete copy; loading {hub_name} from the Hub failed "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). "
            f"Point at local files with {DATA_DIR_ENV}=/path/to/data (a folder holding {subdir}/) or "
            f"paths.data_dir=..., or give absolute paths in data.files.") from None
    return _non_empty(name, files, splits)


def _non_empty(name: str, files: dict[str, str], splits: dict[str, Iterable]) -> dict[str, Iterable]:
    for split, examples in splits.items():
        if not examples:
            raise DataError(f"{name}: the {split} split ({files[split]}) holds no example; check data.files.{split}")
    return splits
