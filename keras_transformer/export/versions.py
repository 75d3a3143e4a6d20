"""Version folders under a TensorFlow Serving model base path.

TF Serving treats a child of the base path as a version when its whole name
parses as an int64 ("7", also "0007"), and ignores every other child. A
version is written into a staging folder whose name is not a number
(`.tmp-export-XXXX`), then renamed into place: on one file system the rename
is atomic, so a server polling the base path never sees a half-written
version. Existing versions are never opened for writing.
"""

import os
import shutil
import tempfile

STAGING_PREFIX = ".tmp-export-"
MAX_VERSION = 2**63 - 1


def _is_version_name(name):
    return name.isascii() and name.isdigit() and int(name) <= MAX_VERSION


def existing_versions(base_dir):
    """Sorted version numbers of the version folders in `base_dir` (none if it does not exist)."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(
        int(name) for name in os.listdir(base_dir)
        if _is_version_name(name) and os.path.isdir(os.path.join(base_dir, name))
    )


def check_base_dir(base_dir):
    """ValueError unless `base_dir` is a folder or can become one."""
    base_dir = os.fspath(base_dir)
    if not base_dir:
        raise ValueError("base_dir must be a folder path; received an empty string")
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise ValueError(f"base_dir {base_dir!r} exists and is not a folder (a model base path holds version folders)")
    if _is_version_name(os.path.basename(os.path.normpath(base_dir))) and existing_versions(os.path.dirname(base_dir)):
        raise ValueError(
            f"base_dir {base_dir!r} looks like a version folder of {os.path.dirname(base_dir)!r}; "
            "pass the model base path (its parent), versions are created inside it"
        )
    return base_dir


def resolve_version(base_dir, version):
    """The version to write: `version` if free, else a ValueError; None -> max existing + 1 (1 if none)."""
    versions = existing_versions(base_dir)
    if version is None:
        return versions[-1] + 1 if versions else 1
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= MAX_VERSION:
        raise ValueError(f"version must be a non-negative integer (int64); received version={version!r}")
    if version in versions:
        raise ValueError(
            f"version {version} already exists in {base_dir!r} (existing versions: {versions}); "
            "versions are never overwritten: pass a new version or version=None for the next one"
        )
    return version


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_abandoned_staging(base_dir):
    """Deletes the staging folders of exports that were killed (their process is gone); returns their names.

    Staging names carry the exporting process id (`.tmp-export-PID-XXXX`); a
    folder whose process still runs is another export in progress and is kept.
    """
    removed = []
    for name in os.listdir(base_dir) if os.path.isdir(base_dir) else []:
        if not name.startswith(STAGING_PREFIX):
            continue
        pid = name[len(STAGING_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(os.path.join(base_dir, name), ignore_errors=True)
        removed.append(name)
    return removed


def make_staging_dir(base_dir):
    """A fresh folder inside `base_dir` that TF Serving ignores (its name is not a number).

    Staging folders that killed exports left behind are removed first.
    """
    os.makedirs(base_dir, exist_ok=True)
    remove_abandoned_staging(base_dir)
    staging = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=base_dir)
    # mkdtemp makes it private (0700); the version folder must be readable by a server
    # running as another user, like any folder created under the current umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def publish(staging_dir, base_dir, version):
    """Renames the finished staging folder to `base_dir/version`; returns that path."""
    target = os.path.join(base_dir, str(version))
    if os.path.exists(target):  # another exporter took the number meanwhile
        raise ValueError(f"version folder {target!r} appeared while exporting; nothing was overwritten")
    try:
        os.rename(staging_dir, target)
    except OSError as error:
        raise ValueError(f"could not move the export into {target!r}: {error}") from error
    return target


def discard(staging_dir):
    """Removes a staging folder after a failed export."""
    shutil.rmtree(staging_dir, ignore_errors=True)
