"""
State-return discipline shared by every hecate state module.

1. start ``result True`` / "already in the desired state";
2. compute ``changes`` from normalised desired vs live values (:func:`diff`);
3. nothing to change -> return; 4. ``test=True`` -> result None with the predicted
changes and nothing written; 5. otherwise apply and report.

:func:`guard` turns ``CommandExecutionError``/``SaltInvocationError`` raised anywhere in a
state function into ``result False`` with the message as comment, so no traceback reaches
the operator and ``changes`` stays empty.
"""

import functools

import salt.exceptions

import hecate_secrets

ALREADY = "already in the desired state"


def new(name, comment=ALREADY):
    return {"name": name, "result": True, "changes": {}, "comment": comment}


def guard(func):
    """Decorator for state functions: expected errors become result False, not tracebacks."""

    @functools.wraps(func)
    def wrapper(name, *args, **kwargs):
        try:
            return func(name, *args, **kwargs)
        except (
            salt.exceptions.CommandExecutionError,
            salt.exceptions.SaltInvocationError,
        ) as exc:
            return {"name": name, "result": False, "changes": {}, "comment": str(exc)}

    return wrapper


def diff(old, new, path="", secret_keys=()):
    """
    Field-level differences between two normalised values.

    Returns ``{"a:b": {"old": x, "new": y}}`` for scalars, and for lists of scalars
    ``{"a": {"added": [...], "removed": [...]}}`` when order does not matter
    (callers normalise order-insensitive lists by sorting first). Keys in
    ``secret_keys`` report the redaction marker instead of values.
    """
    out = {}
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}:{key}" if path else str(key)
            if key in secret_keys:
                if old.get(key) != new.get(key):
                    out[sub] = {"old": hecate_secrets.REDACTED, "new": hecate_secrets.REDACTED}
                continue
            out.update(diff(old.get(key), new.get(key), sub, secret_keys))
        return out
    if old == new:
        return out
    if _scalar_list(old) and _scalar_list(new):
        added = [v for v in new if v not in old]
        removed = [v for v in old if v not in new]
        if added or removed:
            out[path] = {"added": added, "removed": removed}
        else:  # same members, different order
            out[path] = {"old": old, "new": new}
        return out
    out[path or "value"] = {"old": old, "new": new}
    return out


def _scalar_list(value):
    return isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value)


def result(ret, changes, test, would, did):
    """
    Finish a state return after the diff: no changes -> unchanged; test -> None and
    ``would``; else the caller has applied and we report ``did``.
    """
    ret["changes"] = changes
    if not changes:
        return ret
    if test:
        ret["result"] = None
        ret["comment"] = would
    else:
        ret["comment"] = did
    return ret
