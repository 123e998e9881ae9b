"""Remote inputs (s3://, gs://, https://, ... through fsspec): a URL listed into its parts,
and a part's identity (size and ETag, as its file system reports them), never downloaded
for either. catvec.base.tables reads them like local parts.

Example: list_remote("s3://bucket/events/", "events", "--events", (".parquet",))
"""

from __future__ import annotations

from catvec.base.errors import CatvecError, InputNotFound, first_line

GLOB_CHARS = "*?["


def is_remote(part: str) -> bool:
    return "://" in part and not part.startswith("file://")


def list_remote(url: str, what: str, flag: str, folder_suffixes: tuple) -> tuple[list[str], bool]:
    """A URL (a file, a folder of files ending in `folder_suffixes`, or a glob) -> its parts
    as URLs, sorted, and whether they sit in hive partitions."""
    fs, path = filesystem(url)
    protocol = url.split("://", 1)[0]
    try:
        if any(c in path for c in GLOB_CHARS):
            found = sorted(p for p in fs.glob(path) if fs.isfile(p))
        elif fs.isdir(path):
            found = sorted(p for p in fs.find(path) if p.lower().endswith(folder_suffixes)
                           and not any(s.startswith((".", "_")) for s in p[len(path):].split("/") if s))
            if not found:
                raise CatvecError(f"{what} path {url} is a folder without .parquet files")
        elif fs.exists(path):
            found = [path]
        else:
            found = []
    except OSError as exc:
        raise CatvecError(f"{url}: cannot list ({first_line(exc)})") from None
    if not found:
        raise InputNotFound(f"{what} {url} not found; pass {flag} URL")
    return [f"{protocol}://{p}" for p in found], any("=" in s for p in found for s in p.split("/")[:-1])


def filesystem(url: str):
    """(fsspec file system, path inside it) of a URL; a clear message without its package."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:  # pragma: no cover
        raise CatvecError(f"{url}: remote inputs need fsspec (pip install fsspec and the file system's "
                          "package, e.g. s3fs)") from None
    try:
        return url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise CatvecError(f"{url}: no file system for this URL ({first_line(exc)}); install its fsspec "
                          "package, e.g. s3fs for s3://") from None


def remote_tag(part: str) -> tuple:
    """(size, ETag or checksum) of a remote object, as its file system reports them."""
    fs, path = filesystem(part)
    info = fs.info(path)
    return info.get("size"), (info.get("ETag") or info.get("etag") or info.get("checksum") or info.get("md5Hash")
                              or info.get("mtime"))
