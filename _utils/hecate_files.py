"""
Rendered configuration files: compare, diff and replace them atomically.

Used by the states that own a whole file (``nginx_config.managed``,
``coturn_config.managed``):

- :func:`current` reads the live file (text and ``stat``), or ``(None, None)``;
- :func:`meta_changes` compares mode/owner/group with what is wanted;
- :func:`write_atomic` writes a candidate next to the live file, created with its final
  mode and owner *before* any byte is written (a secret never sits in a file others may
  read), lets a ``check`` callable veto it (``nginx -t``), then renames it over the live
  file; on a veto or an error the candidate is removed and the live file is untouched;
- :func:`restore` puts back what :func:`current` read (after a failed reload);
- :func:`remove` deletes the file (the states' ``absent``).

and, for the files of the WireGuard and agent states: :func:`ensure_dir` and :func:`file_state`
(content and the mode/owner that differ).

Error text names paths only, never content.
"""

import contextlib
import difflib
import grp
import os
import pwd
import stat
import tempfile

import salt.exceptions


def parse_mode(mode):
    """``"0640"``/``"640"``/``0o640`` -> ``0o640``."""
    if isinstance(mode, int):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        raise salt.exceptions.SaltInvocationError(f"file mode {mode!r} is not octal") from None


def current(path):
    """``(text, stat_result)`` of ``path``, ``(None, None)`` when it does not exist."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise salt.exceptions.CommandExecutionError(
            f"cannot read {path}: {exc.strerror}"
        ) from None
    return data.decode("utf-8", "surrogateescape"), st


def _uid(user):
    if isinstance(user, int):
        return user
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise salt.exceptions.CommandExecutionError(f"user '{user}' does not exist") from None


def _gid(group):
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise salt.exceptions.CommandExecutionError(f"group '{group}' does not exist") from None


def _name(getter, ident):
    try:
        return getter(ident)[0]
    except KeyError:
        return str(ident)


def meta_changes(st, mode, user=None, group=None):
    """Changes of mode/user/group an existing file needs (``{}`` when none or no file)."""
    if st is None:
        return {}
    out = {}
    have = stat.S_IMODE(st.st_mode)
    if have != parse_mode(mode):
        out["mode"] = {"old": f"{have:04o}", "new": f"{parse_mode(mode):04o}"}
    if user is not None and _name(pwd.getpwuid, st.st_uid) != user:
        out["user"] = {"old": _name(pwd.getpwuid, st.st_uid), "new": user}
    if group is not None and _name(grp.getgrgid, st.st_gid) != group:
        out["group"] = {"old": _name(grp.getgrgid, st.st_gid), "new": group}
    return out


def check_owner(user=None, group=None, test=False):
    """
    Fail early (before rendering anything) when the owner or group does not exist.
    Under ``test=True`` a missing one is returned as a note instead: the package the SLS
    installs first (coturn creates the ``turnserver`` group) may bring it.
    """
    try:
        if user is not None:
            _uid(user)
        if group is not None:
            _gid(group)
    except salt.exceptions.CommandExecutionError as exc:
        if not test:
            raise
        return [f"{exc} yet (it must exist when this state runs)"]
    return []


def fix_meta(path, mode, user=None, group=None):
    """Apply mode/owner to an existing file."""
    try:
        if user is not None or group is not None:
            os.chown(
                path,
                _uid(user) if user is not None else -1,
                _gid(group) if group is not None else -1,
            )
        os.chmod(path, parse_mode(mode))
    except OSError as exc:
        raise salt.exceptions.CommandExecutionError(
            f"cannot set mode/owner of {path}: {exc.strerror}"
        ) from None


def unified_diff(old, new, path):
    """A unified diff of two texts, the way ``file.managed`` reports it."""
    return "".join(
        difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=path if old is not None else "/dev/null",
            tofile=path,
        )
    )


def write_atomic(path, text, mode, user=None, group=None, check=None):
    """
    Replace ``path`` with ``text`` atomically.

    The candidate ``.<name>.hecate-XXXX`` is created in the same directory with ``mode``
    (and owner/group) before anything is written to it. ``check(candidate_path)`` may
    raise to veto the replacement; then the candidate is removed and ``path`` is left as
    it was, and the exception propagates.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise salt.exceptions.CommandExecutionError(
            f"cannot write {path}: directory {directory} does not exist"
        )
    uid = _uid(user) if user is not None else -1
    gid = _gid(group) if group is not None else -1
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.hecate-", dir=directory)
    try:
        try:
            os.fchmod(fd, parse_mode(mode))
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            with os.fdopen(fd, "wb") as fh:
                fd = None
                fh.write(text.encode("utf-8", "surrogateescape"))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise salt.exceptions.CommandExecutionError(
                f"cannot write {path}: {exc.strerror}"
            ) from None
        if check is not None:
            check(tmp)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise salt.exceptions.CommandExecutionError(
                f"cannot replace {path}: {exc.strerror}"
            ) from None
        tmp = None
        _fsync_dir(directory)
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def restore(path, old_text, old_stat):
    """Put back the file :func:`current` read (or remove ``path`` if there was none)."""
    if old_text is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    write_atomic(path, old_text, stat.S_IMODE(old_stat.st_mode), old_stat.st_uid, old_stat.st_gid)


def remove(path):
    """Remove ``path`` (a file a state owns); False when it was not there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise salt.exceptions.CommandExecutionError(f"cannot remove {path}: {exc.strerror}") from None
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
    return True


def _fsync_dir(directory):
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# -- directories and private files (the WireGuard key and config, the agents' configs) ----------
def ensure_dir(path, mode=0o755):
    """Create ``path`` (and parents) with ``mode`` when missing; True when created."""
    if os.path.isdir(path):
        return False
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
        os.chmod(path, mode)
    except OSError as exc:
        raise salt.exceptions.CommandExecutionError(f"cannot create directory {path}: {exc.strerror}") from None
    return True


def file_state(path, mode, user=None, group=None):
    """``(content or None, {"mode"/"user"/"group": (old, new)} of what differs)``."""
    try:
        with open(path, encoding="utf-8") as fh:
            content = fh.read()
        st = os.stat(path)
    except FileNotFoundError:
        return None, {}
    except OSError as exc:
        raise salt.exceptions.CommandExecutionError(f"cannot read {path}: {exc.strerror}") from None
    meta = {}
    if st.st_mode & 0o7777 != mode:
        meta["mode"] = (oct(st.st_mode & 0o7777), oct(mode))
    if user is not None and pwd.getpwuid(st.st_uid).pw_name != user:
        meta["user"] = (pwd.getpwuid(st.st_uid).pw_name, user)
    if group is not None:
        try:
            current = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            current = str(st.st_gid)
        if current != group:
            meta["group"] = (current, group)
    return content, meta
