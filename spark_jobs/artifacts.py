"""The ``spark_jobs`` package as one archive: how the code reaches a cluster's executors.

A job's Python UDF is pickled by the client and run by a Python worker on an executor,
which imports whatever of ``spark_jobs`` the function refers to. A cluster's workers have
Spark and a Python, not this project. A Spark Connect client with ``ship_code`` set
uploads this archive to its own session (``SparkSession.addArtifacts(..., pyfile=True)``),
so every executor task of that session imports exactly the code the client runs: no
version skew between a client and a server started earlier, nothing installed on a worker.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

ARCHIVE_NAME = "spark_jobs.zip"


def package_archive(dest_dir: Path) -> Path:
    """Write the installed ``spark_jobs`` package (code and the data it reads) as one zip.

    Caches and compiled files stay out; the archive appears whole or not at all.
    """
    package = Path(__file__).resolve().parent
    dest_dir.mkdir(parents=True, exist_ok=True)
    archive = dest_dir / ARCHIVE_NAME
    partial = dest_dir / f"{ARCHIVE_NAME}.partial"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                out.write(path, (Path(package.name) / path.relative_to(package)).as_posix())
    partial.replace(archive)
    return archive
